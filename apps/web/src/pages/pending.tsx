import { useRef, useState } from "preact/hooks";
import { Fragment } from "preact";
import type { JSX } from "preact";
import { api, streams, type EnvironmentView, type PendingView } from "../api";
import { messageOf } from "../errors";
import { formatTime } from "../format";
import { navigate } from "../router";
import { EnvNav } from "../env-nav";
import { mayChange, principal } from "../session";
import { useEventStream } from "../sse";
import { Alert, Loading, PageTitle, useResource } from "../ui";

/** What a deployment of the environment would bring: its undeployed commits (like `git log --oneline`) and changes by name, never values. */
export function PendingPage({ app, env }: { app: string; env: string }): JSX.Element {
  const pending = useResource(() => api.pending(app, env), `${app}/${env}`);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const p = pending.data;
  // Live: the app's stream says when the environment's count of undeployed commits or its
  // unapplied changes move (a push fetched by the control plane, a variable set elsewhere); the
  // list is read again then, not on every refresh of the mirror.
  const seen = useRef<string | undefined>(undefined);
  useEventStream(streams.app(app), {
    environment: (ev) => {
      let view: EnvironmentView;
      try {
        view = JSON.parse(ev.data) as EnvironmentView;
      } catch {
        return;
      }
      if (view.name !== env) return;
      const key = `${view.status.undeployedCommits}|${view.status.unappliedChanges}|${view.deployedCommit ?? ""}`;
      if (seen.current !== undefined && seen.current !== key) pending.reload();
      seen.current = key;
    },
  });

  const deploy = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const d = await api.deploy(app, env, { build: "auto" });
      navigate(`/deployments/${encodeURIComponent(d.id)}`);
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };

  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title={`Pending in ${app}/${env}`}>
        Pending in {app} / {env}
      </PageTitle>
      {pending.error && <Alert>{pending.error}</Alert>}
      {pending.loading && !p && <Loading what="what is pending" />}
      {p && (
        <>
          <p class="deployment-state">{p.status.message}</p>
          <section aria-labelledby="pending-commits" class="panel">
            <h2 id="pending-commits">Undeployed commits on {p.branch}</h2>
            {p.commits === null ? (
              <p class="muted">The control plane cannot tell yet (its copy of the repository is not synced{p.status.syncError ? `: ${p.status.syncError}` : ""}).</p>
            ) : p.commits.length === 0 ? (
              <p class="muted">None.</p>
            ) : (
              <ul class="commits" aria-label="Commits">
                {p.commits.map((c) => (
                  <li key={c.sha}>
                    <code>{c.sha.slice(0, 7)}</code> {c.message.split("\n")[0]}{" "}
                    <span class="muted">
                      ({c.author}, {formatTime(c.at)})
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </section>
          <section aria-labelledby="pending-changes" class="panel">
            <h2 id="pending-changes">Unapplied changes</h2>
            <Changes changes={p.changes} />
          </section>
          {mayChange(principal.value, app) && (
            <div class="actions">
              <button type="button" class="primary" onClick={deploy} disabled={busy}>
                {busy ? "Deploying…" : `Deploy ${env}`}
              </button>
            </div>
          )}
          {error && <Alert>{error}</Alert>}
        </>
      )}
    </>
  );
}

function Changes({ changes: c }: { changes: PendingView["changes"] }): JSX.Element {
  const items: JSX.Element[] = [];
  if (c.branch) items.push(<li key="branch">Branch: {c.branch.from} → {c.branch.to}</li>);
  const v = c.variables;
  if (v) {
    for (const [what, keys] of [["added", v.added], ["changed", v.changed], ["removed", v.removed]] as const) {
      if (keys.length) items.push(<li key={`vars-${what}`}>Variables {what}: {keys.map((k, i) => (
              <Fragment key={k}>
                {i > 0 && ", "}
                <code>{k}</code>
              </Fragment>
            ))}</li>);
    }
  }
  if (c.settings?.length) items.push(<li key="settings">Settings: {c.settings.join(", ")}</li>);
  if (c.domains) {
    if (c.domains.added.length) items.push(<li key="dom-add">Domains added: {c.domains.added.join(", ")}</li>);
    if (c.domains.removed.length) items.push(<li key="dom-rm">Domains removed: {c.domains.removed.join(", ")}</li>);
  }
  if (c.replicas) items.push(<li key="replicas">Replicas: {c.replicas.from} → {c.replicas.to}</li>);
  if (c.limits) items.push(<li key="limits">Limits: {Object.keys({ ...c.limits.from, ...c.limits.to }).join(", ")}</li>);
  if (!items.length) return <p class="muted">None.</p>;
  return (
    <ul class="changes" aria-label="Changes">
      {items}
    </ul>
  );
}
