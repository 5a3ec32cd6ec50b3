import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { LineBuffer, parseRuntimeLine, probeRuntimeLog, runtimeLogUrl } from "../api/logs-terminal";
import { EnvNav } from "../env-nav";
import { messageOf } from "../errors";
import { useEventStream } from "../sse";
import { Alert, PageTitle } from "../ui";
import { LiveState } from "./app";

/** Lines kept on the page; older ones are dropped (and the page says how many). */
export const MAX_LINES = 5000;

interface Shown {
  /** The event id, or a local one for a note (which has none). */
  key: string;
  time?: string;
  container?: string;
  text: string;
  note?: boolean;
}

const SINCE_CHOICES = [
  { value: "recent", label: "The last 1,000 lines" },
  { value: "5m", label: "The last 5 minutes" },
  { value: "1h", label: "The last hour" },
  { value: "24h", label: "The last 24 hours" },
  { value: "time", label: "Since a time…" },
] as const;
type SinceChoice = (typeof SINCE_CHOICES)[number]["value"];
const AGO_MS: Record<string, number> = { "5m": 5 * 60_000, "1h": 3600_000, "24h": 24 * 3600_000 };

/** A local datetime-local value for `ms` ("2026-12-06T16:20"). */
function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** "16:20:01" in the browser's time zone, from Docker's RFC 3339 time. */
function clock(time: string): string {
  const d = new Date(time);
  return Number.isNaN(d.getTime()) ? time : d.toLocaleTimeString(undefined, { hour12: false });
}

