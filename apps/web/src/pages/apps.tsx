import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, isSshRepository, streams, type AppView, type DeployKey } from "../api";
import { formErrors, messageOf, type FormErrors } from "../errors";
import { Link, navigate } from "../router";
import { isAdmin, principal } from "../session";
import { useEventStream } from "../sse";
import { Alert, Field, Loading, PageTitle, StateBadge, useResource } from "../ui";

/** Every app the token may see, with its environments' states at a glance; admins create apps here. */
export function AppsPage(): JSX.Element {
  const apps = useResource(() => api.listApps(), "apps");
  const admin = isAdmin(principal.value);
  // Live: every change to an app or environment is in the activity feed; the list is read again
  // after one (at most twice a second, however many arrive), so the states shown follow by themselves.
  // The whole feed is an admin's; others' lists (their few apps) are read again every 15 s while shown.
  const pendingReload = useRef<number | undefined>(undefined);
  useEventStream(admin ? streams.activity() : undefined, {
    activity: () => {
      if (pendingReload.current !== undefined) return;
      pendingReload.current = window.setTimeout(() => {
        pendingReload.current = undefined;
        apps.reload();
      }, 500);
    },
  });
  useEffect(() => {
    if (admin) return;
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") apps.reload();
    }, 15_000);
    return () => window.clearInterval(timer);
  }, [admin]);
  useEffect(() => () => window.clearTimeout(pendingReload.current), []);
  return (
    <>
      <PageTitle title="Apps">Apps</PageTitle>
      {apps.error && <Alert>{apps.error}</Alert>}
      {apps.loading && !apps.data && <Loading what="apps" />}
      {apps.data && apps.data.length === 0 && <p class="muted">No apps yet{admin ? ": create the first one below." : "."}</p>}
      {apps.data && apps.data.length > 0 && (
        <ul class="app-list">
          {apps.data.map((a) => (
            <AppRow key={a.name} app={a} />
          ))}
        </ul>
      )}
      {admin && <CreateApp onCreated={apps.reload} />}
    </>
  );
}

function AppRow({ app }: { app: AppView }): JSX.Element {
  return (
    <li class="app-row">
      <div class="app-row-head">
        <Link href={`/apps/${encodeURIComponent(app.name)}`} class="app-name">
          {app.name}
        </Link>
        <span class="muted repo" title={app.repository}>
          {app.repository}
        </span>
      </div>
      <ul class="env-states" aria-label={`Environments of ${app.name}`}>
        {app.environments.map((e) => (
          <li key={e.name}>
            <span class="env-name">{e.name}</span> <StateBadge state={e.state} />
          </li>
        ))}
      </ul>
    </li>
  );
}

function CreateApp({ onCreated }: { onCreated: () => void }): JSX.Element {
  const [name, setName] = useState("");
  const [repository, setRepository] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [created, setCreated] = useState<{ app: AppView; key?: DeployKey; keyError?: string } | undefined>(undefined);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({ fields: {} });
    try {
      const app = await api.createApp({ name: name.trim(), repository: repository.trim() });
      onCreated();
      if (!isSshRepository(app.repository)) {
        navigate(`/apps/${encodeURIComponent(app.name)}`);
        return;
      }
      // A repository over SSH is read with the app's deploy key: it must be added to the repository first.
      let key: DeployKey | undefined;
      let keyError: string | undefined;
      try {
        key = await api.deployKey(app.name);
      } catch (err) {
        keyError = messageOf(err);
      }
      setCreated({ app, ...(key ? { key } : {}), ...(keyError ? { keyError } : {}) });
      setName("");
      setRepository("");
    } catch (err) {
      setErrors(formErrors(err, ["name", "repository"]));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-app-title">
      <h2 id="create-app-title">Create app</h2>
      <form onSubmit={submit} noValidate>
        <Field id="app-name" label="Name" error={errors.fields.name} hint="Lower-case letters, digits and dashes; it names the environments' host names.">
          {(aria) => <input {...aria} name="name" autoComplete="off" spellcheck={false} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <Field id="app-repository" label="Repository" error={errors.fields.repository} hint="A git URL whose root holds a Dockerfile: https://… or git@host:owner/repo.git (private: add the deploy key shown next).">
          {(aria) => (
            <input {...aria} name="repository" autoComplete="off" spellcheck={false} value={repository} onInput={(e) => setRepository(e.currentTarget.value)} />
          )}
        </Field>
        {errors.form && <Alert>{errors.form}</Alert>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Creating…" : "Create app"}
        </button>
      </form>
      {created && (
        <div class="created" role="status">
          <p>
            Created <Link href={`/apps/${encodeURIComponent(created.app.name)}`}>{created.app.name}</Link>. Add this deploy key to the repository (read-only) before
            the first deployment:
          </p>
          {created.key && (
            <>
              <label for="deploy-key">Deploy key</label>
              <textarea id="deploy-key" readOnly rows={3} value={created.key.publicKey} />
              <p class="muted">Fingerprint {created.key.fingerprint}</p>
            </>
          )}
          {created.keyError && <Alert>{created.keyError}</Alert>}
        </div>
      )}
    </section>
  );
}
