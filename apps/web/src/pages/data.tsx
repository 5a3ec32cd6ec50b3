import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { ApiError, api } from "../api";
import { dataApi, formatBytes, isFinished, type BackupSchedule, type BackupView, type ContentCopyView } from "../api/metrics-data";
import { EnvNav } from "../env-nav";
import { formErrors, messageOf, type FormErrors } from "../errors";
import { formatTime } from "../format";
import { mayChange, principal } from "../session";
import { Alert, Field, Loading, PageTitle, StateBadge, useModal, useResource } from "../ui";

// An environment's data: its backups (create, restore into any environment of the app, download),
// the backup schedule, and a content copy from another environment into this one. A copy or
// restore is followed by polling GET /v1/content-copies/{id} every 250 ms until it ends
// (DECISIONS "Data page"); backups still running are polled in the list every second.
const PAGE_SIZE = 10;
const POLL_MS = 1000;
/** As often as the agent reports a copy's progress: a copy of a few seconds still shows it move. */
const PROGRESS_POLL_MS = 250;

export function DataPage({ app, env }: { app: string; env: string }): JSX.Element {
  const appView = useResource(() => api.getApp(app), app);
  const backups = useResource(() => dataApi.listBackups(app, env), `${app}/${env}`);
  const [operation, setOperation] = useState<string | undefined>(undefined);
  const [operationRunning, setOperationRunning] = useState(false);
  const start = (id: string) => {
    setOperation(id);
    setOperationRunning(true);
  };
  const canChange = mayChange(principal.value, app);
  const envNames = appView.data?.environments.map((e) => e.name) ?? [];

  // Backups still queued or running are followed until they end.
  const running = backups.data?.some((b) => !isFinished(b.state)) ?? false;
  useEffect(() => {
    if (!running) return;
    const t = setTimeout(backups.reload, POLL_MS);
    return () => clearTimeout(t);
  }, [running, backups.data]);

  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title={`Data of ${app}/${env}`}>
        Data of {app} / {env}
      </PageTitle>
      {appView.error && <Alert>{appView.error}</Alert>}
      {operation && <OperationProgress
          id={operation}
          onDone={() => {
            setOperationRunning(false);
            backups.reload();
          }}
          onDismiss={() => setOperation(undefined)} />}
      <Backups app={app} env={env} backups={backups.data} error={backups.error} loading={backups.loading} reload={backups.reload} envNames={envNames} canChange={canChange} onOperation={start} />
      {canChange && envNames.length > 1 && <ContentCopy app={app} env={env} envNames={envNames} busy={operationRunning} onOperation={start} />}
      <Schedule app={app} env={env} canChange={canChange} />
    </>
  );
}

/** A content copy or restore as it runs: state, phase, bytes and objects, until it ends. */
function OperationProgress({ id, onDone, onDismiss }: { id: string; onDone: () => void; onDismiss: () => void }): JSX.Element {
  const [op, setOp] = useState<ContentCopyView | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const done = useRef(onDone);
  done.current = onDone;
  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const c = await dataApi.getContentCopy(id);
        if (!current) return;
        setOp(c);
        setError(undefined);
        if (isFinished(c.state)) {
          done.current();
          return;
        }
      } catch (err) {
        if (current) setError(messageOf(err));
        // Refused or gone (403, 404): asking again every second would not change the answer.
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) return;
      }
      if (current) timer = setTimeout(poll, PROGRESS_POLL_MS);
    };
    void poll();
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [id]);
  const what = op ? (op.kind === "restore" ? `Restore into ${op.to}` : `Content copy from ${op.from} into ${op.to}`) : "Operation";
  const parts = op ? [op.database && "database", op.media && "media"].filter(Boolean).join(" and ") : "";
  return (
    <section class="panel operation" aria-labelledby="operation-title" data-operation={id} data-state={op?.state ?? "loading"}>
      <h2 id="operation-title">{what}</h2>
      {error && <Alert>{error}</Alert>}
      {op ? (
        <div role="status" aria-live="polite" class="operation-status">
          <p>
            <StateBadge state={op.state} /> {parts}
            {op.progress.phase && !isFinished(op.state) ? ` (now: ${op.progress.phase.replace(/-/g, " ")})` : ""}
          </p>
          <p class="progress-counts">
            <span data-bytes={op.progress.bytes}>{formatBytes(op.progress.bytes)} copied</span>, <span data-objects={op.progress.objects}>{op.progress.objects} objects</span>
          </p>
          {op.state === "failed" && op.error?.message && <Alert>{op.error.message}</Alert>}
          {op.safetyBackupId && <p class="muted">The content it replaced is kept in safety backup {op.safetyBackupId.slice(0, 8)}.</p>}
        </div>
      ) : (
        <Loading what="progress" />
      )}
      {op && isFinished(op.state) && (
        <button type="button" onClick={onDismiss}>
          Dismiss
        </button>
      )}
    </section>
  );
}