/** The text with every occurrence of `filter` (case-insensitive) marked. */
function highlighted(text: string, filter: string): JSX.Element | string {
  if (!filter) return text;
  const lower = text.toLowerCase();
  const f = filter.toLowerCase();
  const parts: Array<JSX.Element | string> = [];
  let at = 0;
  for (let i = lower.indexOf(f); i >= 0; i = lower.indexOf(f, at)) {
    if (i > at) parts.push(text.slice(at, i));
    parts.push(<mark key={i}>{text.slice(i, i + f.length)}</mark>);
    at = i + f.length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return <>{parts}</>;
}

/**
 * The runtime log of an environment's containers, followed live (GET …/logs/events; the browser
 * resumes after a drop with Last-Event-ID, and the API sends what was missed, once). Auto-scroll
 * follows the newest line until the reader scrolls up; Follow brings it back.
 */
export function LogsPage({ app, env }: { app: string; env: string }): JSX.Element {
  const [choice, setChoice] = useState<SinceChoice>("recent");
  const [at, setAt] = useState(() => localInput(Date.now() - 3600_000));
  const [opened, setOpened] = useState(() => Date.now());
  const [filter, setFilter] = useState("");
  const [follow, setFollow] = useState(true);
  const [, setVersion] = useState(0);
  const [refusal, setRefusal] = useState<string | undefined>(undefined);
  const buffer = useRef(new LineBuffer<Shown>(MAX_LINES));
  const notes = useRef(0);
  const flush = useRef<number | undefined>(undefined);
  const box = useRef<HTMLDivElement>(null);

  const url = useMemo(() => {
    if (choice === "recent") return runtimeLogUrl(app, env, { tail: 1000 });
    const since = choice === "time" ? new Date(at).toISOString() : new Date(opened - AGO_MS[choice]!).toISOString();
    return runtimeLogUrl(app, env, { since, tail: MAX_LINES });
  }, [app, env, choice, at, opened]);

  // A new stream (another environment or another "since") starts from an empty page.
  useEffect(() => {
    buffer.current = new LineBuffer<Shown>(MAX_LINES);
    setRefusal(undefined);
    setVersion((v) => v + 1);
  }, [url]);
  useEffect(() => () => window.clearTimeout(flush.current), []);

  // Lines arrive in bursts: they are drawn at most every 100 ms.
  const redraw = () => {
    if (flush.current !== undefined) return;
    flush.current = window.setTimeout(() => {
      flush.current = undefined;
      setVersion((v) => v + 1);
    }, 100);
  };
  const add = (l: Shown) => {
    buffer.current.add(l);
    redraw();
  };

  const stream = useEventStream(url, {
    line: (ev) => {
      const l = parseRuntimeLine(ev.data);
      if (l) add({ key: ev.lastEventId, time: l.time, container: l.container, text: l.text });
    },
    note: (ev) => add({ key: `note-${++notes.current}`, text: ev.data, note: true }),
  });

  // A stream the API refused (never deployed, host gone): ask once more, plainly, for its message.
  useEffect(() => {
    if (stream.state !== "closed") return;
    let current = true;
    probeRuntimeLog(app, env).then(
      () => current && setRefusal("The log stream closed. Reload the page to open it again."),
      (err: unknown) => current && setRefusal(messageOf(err)),
    );
    return () => {
      current = false;
    };
  }, [stream.state, app, env]);

  // Following: the newest line stays in view.
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  });
  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    if (follow && !atBottom) setFollow(false);
    else if (!follow && atBottom) setFollow(true);
  };

  const all = buffer.current.lines;
  const dropped = buffer.current.dropped;
  const f = filter.trim();
  const shown = f ? all.filter((l) => l.text.toLowerCase().includes(f.toLowerCase()) || l.container?.toLowerCase().includes(f.toLowerCase())) : all;

  return (
    <>
      <EnvNav app={app} env={env} />
      <div class="title-row">
        <PageTitle title={`Logs · ${app}/${env}`}>Logs</PageTitle>
        <LiveState state={stream.state} />
      </div>
      <p class="muted">The output of the environment's containers, newest last.</p>
      <div class="log-controls">
        <div class="field">
          <label for="log-filter">Filter</label>
          <input id="log-filter" type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} aria-describedby="log-filter-hint" autocomplete="off" />
          <p id="log-filter-hint" class="hint">
            Shows only the lines that contain this text.
          </p>
        </div>
        <div class="field">
          <label for="log-since">Since</label>
          <select
            id="log-since"
            value={choice}
            onChange={(e) => {
              setChoice(e.currentTarget.value as SinceChoice);
              setOpened(Date.now());
              setFollow(true);
            }}
          >
            {SINCE_CHOICES.map((c) => (
              <option key={c.value} value={c.value}>
                {c.label}
              </option>
            ))}
          </select>
        </div>
        {choice === "time" && (
          <div class="field">
            <label for="log-at">Time</label>
            <input id="log-at" type="datetime-local" value={at} onChange={(e) => e.currentTarget.value && setAt(e.currentTarget.value)} />
          </div>
        )}
        <label class="log-follow">
          <input
            type="checkbox"
            checked={follow}
            onChange={(e) => {
              const on = e.currentTarget.checked;
              setFollow(on);
              if (on && box.current) box.current.scrollTop = box.current.scrollHeight;
            }}
          />{" "}
          Follow
        </label>
      </div>
      {refusal && <Alert>{refusal}</Alert>}
      <p class="muted log-count" role="status">
        {f ? `${shown.length} of ${all.length} lines match` : `${all.length} lines`}
        {dropped > 0 && ` · ${dropped} older lines dropped (the page keeps the last ${MAX_LINES.toLocaleString("en")})`}
      </p>
      <div class="runlog" ref={box} onScroll={onScroll} tabIndex={0} role="log" aria-live="off" aria-label={`Runtime log of ${app}/${env}`}>
        {shown.length === 0 && <p class="runlog-empty">{all.length === 0 ? "No lines yet." : "No line matches the filter."}</p>}
        {shown.map((l) =>
          l.note ? (
            <div key={l.key} class="runlog-line runlog-note">
              {l.text}
            </div>
          ) : (
            <div key={l.key} class="runlog-line">
              <span class="runlog-time" title={l.time}>
                {clock(l.time!)}
              </span>{" "}
              <span class="runlog-container">{l.container}</span> <span class="runlog-text">{highlighted(l.text, f)}</span>
            </div>
          ),
        )}
      </div>
    </>
  );
}
