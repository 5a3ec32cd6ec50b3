import { useState } from "preact/hooks";
import type { JSX } from "preact";
import { adminApi, type CertificateUpload, type StoredCertificate } from "../api/admin";
import { formErrors, messageOf, type FormErrors } from "../errors";
import { formatTime } from "../format";
import { isAdmin, principal } from "../session";
import { Alert, Field, focusPageHeading, Loading, PageTitle, StateBadge, useModal, useResource } from "../ui";

/**
 * Certificates (admins, issue 15): every stored certificate, uploaded or issued by ACME (never a
 * key); upload one (a PEM chain and its key, refusals next to the field the API names); remove an
 * uploaded one after a confirmation.
 */
export function CertificatesPage(): JSX.Element {
  const admin = isAdmin(principal.value);
  const list = useResource(() => (admin ? adminApi.listCertificates() : Promise.resolve([])), admin ? "certificates" : "none");
  const [uploading, setUploading] = useState(false);
  const [removing, setRemoving] = useState<StoredCertificate | undefined>(undefined);
  const [said, setSaid] = useState<string | undefined>(undefined);
  if (!admin) {
    return (
      <>
        <PageTitle title="Certificates">Certificates</PageTitle>
        <p class="muted">Uploaded certificates are an admin's to see and change; each environment's settings show its domains' certificates.</p>
      </>
    );
  }
  return (
    <>
      <PageTitle title="Certificates">Certificates</PageTitle>
      <p class="hint certs-intro">
        Custom domains get their certificates by themselves when the platform has a certificate authority (ACME) configured. Upload one you bought or made with your own CA, for example a wildcard for
        the default domains: a valid uploaded certificate is served instead of ACME's for every name it covers (<code>*.example.com</code> covers one label), without a redeploy.
      </p>
      <div class="actions">
        <button
          type="button"
          class="primary"
          aria-haspopup="dialog"
          onClick={() => {
            setSaid(undefined);
            setUploading(true);
          }}
        >
          Upload a certificate
        </button>
      </div>
      {said && (
        <p class="saved" role="status">
          {said}
        </p>
      )}
      <section class="certs-list" aria-labelledby="certs-list-title">
        <h2 id="certs-list-title">Stored certificates</h2>
        {list.error && <Alert>{list.error}</Alert>}
        {list.loading && !list.data && <Loading what="certificates" />}
        {list.data && list.data.length === 0 && <p class="muted">No certificate stored yet.</p>}
        {list.data && list.data.length > 0 && (
          <ul class="token-list" aria-label="Certificates">
            {list.data.map((c) => (
              <CertificateRow key={c.id} certificate={c} onRemove={() => setRemoving(c)} />
            ))}
          </ul>
        )}
      </section>
      {uploading && (
        <UploadDialog
          onClose={() => setUploading(false)}
          onUploaded={(r) => {
            setSaid(uploadedText(r));
            list.reload();
          }}
        />
      )}
      {removing && (
        <RemoveDialog
          certificate={removing}
          onClose={() => setRemoving(undefined)}
          onRemoved={(c) => {
            list.set((old) => old?.filter((x) => x.id !== c.id));
            setSaid(`Removed the certificate for ${c.hostnames.join(", ")}.`);
          }}
        />
      )}
    </>
  );
}

const names = (c: StoredCertificate) => c.hostnames.join(", ");

/** What an upload did, in words: stored or replaced, and whether the hosts get it now. */
function uploadedText(r: CertificateUpload): string {
  const c = r.certificate;
  const what = `${r.replaced ? "Replaced" : "Uploaded"} the certificate for ${names(c)} (serial ${c.serial ?? "unknown"}${r.replaced && r.replacedSerial ? `, replacing serial ${r.replacedSerial}` : ""}).`;
  if (r.jobsQueued === null) return `${what} Hosts get it with their next deployment.`;
  if (r.jobsQueued === 0) return `${what} No environment serves these names yet: it is served as soon as one does.`;
  return `${what} The ${r.jobsQueued === 1 ? "host serving its names gets" : "hosts serving its names get"} it now, without a redeploy.`;
}

