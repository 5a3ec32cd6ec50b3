import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, streams, type DeploymentView, type StepRecord } from "../api";
import { messageOf } from "../errors";
import { durationBetween, formatTime, isActiveDeployment, isCancellable } from "../format";
import { LogBook, lineOfEvent } from "../log";
import { timelineOf, type Timeline } from "../timeline";
import { Link } from "../router";
import { mayChange, principal } from "../session";
import { useEventStream } from "../sse";
import { Alert, Loading, PageTitle, StateBadge, useResource } from "../ui";
import { LiveState } from "./app";

/** One deployment: its steps with their durations and its log, followed live until it ends. */
export function DeploymentPage({ id }: { id: string }): JSX.Element {
  const deployment = useResource(() => api.getDeployment(id), id);
  const book = useRef(new LogBook());
  const [, setLogVersion] = useState(0);
  const flush = useRef<number | undefined>(undefined);
  const refetch = useRef<number | undefined>(undefined);
  const [ended, setEnded] = useState(false);
  const now = useNow(deployment.data !== undefined && isActiveDeployment(deployment.data.state));

  useEffect(() => {
    book.current = new LogBook();
    setEnded(false);
    setLogVersion((v) => v + 1);
  }, [id]);
  useEffect(
    () => () => {
      window.clearTimeout(flush.current);
      window.clearTimeout(refetch.current);
    },
    [],
  );

  // Lines arrive in bursts: they are drawn at most every 100 ms.
  const redraw = () => {
    if (flush.current !== undefined) return;
    flush.current = window.setTimeout(() => {
      flush.current = undefined;
      setLogVersion((v) => v + 1);
    }, 100);
  };
  // The steps' states and times, and the deployment's, are read again after a step event.
  const reread = () => {
    window.clearTimeout(refetch.current);
    refetch.current = window.setTimeout(() => deployment.reload(), 150);
  };

  const stream = useEventStream(ended ? undefined : streams.deploymentLog(id), {
    line: (ev) => {
      const line = lineOfEvent(ev.data, ev.lastEventId);
      if (line && book.current.add(line)) redraw();
    },
    step: (ev) => {
      const step = stepsOfEvent(ev.data);
      if (step) deployment.set((d) => (d ? { ...d, steps: mergeSteps(d.steps, step) } : d));
      reread();
    },
    state: (ev) => {
      const state = stateOfEvent(ev.data);
      if (state) deployment.set((d) => (d ? { ...d, state } : d));
    },
    end: () => {
      // The stream is over: closing it keeps the browser from reconnecting to it.
      stream.close();
      setEnded(true);
      redraw();
      deployment.reload();
    },
  });

  const d = deployment.data;
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/">Apps</Link> <span aria-hidden="true">/</span>{" "}
        {d ? (
          <>
            <Link href={`/apps/${encodeURIComponent(d.app)}`}>{d.app}</Link> <span aria-hidden="true">/</span> {d.environment}
          </>
        ) : (
          "…"
        )}
      </nav>
      <div class="title-row">
        <PageTitle title={d ? `Deployment of ${d.app}/${d.environment}` : "Deployment"}>{d ? `Deployment of ${d.app} / ${d.environment}` : "Deployment"}</PageTitle>
        {!ended && <LiveState state={stream.state} />}
      </div>
      {deployment.error && <Alert>{deployment.error}</Alert>}
      {!d && deployment.loading && <Loading what="the deployment" />}
      {d && <Summary d={d} onChanged={deployment.reload} />}
      {d && <Steps steps={d.steps} now={now} timeline={timelineOf(book.current.sections, d.steps.some((s) => s.name === "release" && s.state === "failed"))} />}
      <section aria-labelledby="log-title">
        <h2 id="log-title">Log</h2>
        <Log book={book.current} />
      </section>
    </>
  );
}

function Summary({ d, onChanged }: { d: DeploymentView; onChanged: () => void }): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const cancel = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api.cancelDeployment(d.id);
      onChanged();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="panel summary" aria-label="Summary">
      <p class="deployment-state">
        State: <StateBadge state={d.state} />
        {d.waiting && <span class="muted"> (waits for the environment's running deployment)</span>}
      </p>
      <dl class="facts">
        <dt>Build</dt>
        <dd>{d.kind && d.kind !== "deploy" ? `${d.kind}, ` : ""}{d.build}</dd>
        <dt>Commit</dt>
        <dd>{d.commit ? <code>{d.commit.slice(0, 12)}</code> : <span class="muted">not resolved yet</span>}</dd>
        {d.requestedBy && (
          <>
            <dt>By</dt>
            <dd>{d.requestedBy}</dd>
          </>
        )}
        <dt>Queued</dt>
        <dd>{formatTime(d.queuedAt)}</dd>
        {d.finishedAt && (
          <>
            <dt>Finished</dt>
            <dd>{formatTime(d.finishedAt)}</dd>
          </>
        )}
      </dl>
      {d.error?.message && <Alert>{d.error.message}</Alert>}
      {isCancellable(d.state) && mayChange(principal.value, d.app) && (
        <div class="actions">
          <button type="button" class="danger" onClick={cancel} disabled={busy}>
            {busy ? "Cancelling…" : "Cancel deployment"}
          </button>
        </div>
      )}
      {error && <Alert>{error}</Alert>}
    </section>
  );
}

