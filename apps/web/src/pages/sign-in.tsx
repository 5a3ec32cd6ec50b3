import { useState } from "preact/hooks";
import type { JSX } from "preact";
import { formErrors, type FormErrors } from "../errors";
import { location, navigate } from "../router";
import { safeNext } from "../match";
import { signIn } from "../session";
import { Alert, Field, PageTitle } from "../ui";

/** Sign in by pasting an API token; the API exchanges it for an HttpOnly session cookie. */
export function SignInPage(): JSX.Element {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) {
      setErrors({ fields: { token: "Paste an API token." } });
      return;
    }
    setBusy(true);
    setErrors({ fields: {} });
    try {
      await signIn(token.trim());
      navigate(safeNext(new URLSearchParams(location.value.search).get("next")), { replace: true });
    } catch (err) {
      setErrors(formErrors(err, ["token"]));
      setBusy(false);
    }
  };

  return (
    <section class="narrow">
      <PageTitle title="Sign in">Sign in to Slipway</PageTitle>
      <form onSubmit={submit} noValidate>
        <Field id="token" label="API token" error={errors.fields.token} hint="An admin, deployer or viewer token (slipway tokens create, or the admin token the control plane printed at its first start).">
          {(aria) => (
            <input
              {...aria}
              name="token"
              type="password"
              autoComplete="off"
              spellcheck={false}
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
          )}
        </Field>
        {errors.form && <Alert>{errors.form}</Alert>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </section>
  );
}
