import { useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, type DeploymentView } from "../api";
import { messageOf } from "../errors";
import { formatTime } from "../format";
import { Link, navigate } from "../router";
import { EnvNav } from "../env-nav";
import { mayChange, principal } from "../session";
import { Alert, Loading, PageTitle, StateBadge, useModal, useResource } from "../ui";

const PAGE = 20;

/** An environment's deployments, newest first, a page at a time; Rollback on those whose image is kept (for those who may change the app). */
export function HistoryPage({ app, env }: { app: string; env: string }): JSX.Element {
  // A page at a time (one more asked, to know whether there are older ones): no page loads more than it shows.
  const list = useResource(() => api.listDeployments(app, env, PAGE + 1), `${app}/${env}`);
  const [older, setOlder] = useState<{ rows: DeploymentView[]; more: boolean; busy: boolean; error?: string }>({ rows: [], more: false, busy: false });
  const [target, setTarget] = useState<DeploymentView | undefined>(undefined);
  const canChange = mayChange(principal.value, app);
  const loadOlder = async () => {
    const shown = [...(list.data ?? []).slice(0, PAGE), ...older.rows];
    const last = shown[shown.length - 1];
    if (!last) return;
    setOlder((o) => ({ ...o, busy: true, error: undefined }));
    try {
      const rows = await api.listDeployments(app, env, PAGE + 1, last.id);
      setOlder((o) => ({ rows: [...o.rows, ...rows.slice(0, PAGE)], more: rows.length > PAGE, busy: false }));
    } catch (err) {
      setOlder((o) => ({ ...o, busy: false, error: messageOf(err) }));
    }
  };

  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title={`Deployments of ${app}/${env}`}>
        Deployments of {app} / {env}
      </PageTitle>
      {list.error && <Alert>{list.error}</Alert>}
      {list.loading && !list.data && <Loading what="deployments" />}
      {list.data && list.data.length === 0 && <p class="muted">No deployment yet.</p>}
      {list.data && list.data.length > 0 && (
        <ol class="history" aria-label="Deployments">
          {[...list.data.slice(0, PAGE), ...older.rows].map((d) => (
            <li key={d.id} class="history-row" data-deployment={d.id}>
              <StateBadge state={d.state} />
              <Link href={`/deployments/${encodeURIComponent(d.id)}`}>{d.kind && d.kind !== "deploy" ? `${d.kind} ` : ""}{d.commit ? d.commit.slice(0, 7) : d.id.slice(0, 8)}</Link>
              <span class="muted">
                {formatTime(d.finishedAt ?? d.queuedAt)}
                {d.requestedBy ? ` by ${d.requestedBy}` : ""}
              </span>
              {canChange && d.rollbackable && (
                <button type="button" class="history-action" onClick={() => setTarget(d)} aria-haspopup="dialog" aria-label={`Roll back to ${d.commit ? d.commit.slice(0, 7) : d.id.slice(0, 8)} of ${formatTime(d.finishedAt ?? d.queuedAt)}`}>
                  Roll back
                </button>
              )}
            </li>
          ))}
        </ol>
      )}
      {list.data && (older.rows.length > 0 ? older.more : list.data.length > PAGE) && (
        <p>
          <button type="button" onClick={loadOlder} disabled={older.busy}>
            {older.busy ? "Loading older deployments…" : "Older deployments"}
          </button>
        </p>
      )}
      {older.error && <Alert>{older.error}</Alert>}
      {target && <RollbackDialog app={app} env={env} target={target} onClose={() => setTarget(undefined)} />}
    </>
  );
}

function RollbackDialog({ app, env, target, onClose }: { app: string; env: string; target: DeploymentView; onClose: () => void }): JSX.Element {
  const ref = useModal();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const what = target.commit ? target.commit.slice(0, 7) : target.id.slice(0, 8);
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const d = await api.deploy(app, env, { rollbackTo: target.id });
      onClose();
      navigate(`/deployments/${encodeURIComponent(d.id)}`);
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="rollback-title" aria-describedby="rollback-what" onClose={onClose}>
      <h2 id="rollback-title">
        Roll back {app}/{env}?
      </h2>
      <p id="rollback-what">
        {app}/{env} runs the image, settings and variables of {what} ({formatTime(target.finishedAt ?? target.queuedAt)}) again. The database is not rolled back: restore a backup for that.
      </p>
      {error && <Alert>{error}</Alert>}
      <div class="actions">
        <button type="button" class="danger" onClick={go} disabled={busy}>
          {busy ? "Rolling back…" : `Roll back to ${what}`}
        </button>
        <button type="button" onClick={() => ref.current?.close()}>
          Keep what runs
        </button>
      </div>
    </dialog>
  );
}
