import { useEffect, useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, streams, type AppView, type DeploymentView, type EnvironmentView } from "../api";
import { messageOf } from "../errors";
import { formatTime, localizeStatusLine, stateLabel } from "../format";
import { Link, navigate } from "../router";
import { isAdmin, mayChange, principal } from "../session";
import { useEventStream, type StreamState } from "../sse";
import { DeployDialog } from "./deploy-dialog";
import { settingsApi } from "../api/settings";
import { AddEnvironmentDialog, RemoveEnvironmentDialog } from "./env-dialogs";
import { Alert, Loading, PageTitle, StateBadge, useResource } from "../ui";

/** One app: a card per environment, kept current by the app's event stream. */
export function AppPage({ app: name }: { app: string }): JSX.Element {
  const app = useResource(() => api.getApp(name), name);
  const [last, setLast] = useState<Record<string, DeploymentView | null>>({});
  const [hosts, setHosts] = useState<Record<string, string>>({});
  const who = principal.value;
  const [adding, setAdding] = useState(false);

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
      <div class="actions app-actions">
        <Link href={`/apps/${encodeURIComponent(name)}/settings`}>App settings</Link>
        {app.data && mayChange(who, name) && (
          <button type="button" onClick={() => setAdding(true)} aria-haspopup="dialog">
            Add environment
          </button>
        )}
      </div>
      {adding && app.data && <AddEnvironmentDialog app={app.data} onClose={() => setAdding(false)} onAdded={(view) => app.set((old) => (old ? { ...old, environments: upsert(old.environments, view) } : old))} />}
      {app.error && <Alert>{app.error}</Alert>}
      {app.loading && !app.data && <Loading what="environments" />}
      {app.data && (
        <>
          <p class="muted repo">{app.data.repository}</p>
          <div class="cards">
            {app.data.environments.map((env) => (
              <EnvironmentCard
                key={env.name}
                app={app.data!}
                env={env}
                last={last[env.name]}
                hostName={env.host ? (hosts[env.host] ?? env.host.slice(0, 8)) : undefined}
                canDeploy={mayChange(who, name)}
                onChange={(view) => app.set((old) => (old ? { ...old, environments: upsert(old.environments, view) } : old))}
                onRemoved={() => app.set((old) => (old ? { ...old, environments: old.environments.filter((e) => e.name !== env.name) } : old))}
              />
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
  /** The environment as the API answered a change (the stream brings the later states). */
  onChange: (view: EnvironmentView) => void;
  onRemoved: () => void;
}

/** The pages of one environment, linked from its card. */
const ENV_PAGES = [
  ["settings", "Settings"],
  ["logs", "Logs"],
  ["metrics", "Metrics"],
  ["data", "Data"],
  ["terminal", "Terminal"],
  ["deployments", "Deployments"],
] as const;

/** Test and live are every app's: the API refuses to remove them. */
const KEPT = ["test", "live"];

function EnvironmentCard({ app, env, last, hostName, canDeploy, onChange, onRemoved }: CardProps): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [options, setOptions] = useState(false);
  const [removing, setRemoving] = useState(false);
  const titleId = `env-${env.name}-title`;
  const base = `/apps/${encodeURIComponent(app.name)}/environments/${encodeURIComponent(env.name)}`;
  // Stop and start need something deployed and no deployment running (the API's rule).
  const runAction = env.state === "stopped" ? "start" : env.image && env.state !== "deploying" ? "stop" : undefined;

  const setRunning = async (action: "stop" | "start") => {
    setBusy(true);
    setError(undefined);
    try {
      onChange(await settingsApi.setRunning(app.name, env.name, action));
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

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
          <Link href={`${base}/deployments`}>Deployments of {env.name}</Link>
        </p>
      )}
      <nav aria-label={`Pages of ${env.name}`}>
        <ul class="env-links">
          {ENV_PAGES.map(([path, label]) => (
            <li key={path}>
              <Link href={`${base}/${path}`}>{label}</Link>
            </li>
          ))}
        </ul>
      </nav>
      {canDeploy && (
        <div class="actions">
          <button type="button" class="primary" onClick={deploy} disabled={busy} aria-describedby={error ? `${titleId}-error` : undefined}>
            {busy ? "Deploying…" : `Deploy ${env.name}`}
          </button>
          <button type="button" onClick={() => setOptions(true)} aria-haspopup="dialog">
            Deploy with options…
          </button>
          {runAction && (
            <button type="button" disabled={busy} onClick={() => setRunning(runAction)}>
              {runAction === "stop" ? `Stop ${env.name}` : `Start ${env.name}`}
            </button>
          )}
          <details class="menu">
            <summary>More for {env.name}</summary>
            {KEPT.includes(env.name) ? (
              <p class="muted">{env.name} cannot be removed: every app keeps test and live.</p>
            ) : (
              <button type="button" class="danger" onClick={() => setRemoving(true)} aria-haspopup="dialog">
                Remove {env.name}…
              </button>
            )}
          </details>
        </div>
      )}
      {error && (
        <p class="alert" role="alert" id={`${titleId}-error`}>
          {error}
        </p>
      )}
      {options && <DeployDialog app={app} env={env} onClose={() => setOptions(false)} />}
      {removing && <RemoveEnvironmentDialog app={app.name} env={env.name} onClose={() => setRemoving(false)} onRemoved={onRemoved} />}
    </article>
  );
}
