import { useState } from "preact/hooks";
import type { JSX } from "preact";
import type { Role } from "../api";
import { adminApi, type ApiToken } from "../api/admin";
import { formErrors, messageOf, type FormErrors } from "../errors";
import { formatTime } from "../format";
import { isAdmin, principal } from "../session";
import { Alert, Field, focusPageHeading, Loading, PageTitle, StateBadge, useModal, useResource } from "../ui";

/** API tokens (admins): every token with its role, apps and uses; create one (its secret shown once), revoke one. */
export function TokensPage(): JSX.Element {
  const admin = isAdmin(principal.value);
  const list = useResource(() => (admin ? adminApi.listTokens() : Promise.resolve([])), admin ? "tokens" : "none");
  const [revoking, setRevoking] = useState<ApiToken | undefined>(undefined);
  if (!admin) {
    return (
      <>
        <PageTitle title="Tokens">Tokens</PageTitle>
        <p class="muted">API tokens are an admin's to see and change.</p>
      </>
    );
  }
  return (
    <>
      <PageTitle title="Tokens">Tokens</PageTitle>
      <CreateToken onCreated={(t) => list.set((old) => (old ? [...old, t] : [t]))} />
      <section aria-labelledby="tokens-list-title">
        <h2 id="tokens-list-title">Every token</h2>
        {list.error && <Alert>{list.error}</Alert>}
        {list.loading && !list.data && <Loading what="tokens" />}
        {list.data && (
          <ul class="token-list" aria-label="Tokens">
            {[...list.data].reverse().map((t) => (
              <TokenRow key={t.id} token={t} onRevoke={() => setRevoking(t)} />
            ))}
          </ul>
        )}
      </section>
      {revoking && (
        <RevokeDialog
          token={revoking}
          onClose={() => setRevoking(undefined)}
          onRevoked={(t) => list.set((old) => old?.map((x) => (x.id === t.id ? t : x)))}
        />
      )}
    </>
  );
}

function statusOf(t: ApiToken, now: number): "active" | "revoked" | "expired" {
  if (t.revokedAt) return "revoked";
  if (t.expiresAt && Date.parse(t.expiresAt) <= now) return "expired";
  return "active";
}

function TokenRow({ token: t, onRevoke }: { token: ApiToken; onRevoke: () => void }): JSX.Element {
  const status = statusOf(t, Date.now());
  return (
    <li class="token-row" data-token={t.name}>
      <div class="token-head">
        <span class="token-name">{t.name}</span>
        <span class="badge badge-role">{t.role}</span>
        {status !== "active" && <StateBadge state={status} />}
        {t.bootstrap && <span class="muted">bootstrap</span>}
        {status === "active" && (
          <button type="button" class="danger token-action" aria-haspopup="dialog" aria-label={`Revoke ${t.name}`} onClick={onRevoke}>
            Revoke
          </button>
        )}
      </div>
      <dl class="facts">
        <dt>Apps</dt>
        <dd>{t.role === "admin" ? "every app" : t.apps.join(", ")}</dd>
        <dt>Created</dt>
        <dd>{formatTime(t.createdAt)}</dd>
        <dt>Last used</dt>
        <dd>{t.lastUsedAt ? formatTime(t.lastUsedAt) : "never"}</dd>
        {t.expiresAt && (
          <>
            <dt>{status === "expired" ? "Expired" : "Expires"}</dt>
            <dd>{formatTime(t.expiresAt)}</dd>
          </>
        )}
        {t.revokedAt && (
          <>
            <dt>Revoked</dt>
            <dd>{formatTime(t.revokedAt)}</dd>
          </>
        )}
      </dl>
    </li>
  );
}

const ROLES: Array<{ role: Role; hint: string }> = [
  { role: "viewer", hint: "reads the apps it names" },
  { role: "deployer", hint: "deploys and changes the apps it names (no shell in live)" },
  { role: "admin", hint: "everything, every app, the fleet and the tokens" },
];

