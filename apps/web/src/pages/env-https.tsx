// The environment settings' HTTPS parts (issue 15): each custom domain's certificate, live, and the
// redirect and HSTS fields of the "Deployment and resources" form.
import { useEffect, useRef } from "preact/hooks";
import type { JSX } from "preact";
import { activityStream } from "../api/admin";
import { HSTS_MAX_SECONDS, settingsApi, type DomainCertificate, type DomainServedBy, type HttpsPolicy } from "../api/settings";
import { certificateText, servedByText } from "../certificates";
import { useEventStream } from "../sse";
import { Field, useResource, type Resource } from "../ui";

type Domains = Awaited<ReturnType<typeof settingsApi.domains>>;

/**
 * The custom domains' certificates, read again whenever the list of names changes (a domain added
 * or removed) and when the environment's activity says a certificate was issued, renewed or
 * failed (its feed, live: nothing polls).
 */
export function useDomainCertificates(app: string, env: string, names: readonly string[]): Resource<Domains> {
  const certs = useResource(() => (names.length ? settingsApi.domains(app, env) : Promise.resolve({ domains: [] })), `${app}/${env}/${names.join(",")}`);
  const pending = useRef<number | undefined>(undefined);
  useEventStream(names.length ? activityStream({ app, env }, undefined) : undefined, {
    activity: (ev) => {
      let action = "";
      try {
        action = String((JSON.parse(ev.data) as { action?: unknown }).action ?? "");
      } catch {
        return;
      }
      if (!action.startsWith("certificate.") || pending.current !== undefined) return;
      pending.current = window.setTimeout(() => {
        pending.current = undefined;
        certs.reload();
      }, 300);
    },
  });
  useEffect(() => () => window.clearTimeout(pending.current), []);
  return certs;
}

/** "HTTPS: valid until …" beside a domain, its colour following the state (the words always there). */
export function CertificateState({ hostname, certificate, servedBy, now }: { hostname: string; certificate: DomainCertificate | undefined; servedBy: DomainServedBy[] | undefined; now: number }): JSX.Element {
  if (!certificate) return <span class="cert-state muted">HTTPS: reading the certificate…</span>;
  const served = servedByText(servedBy);
  return (
    <span class="cert-state">
      <span class={`cert-${certificate.state}`} data-certificate-of={hostname}>
        HTTPS: {certificateText(certificate, now)}
      </span>
      {served && <span class="cert-served"> · {served}</span>}
    </span>
  );
}

/** The HTTPS fields as the form holds them (the number as typed: the API judges it). */
export interface HttpsForm {
  redirect: boolean;
  hsts: string;
}

export const httpsForm = (p: HttpsPolicy | undefined): HttpsForm => ({ redirect: p?.redirect ?? false, hsts: String(p?.hstsMaxAgeSeconds ?? 0) });

/** What changed, for the PATCH's `https` (only the fields that changed: the API merges them with what it has). */
export function httpsPatch(form: HttpsForm, view: HttpsPolicy | undefined, num: (s: string) => number): Partial<HttpsPolicy> | undefined {
  const was = httpsForm(view);
  const patch: Partial<HttpsPolicy> = {};
  if (form.redirect !== was.redirect) patch.redirect = form.redirect;
  if (form.hsts !== was.hsts) patch.hstsMaxAgeSeconds = num(form.hsts);
  return Object.keys(patch).length ? patch : undefined;
}

/**
 * Redirect and HSTS. HSTS needs the redirect (the API's rule): its field is enabled only with the
 * redirect ticked, and unticking the redirect sets it to 0, so what is shown is what is sent.
 */
export function HttpsFields({ form, onChange, disabled, errors }: { form: HttpsForm; onChange: (f: HttpsForm) => void; disabled: boolean; errors: Record<string, string> }): JSX.Element {
  const redirectError = errors["https.redirect"] ?? errors.https;
  return (
    <fieldset class="settings-group">
      <legend>HTTPS</legend>
      <p class="hint" id="set-https-hint">
        Applies at once. The redirect (308) and HSTS apply only to the host names whose certificate the ingress serves: the others stay on plain HTTP.
      </p>
      <label class="choice">
        <input
          type="checkbox"
          disabled={disabled}
          checked={form.redirect}
          aria-describedby={`set-https-hint${redirectError ? " set-redirect-error" : ""}`}
          aria-invalid={redirectError ? "true" : undefined}
          onChange={(e) => onChange(e.currentTarget.checked ? { ...form, redirect: true } : { redirect: false, hsts: "0" })}
        />{" "}
        Redirect HTTP to HTTPS
      </label>
      {redirectError && (
        <p class="field-error" id="set-redirect-error">
          {redirectError}
        </p>
      )}
      <Field id="set-hsts" label="HSTS max-age (seconds)" error={errors["https.hstsMaxAgeSeconds"]} hint={`0 = off. Browsers then use only HTTPS for this long (31536000 = a year; at most ${HSTS_MAX_SECONDS}). Needs the redirect.`}>
        {(aria) => <input {...aria} disabled={disabled || !form.redirect} type="number" inputMode="numeric" min={0} max={HSTS_MAX_SECONDS} value={form.hsts} onInput={(e) => onChange({ ...form, hsts: e.currentTarget.value })} />}
      </Field>
    </fieldset>
  );
}
