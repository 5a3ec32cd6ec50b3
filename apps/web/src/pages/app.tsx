import { useEffect, useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, streams, type AppView, type DeploymentView, type EnvironmentView } from "../api";
import { messageOf } from "../errors";
import { formatTime, localizeStatusLine, stateLabel } from "../format";
import { Link, navigate } from "../router";
import { isAdmin, mayChange, principal } from "../session";
import { useEventStream, type StreamState } from "../sse";
import { DeployDialog } from "./deploy-dialog";
import { Alert, Loading, PageTitle, StateBadge, useResource } from "../ui";

/** One app: a card per environment, kept current by the app's event stream. */
export function AppPage({ app: name }: { app: string }): JSX.Element {
  const app = useResource(() => api.getApp(name), name);
  const [last, setLast] = useState<Record<string, DeploymentView | null>>({});
  const [hosts, setHosts] = useState<Record<string, string>>({});
  const who = principal.value;

  const refreshLast = (env: string) => {
    api.listDeployments(name, env, 1).then(
      (list) => setLast((m) => ({ ...m, [env]: list[0] ?? null })),
      () => undefined, // the card still shows the status lines; the link waits for the next event
    );
  };
  const envNames = app.data?.environments.map((e) => e.name).join(",") ?? "";
  useEffect(() => {
    for (const env of envNames.split(",").filter(Boolean)) refreshLast(env);
  }, [name, envNames]);
  useEffect(() => {
    // Host names are an admin's to list; other roles see the host's id.
    if (!isAdmin(who)) return;
    api.listHosts().then(
      (list) => setHosts(Object.fromEntries(list.map((h) => [h.id, h.name]))),
      () => undefined,
    );
  }, [who?.name]);

  const live = useEventStream(streams.app(name), {
    environment: (ev) => {
      let view: EnvironmentView;
      try {
        view = JSON.parse(ev.data) as EnvironmentView;
      } catch {
        return;
      }
      const before = app.data?.environments.find((e) => e.name === view.name);
      app.set((old) => (old ? { ...old, environments: upsert(old.environments, view) } : old));
      // The stream repeats every environment at (re)connection: its last deployment is asked again only when it moved.
      if (!before || before.state !== view.state || JSON.stringify(before.status.lastDeployment) !== JSON.stringify(view.status.lastDeployment)) refreshLast(view.name);
    },
    removed: (ev) => {
      let name: string | undefined;
      try {
        name = (JSON.parse(ev.data) as { name?: string }).name;
      } catch {
        return;
      }
      app.set((old) => (old ? { ...old, environments: old.environments.filter((e) => e.name !== name) } : old));
    },
    end: () => {
      // The app was removed: nothing more will come.
      live.close();
      app.reload();
    },
  });

  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/">Apps</Link> <span aria-hidden="true">/</span> {name}
      </nav>
      <div class="title-row">
        <PageTitle title={name}>{name}</PageTitle>
        <LiveState state={live.state} />
      </div>
      {app.error && <Alert>{app.error}</Alert>}
      {app.loading && !app.data && <Loading what="environments" />}
      {app.data && (
        <>
          <p class="muted repo">{app.data.repository}</p>
          <div class="cards">
            {app.data.environments.map((env) => (
              <EnvironmentCard key={env.name} app={app.data!} env={env} last={last[env.name]} hostName={env.host ? (hosts[env.host] ?? env.host.slice(0, 8)) : undefined} canDeploy={mayChange(who, name)} />
            ))}
          </div>
        </>
      )}
    </>
  );
}

function upsert(list: EnvironmentView[], view: EnvironmentView): EnvironmentView[] {
  const i = list.findIndex((e) => e.name === view.name);
  if (i === -1) return [...list, view];
  const next = list.slice();
  next[i] = view;
  return next;
}

/** Whether the page is following the live stream (shown, so a stale page never looks current). */
export function LiveState({ state }: { state: StreamState }): JSX.Element {
  const text = state === "live" ? "Live" : state === "closed" ? "Not live (reload the page)" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
  return <span class={`live live-${state}`}>{text}</span>;
}

interface CardProps {
  app: AppView;
  env: EnvironmentView;
  last: DeploymentView | null | undefined;
  hostName: string | undefined;
  canDeploy: boolean;
}

function EnvironmentCard({ app, env, last, hostName, canDeploy }: CardProps): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [options, setOptions] = useState(false);
  const titleId = `env-${env.name}-title`;

  const deploy = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const d = await api.deploy(app.name, env.name, { build: "auto" });
      navigate(`/deployments/${encodeURIComponent(d.id)}`);
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };

  return (
    <article class="card" aria-labelledby={titleId} data-environment={env.name}>
      <header class="card-head">
        <h2 id={titleId}>{env.name}</h2>
        <StateBadge state={env.state} />
      </header>
      <ul class="status-lines" aria-label="Status">
        {env.status.lines.map((l) => (
          <li key={l}>{localizeStatusLine(l)}</li>
        ))}
      </ul>
      {(env.status.unappliedChanges || (env.status.undeployedCommits ?? 0) > 0) && (
        <p>
          <Link href={`/apps/${encodeURIComponent(app.name)}/environments/${encodeURIComponent(env.name)}/pending`}>See what is pending in {env.name}</Link>
        </p>
      )}
      {env.status.syncError && <p class="warning">Repository: {env.status.syncError}</p>}
      <dl class="facts">
        <dt>URL</dt>
        <dd>
          <a href={env.url} target="_blank" rel="noopener noreferrer">
            {env.url}
          </a>
        </dd>
        <dt>Branch</dt>
        <dd>{env.branch}</dd>
        <dt>Host</dt>
        <dd>{hostName ?? <span class="muted">not placed yet</span>}</dd>
        <dt>Last deployment</dt>
        <dd>
          {last ? (
            <Link href={`/deployments/${encodeURIComponent(last.id)}`}>
              {stateLabel(last.state)}
              {last.finishedAt ? ` at ${formatTime(last.finishedAt)}` : last.startedAt ? ` since ${formatTime(last.startedAt)}` : ""}
            </Link>
          ) : last === null ? (
            <span class="muted">none yet</span>
          ) : (
            <span class="muted">…</span>
          )}
        </dd>
      </dl>
      {last && (
        <p>
          <Link href={`/apps/${encodeURIComponent(app.name)}/environments/${encodeURIComponent(env.name)}/deployments`}>Deployments of {env.name}</Link>
        </p>
      )}
      {canDeploy && (
        <div class="actions">
          <button type="button" class="primary" onClick={deploy} disabled={busy} aria-describedby={error ? `${titleId}-error` : undefined}>
            {busy ? "Deploying…" : `Deploy ${env.name}`}
          </button>
          <button type="button" onClick={() => setOptions(true)} aria-haspopup="dialog">
            Deploy with options…
          </button>
        </div>
      )}
      {error && (
        <p class="alert" role="alert" id={`${titleId}-error`}>
          {error}
        </p>
      )}
      {options && <DeployDialog app={app} env={env} onClose={() => setOptions(false)} />}
    </article>
  );
}