function CreateToken({ onCreated }: { onCreated: (t: ApiToken) => void }): JSX.Element {
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [apps, setApps] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [created, setCreated] = useState<{ name: string; secret: string } | undefined>(undefined);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({ fields: {} });
    setCreated(undefined);
    const appList = apps.split(/[\s,]+/).filter(Boolean);
    try {
      const { token, ...view } = await adminApi.createToken({ name: name.trim(), role, ...(role === "admin" ? {} : { apps: appList }) });
      onCreated(view);
      setCreated({ name: view.name, secret: token });
      setName("");
      setApps("");
    } catch (err) {
      setErrors(formErrors(err, ["name", "role", "apps"]));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-token-title">
      <h2 id="create-token-title">Create a token</h2>
      <form onSubmit={submit} noValidate>
        <Field id="token-name" label="Name" error={errors.fields.name} hint="Who or what uses it, e.g. ci-shop or alice-laptop.">
          {(aria) => <input {...aria} name="name" autoComplete="off" spellcheck={false} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <fieldset class="roles" aria-describedby={errors.fields.role ? "token-role-error" : undefined}>
          <legend>Role</legend>
          {ROLES.map((r) => (
            <label key={r.role} class="choice">
              <input type="radio" name="role" value={r.role} checked={role === r.role} onChange={() => setRole(r.role)} />
              <span>
                {r.role} <span class="muted">— {r.hint}</span>
              </span>
            </label>
          ))}
          {errors.fields.role && (
            <p class="field-error" id="token-role-error">
              {errors.fields.role}
            </p>
          )}
        </fieldset>
        {role !== "admin" && (
          <Field id="token-apps" label="Apps" error={errors.fields.apps} hint="The app names it may act on, separated by commas or spaces.">
            {(aria) => <input {...aria} name="apps" autoComplete="off" spellcheck={false} value={apps} onInput={(e) => setApps(e.currentTarget.value)} />}
          </Field>
        )}
        {errors.form && <Alert>{errors.form}</Alert>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Creating…" : "Create token"}
        </button>
      </form>
      {created && (
        <div class="created secret-once" role="status">
          <p>
            Created <strong>{created.name}</strong>. Copy its secret now: <strong>it is not shown again</strong> (only a hash of it is kept).
          </p>
          <label for="token-secret">Secret of {created.name}</label>
          <div class="copy-row">
            <input id="token-secret" readOnly value={created.secret} class="mono" onFocus={(e) => e.currentTarget.select()} />
            <CopyButton text={created.secret} what="the secret" />
          </div>
        </div>
      )}
    </section>
  );
}

function RevokeDialog({ token, onClose, onRevoked }: { token: ApiToken; onClose: () => void; onRevoked: (t: ApiToken) => void }): JSX.Element {
  const ref = useModal();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      onRevoked(await adminApi.revokeToken(token.id));
      ref.current?.close();
      focusPageHeading();
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="revoke-token-title" aria-describedby="revoke-token-what" onClose={onClose}>
      <h2 id="revoke-token-title">Revoke {token.name}?</h2>
      <p id="revoke-token-what">
        Every call with this {token.role} token is refused from the next one on, and its dashboard sessions end. This cannot be undone: create a new token instead.
      </p>
      {error && <Alert>{error}</Alert>}
      <div class="actions">
        <button type="button" class="danger" onClick={go} disabled={busy}>
          {busy ? "Revoking…" : `Revoke ${token.name}`}
        </button>
        <button type="button" onClick={() => ref.current?.close()}>
          Keep it
        </button>
      </div>
    </dialog>
  );
}

/**
 * Copies `text` to the clipboard and says so. Where the clipboard API is refused (no secure
 * context, no permission), the text is in a field beside it to select and copy by hand.
 */
export function CopyButton({ text, what }: { text: string; what: string }): JSX.Element {
  const [said, setSaid] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setSaid(`Copied ${what}.`);
    } catch {
      setSaid(`Could not copy ${what}: select it and copy it by hand.`);
    }
  };
  return (
    <>
      <button type="button" onClick={copy} aria-label={`Copy ${what}`}>
        Copy
      </button>
      <span class="copy-said" role="status">
        {said}
      </span>
    </>
  );
}