interface BackupsProps {
  app: string;
  env: string;
  backups: BackupView[] | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
  envNames: string[];
  canChange: boolean;
  onOperation: (id: string) => void;
}

function Backups({ app, env, backups, error, loading, reload, envNames, canChange, onOperation }: BackupsProps): JSX.Element {
  const [page, setPage] = useState(0);
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | undefined>(undefined);
  const [restoring, setRestoring] = useState<BackupView | undefined>(undefined);
  const pages = Math.max(1, Math.ceil((backups?.length ?? 0) / PAGE_SIZE));
  const shown = backups?.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE) ?? [];

  const create = async () => {
    setCreating(true);
    setCreateError(undefined);
    try {
      await dataApi.createBackup(app, env, { database: true, media: true });
      setPage(0);
      reload();
    } catch (err) {
      setCreateError(messageOf(err));
    } finally {
      setCreating(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="backups-title">
      <div class="section-head">
        <h2 id="backups-title">Backups</h2>
        {canChange && (
          <button type="button" class="primary" onClick={create} disabled={creating}>
            {creating ? "Starting backup…" : "Back up now"}
          </button>
        )}
      </div>
      {createError && <Alert>{createError}</Alert>}
      {error && <Alert>{error}</Alert>}
      {loading && !backups && <Loading what="backups" />}
      {backups && backups.length === 0 && <p class="muted">No backup yet.</p>}
      {shown.length > 0 && (
        <ul class="backups" aria-label={`Backups of ${env}`}>
          {shown.map((b) => (
            <li key={b.id} class="backup-row" data-backup={b.id}>
              <StateBadge state={b.state} />
              <span class="backup-kind">{b.kind}</span>
              <span>{[b.database && "database", b.media && "media"].filter(Boolean).join(" + ")}</span>
              <span class="backup-size">{b.sizeBytes !== null ? formatBytes(b.sizeBytes) : ""}{b.mediaObjects !== null ? `, ${b.mediaObjects} objects` : ""}</span>
              <span class="muted">{formatTime(b.finishedAt ?? b.createdAt)}</span>
              {b.state === "failed" && b.error?.message && <span class="field-error">{b.error.message}</span>}
              {canChange && b.state === "succeeded" && (
                <span class="backup-actions">
                  {b.database && (
                    <a href={dataApi.downloadUrl(b.id, "database")} download aria-label={`Download the database of the backup of ${formatTime(b.createdAt)}`}>
                      Database
                    </a>
                  )}
                  {b.media && (
                    <a href={dataApi.downloadUrl(b.id, "media")} download aria-label={`Download the media of the backup of ${formatTime(b.createdAt)}`}>
                      Media
                    </a>
                  )}
                  <button type="button" onClick={() => setRestoring(b)} aria-haspopup="dialog" aria-label={`Restore the backup of ${formatTime(b.createdAt)}`}>
                    Restore
                  </button>
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
      {pages > 1 && (
        <nav class="pager" aria-label="Pages of backups">
          <button type="button" onClick={() => setPage((p) => Math.max(0, p - 1))} disabled={page === 0}>
            Newer
          </button>
          <span>
            Page {page + 1} of {pages}
          </span>
          <button type="button" onClick={() => setPage((p) => Math.min(pages - 1, p + 1))} disabled={page >= pages - 1}>
            Older
          </button>
        </nav>
      )}
      {restoring && (
        <RestoreDialog
          app={app}
          env={env}
          backup={restoring}
          envNames={envNames}
          onClose={() => setRestoring(undefined)}
          onStarted={(id) => {
            setRestoring(undefined);
            onOperation(id);
            reload();
          }}
        />
      )}
    </section>
  );
}

function RestoreDialog({ app, env, backup, envNames, onClose, onStarted }: { app: string; env: string; backup: BackupView; envNames: string[]; onClose: () => void; onStarted: (id: string) => void }): JSX.Element {
  const ref = useModal();
  const [into, setInto] = useState(env);
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [confirmError, setConfirmError] = useState<string | undefined>(undefined);
  const target = `${app}/${into}`;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (confirm.trim() !== target) {
      setConfirmError(`type ${target} to confirm that its content is replaced`);
      return;
    }
    setConfirmError(undefined);
    setBusy(true);
    setError(undefined);
    try {
      const r = await dataApi.restore(backup.id, into);
      onStarted(r.id);
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  const parts = [backup.database && "database", backup.media && "media"].filter(Boolean).join(" and ");
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="restore-title" aria-describedby="restore-what" onClose={onClose}>
      <form onSubmit={submit} noValidate>
        <h2 id="restore-title">Restore a backup of {env}</h2>
        <p id="restore-what">
          The {parts} of the target environment are replaced by this backup of {formatTime(backup.createdAt)} ({backup.kind}). A safety backup of the target is taken first.
        </p>
        <div class="field">
          <label for="restore-into">Into environment</label>
          <select id="restore-into" value={into} onChange={(e) => setInto(e.currentTarget.value)}>
            {envNames.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <Field id="restore-confirm" label={`Type ${target} to confirm`} error={confirmError}>
          {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />}
        </Field>
        {error && <Alert>{error}</Alert>}
        <div class="actions">
          <button type="submit" class="danger" disabled={busy}>
            {busy ? "Starting restore…" : `Restore into ${into}`}
          </button>
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

function ContentCopy({ app, env, envNames, busy, onOperation }: { app: string; env: string; envNames: string[]; busy: boolean; onOperation: (id: string) => void }): JSX.Element {
  const sources = envNames.filter((n) => n !== env);
  const [from, setFrom] = useState(sources[0] ?? "");
  const [database, setDatabase] = useState(true);
  const [media, setMedia] = useState(true);
  const [confirm, setConfirm] = useState("");
  const [sending, setSending] = useState(false);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const target = `${app}/${env}`;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (confirm.trim() !== target) {
      setErrors({ fields: { confirm: `type ${target} to confirm that its content is replaced` } });
      return;
    }
    setSending(true);
    setErrors({ fields: {} });
    try {
      const c = await dataApi.contentCopy(app, env, { from, database, media });
      setConfirm("");
      onOperation(c.id);
    } catch (err) {
      setErrors(formErrors(err, ["from", "database", "media"]));
    } finally {
      setSending(false);
    }
  };
  return (
    <section class="panel" aria-labelledby="copy-title">
      <h2 id="copy-title">Copy content into {env}</h2>
      <p class="hint">Replaces {env}'s database and/or media with another environment's. A safety backup of {env} is taken first.</p>
      <form class="copy-form" onSubmit={submit} noValidate>
        <Field id="copy-from" label="From environment" error={errors.fields.from}>
          {(aria) => (
            <select {...aria} value={from} onChange={(e) => setFrom(e.currentTarget.value)}>
              {sources.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          )}
        </Field>
        <fieldset>
          <legend>What to copy</legend>
          <label class="choice">
            <input type="checkbox" checked={database} onChange={(e) => setDatabase(e.currentTarget.checked)} /> Database
          </label>
          <label class="choice">
            <input type="checkbox" checked={media} onChange={(e) => setMedia(e.currentTarget.checked)} /> Media
          </label>
        </fieldset>
        <Field id="copy-confirm" label={`Type ${target} to confirm`} error={errors.fields.confirm}>
          {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />}
        </Field>
        {errors.form && <Alert>{errors.form}</Alert>}
        <div class="actions">
          <button type="submit" class="danger" disabled={sending || busy}>
            {sending ? "Starting copy…" : `Copy into ${env}`}
          </button>
        </div>
      </form>
    </section>
  );
}

const RETENTION = [
  { key: "daily", label: "Daily backups kept", hint: "0 to 365" },
  { key: "weekly", label: "Weekly backups kept", hint: "0 to 520" },
  { key: "monthly", label: "Monthly backups kept", hint: "0 to 1200" },
] as const;

function Schedule({ app, env, canChange }: { app: string; env: string; canChange: boolean }): JSX.Element {
  const schedule = useResource(() => dataApi.getSchedule(app, env), `${app}/${env}`);
  const [enabled, setEnabled] = useState(false);
  const [values, setValues] = useState<Record<string, string>>({ daily: "", weekly: "", monthly: "" });
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const s = schedule.data;
    if (!s) return;
    setEnabled(s.enabled);
    setValues({ daily: String(s.retention.daily), weekly: String(s.retention.weekly), monthly: String(s.retention.monthly) });
  }, [schedule.data]);

  // What was typed goes to the API as it is (a number when it is one), so the API's own message
  // says what is wrong with it.
  const asSent = (v: string): number => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : (v as unknown as number));
  const submit = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    setSaved(false);
    setErrors({ fields: {} });
    try {
      const body: BackupSchedule = { enabled, retention: { daily: asSent(values.daily!), weekly: asSent(values.weekly!), monthly: asSent(values.monthly!) } };
      const s = await dataApi.setSchedule(app, env, body);
      schedule.set(() => s);
      setSaved(true);
    } catch (err) {
      setErrors(formErrors(err, ["enabled", "retention.daily", "retention.weekly", "retention.monthly", "retention"]));
    } finally {
      setSaving(false);
    }
  };
  return (
    <section class="panel" aria-labelledby="schedule-title">
      <h2 id="schedule-title">Backup schedule</h2>
      {schedule.error && <Alert>{schedule.error}</Alert>}
      {!schedule.data && !schedule.error && <Loading what="the schedule" />}
      {schedule.data && (
        <form class="schedule-form" onSubmit={submit} noValidate>
          <fieldset disabled={!canChange}>
            <legend>Schedule and retention</legend>
            <label class="choice">
              <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} aria-describedby={errors.fields.enabled ? "schedule-enabled-error" : undefined} /> Back up every day
            </label>
            {errors.fields.enabled && (
              <p class="field-error" id="schedule-enabled-error">
                {errors.fields.enabled}
              </p>
            )}
            {RETENTION.map((r) => (
              <Field key={r.key} id={`retention-${r.key}`} label={r.label} hint={r.hint} error={errors.fields[`retention.${r.key}`]}>
                {(aria) => <input {...aria} inputMode="numeric" value={values[r.key]} onInput={(e) => setValues((v) => ({ ...v, [r.key]: e.currentTarget.value }))} />}
              </Field>
            ))}
          </fieldset>
          {errors.fields.retention && <Alert>{errors.fields.retention}</Alert>}
          {errors.form && <Alert>{errors.form}</Alert>}
          {canChange && (
            <div class="actions">
              <button type="submit" class="primary" disabled={saving}>
                {saving ? "Saving…" : "Save schedule"}
              </button>
              {saved && (
                <span role="status" class="muted">
                  Saved.
                </span>
              )}
            </div>
          )}
        </form>
      )}
    </section>
  );
}
