import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { ComponentChildren, JSX } from "preact";
import { messageOf } from "./errors";
import { stateLabel } from "./format";

export interface Resource<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
  /** Replaces the data in place (an update from a live stream). */
  set: (update: (old: T | undefined) => T | undefined) => void;
}

/** Loads once per `key` (and again on reload()); an answer for an older key is dropped. */
export function useResource<T>(load: () => Promise<T>, key: string): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    let current = true;
    setLoading(true);
    loader.current().then(
      (d) => {
        if (!current) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (!current) return;
        setError(messageOf(err));
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [key, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data, error, loading, reload, set: setData as Resource<T>["set"] };
}

/** The page's one heading; it takes the focus after a navigation so screen readers announce the page. */
export function PageTitle({ children, title }: { children: ComponentChildren; title: string }): JSX.Element {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Slipway`;
    ref.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/** A modal <dialog> opened on mount and closed on unmount (the browser keeps the focus inside; Escape closes it). */
export function useModal() {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return ref;
}

/**
 * Puts the focus on the page's heading once the current render is done: after a dialog's action
 * removed the button that opened it (a revoked row, a removed card), the focus would otherwise fall
 * to the document and keyboard and screen reader users would start again from the top.
 */
export function focusPageHeading(): void {
  window.setTimeout(() => document.querySelector<HTMLElement>("main h1")?.focus(), 0);
}

export function Alert({ children }: { children: ComponentChildren }): JSX.Element {
  return (
    <p class="alert" role="alert">
      {children}
    </p>
  );
}

export function Loading({ what }: { what: string }): JSX.Element {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** A state as a small badge whose colour follows the state (the word is always there too). */
export function StateBadge({ state }: { state: string }): JSX.Element {
  return <span class={`badge badge-${state.replace(/[^a-z_]/g, "")}`}>{stateLabel(state)}</span>;
}

interface FieldProps {
  id: string;
  label: string;
  error: string | undefined;
  hint?: string;
  children: (aria: { id: string; "aria-invalid"?: "true"; "aria-describedby"?: string }) => JSX.Element;
}

/** A labelled input with its hint and the API's message for it, tied together for screen readers. */
export function Field({ id, label, error, hint, children }: FieldProps): JSX.Element {
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {children({ id, ...(error ? { "aria-invalid": "true" as const } : {}), ...(described ? { "aria-describedby": described } : {}) })}
      {error && (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}
