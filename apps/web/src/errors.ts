import { ApiError } from "./api";

/** Errors to show in a form: one per field the API named in `details`, the rest for the whole form. */
export interface FormErrors {
  fields: Record<string, string>;
  form?: string;
}

/**
 * The one place that turns an API error into messages next to fields. The API's message is shown
 * as it is (it names the problem in the user's words); it goes next to the first field of `fields`
 * that the error's details name, and to the form when none is named.
 */
export function formErrors(err: unknown, fields: readonly string[]): FormErrors {
  const message = messageOf(err);
  if (err instanceof ApiError) {
    const named = fields.find((f) => f in err.details);
    if (named) return { fields: { [named]: message } };
  }
  return { fields: {}, form: message };
}

/** The message to show for any failure. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