function CertificateRow({ certificate: c, onRemove }: { certificate: StoredCertificate; onRemove: () => void }): JSX.Element {
  return (
    <li class="token-row" data-certificate={c.hostnames.join(",")}>
      <div class="token-head">
        <span class="token-name">{names(c)}</span>
        <span class="badge badge-role">{c.source === "acme" ? "ACME" : "uploaded"}</span>
        <StateBadge state={c.status} />
        {c.source === "uploaded" && (
          <button type="button" class="danger token-action" aria-haspopup="dialog" aria-label={`Remove the certificate for ${names(c)}`} onClick={onRemove}>
            Remove
          </button>
        )}
      </div>
      <dl class="facts">
        <dt>Serial</dt>
        <dd class="mono">{c.serial ?? "none yet"}</dd>
        {c.notBefore && (
          <>
            <dt>Valid from</dt>
            <dd>{formatTime(c.notBefore)}</dd>
          </>
        )}
        <dt>{c.status === "expired" ? "Expired" : "Valid until"}</dt>
        <dd>{c.notAfter ? formatTime(c.notAfter) : "not issued yet"}</dd>
        {c.uploadedBy && (
          <>
            <dt>Uploaded by</dt>
            <dd>{c.uploadedBy}</dd>
          </>
        )}
        {c.lastError && (
          <>
            <dt>Last error</dt>
            <dd>{c.lastError}</dd>
          </>
        )}
        <dt>Changed</dt>
        <dd>{formatTime(c.updatedAt)}</dd>
      </dl>
    </li>
  );
}

/** A file input that reads a PEM file into the textarea beside it (nothing is sent until Upload). */
function PemFile({ id, label, onText, onError }: { id: string; label: string; onText: (text: string) => void; onError: (message: string) => void }): JSX.Element {
  const read = async (e: Event) => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (!file) return;
    try {
      onText(await file.text());
    } catch (err) {
      onError(`${file.name} could not be read: ${messageOf(err)}`);
    }
  };
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} type="file" accept=".pem,.crt,.cer,.key,text/plain" onChange={read} />
    </div>
  );
}

function UploadDialog({ onClose, onUploaded }: { onClose: () => void; onUploaded: (r: CertificateUpload) => void }): JSX.Element {
  const ref = useModal();
  const [chain, setChain] = useState("");
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({ fields: {} });
    try {
      // Sent as pasted: the API reads the PEM blocks and says which field is wrong.
      const r = await adminApi.uploadCertificate({ certificate: chain, privateKey: key });
      setKey("");
      onUploaded(r);
      ref.current?.close();
    } catch (err) {
      setErrors(formErrors(err, ["certificate", "privateKey"]));
      setBusy(false);
    }
  };
  const fileError = (message: string) => setErrors({ fields: {}, form: message });
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="upload-cert-title" onClose={onClose}>
      <h2 id="upload-cert-title">Upload a certificate</h2>
      <form onSubmit={submit} noValidate aria-label="Upload a certificate">
        <Field id="cert-chain" label="Certificate chain (PEM)" error={errors.fields.certificate} hint="The site's certificate first, then the certificates that issued it. It is served for the DNS names of its subjectAltName.">
          {(aria) => <textarea {...aria} rows={6} spellcheck={false} autocomplete="off" placeholder="-----BEGIN CERTIFICATE-----" value={chain} onInput={(e) => setChain(e.currentTarget.value)} />}
        </Field>
        <PemFile id="cert-chain-file" label="Or read the chain from a file" onText={setChain} onError={fileError} />
        <Field id="cert-key" label="Private key (PEM)" error={errors.fields.privateKey} hint="RSA or ECDSA, without a passphrase. It is stored encrypted and never shown again.">
          {(aria) => <textarea {...aria} rows={6} spellcheck={false} autocomplete="off" placeholder="-----BEGIN PRIVATE KEY-----" value={key} onInput={(e) => setKey(e.currentTarget.value)} />}
        </Field>
        <PemFile id="cert-key-file" label="Or read the key from a file" onText={setKey} onError={fileError} />
        {errors.form && <Alert>{errors.form}</Alert>}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Uploading…" : "Upload"}
          </button>
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

function RemoveDialog({ certificate: c, onClose, onRemoved }: { certificate: StoredCertificate; onClose: () => void; onRemoved: (c: StoredCertificate) => void }): JSX.Element {
  const ref = useModal();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await adminApi.removeCertificate(c.id);
      onRemoved(c);
      ref.current?.close();
      focusPageHeading();
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="remove-cert-title" aria-describedby="remove-cert-what" onClose={onClose}>
      <h2 id="remove-cert-title">Remove the certificate for {names(c)}?</h2>
      <p id="remove-cert-what">
        Serial {c.serial ?? "unknown"}. The hosts serving it take it off without a redeploy: the names it covers are served with their ACME certificate where there is one, else over plain HTTP
        only. Its key is deleted.
      </p>
      {error && <Alert>{error}</Alert>}
      <div class="actions">
        <button type="button" class="danger" onClick={go} disabled={busy}>
          {busy ? "Removing…" : "Remove certificate"}
        </button>
        <button type="button" onClick={() => ref.current?.close()}>
          Keep it
        </button>
      </div>
    </dialog>
  );
}