/** The moment with its seconds and milliseconds (when traffic switched), in the browser's time zone. */
function preciseTime(iso: string): string {
  const t = new Date(iso);
  return `${t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })}.${String(t.getMilliseconds()).padStart(3, "0")}`;
}

/** What a step's own record does not say: each release command, each probe's attempts, the switch moment. */
function StepDetail({ step, timeline }: { step: StepRecord; timeline: Timeline }): JSX.Element | null {
  if (step.name === "release" && timeline.releaseCommands.length > 0) {
    return (
      <ul class="step-detail" aria-label="Release commands">
        {timeline.releaseCommands.map((c, i) => (
          <li key={i}>
            {c.label}: {c.state === "succeeded" ? `${c.seconds} s, exit 0` : c.state === "failed" ? "failed" : "running"}
          </li>
        ))}
      </ul>
    );
  }
  if (step.name === "probe" && timeline.probes.length > 0) {
    return (
      <ul class="step-detail" aria-label="Probe attempts">
        {timeline.probes.map((p) => (
          <li key={p.container}>
            {p.container}: {p.status} after {p.attempts} {p.attempts === 1 ? "attempt" : "attempts"} in {p.seconds} s
          </li>
        ))}
      </ul>
    );
  }
  if (step.name === "switch" && step.state === "succeeded" && step.finishedAt) {
    return (
      <p class="step-detail">
        traffic switched at <time dateTime={step.finishedAt}>{preciseTime(step.finishedAt)}</time>
      </p>
    );
  }
  return null;
}

function Steps({ steps, now, timeline }: { steps: StepRecord[]; now: number; timeline: Timeline }): JSX.Element {
  return (
    <section aria-labelledby="steps-title">
      <h2 id="steps-title">Steps</h2>
      {steps.length === 0 ? (
        <p class="muted">No step has started yet.</p>
      ) : (
        <ol class="steps">
          {steps.map((s) => (
            <li key={s.name} class={`step step-${s.state}`} data-step={s.name}>
              <span class="step-name">{s.name}</span> <StateBadge state={s.state} />{" "}
              <span class="step-time">{durationBetween(s.startedAt, s.finishedAt, now)}</span>
              <StepDetail step={s} timeline={timeline} />
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function Log({ book }: { book: LogBook }): JSX.Element {
  if (book.sections.length === 0) return <p class="muted">No log lines yet.</p>;
  return (
    <div class="log">
      {book.sections.map((s) =>
        s.title === null ? (
          <pre key={s.index} class="log-lines">
            {s.lines.join("\n")}
          </pre>
        ) : (
          <details key={s.index} open class="log-section" data-title={s.title}>
            <summary>
              {s.title} <span class="muted">({s.lines.length} {s.lines.length === 1 ? "line" : "lines"})</span>
            </summary>
            {s.lines.length > 0 && <pre class="log-lines">{s.lines.join("\n")}</pre>}
          </details>
        ),
      )}
    </div>
  );
}

/** The time, once a second while `ticking` (running steps show how long they have run). */
function useNow(ticking: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!ticking) return;
    const t = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(t);
  }, [ticking]);
  return now;
}

/** A `state` event's data: `{"state": "building"}`. */
function stateOfEvent(data: string): string | undefined {
  try {
    const o = JSON.parse(data) as { state?: unknown };
    return typeof o.state === "string" ? o.state : undefined;
  } catch {
    return undefined;
  }
}

/** A `step` event's data: one step, a list of steps, or a deployment carrying its steps. */
function stepsOfEvent(data: string): StepRecord[] | undefined {
  try {
    const o = JSON.parse(data) as unknown;
    if (Array.isArray(o)) return o as StepRecord[];
    if (o && typeof o === "object") {
      if (Array.isArray((o as { steps?: unknown }).steps)) return (o as { steps: StepRecord[] }).steps;
      if (typeof (o as { name?: unknown }).name === "string") return [o as StepRecord];
    }
  } catch {
    // not JSON: the deployment is read again instead
  }
  return undefined;
}

function mergeSteps(old: StepRecord[], changed: StepRecord[]): StepRecord[] {
  const next = old.slice();
  for (const s of changed) {
    const i = next.findIndex((o) => o.name === s.name);
    if (i === -1) next.push({ ...s, startedAt: s.startedAt ?? null, finishedAt: s.finishedAt ?? null });
    else next[i] = { ...next[i]!, ...s };
  }
  return next;
}
