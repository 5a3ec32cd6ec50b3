import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import uPlot from "uplot";
import { api, type DeploymentView } from "../api";
import { metricsApi, type MetricsPoint } from "../api/metrics-data";
import { EnvNav } from "../env-nav";
import { messageOf } from "../errors";
import { formatTime } from "../format";
import { Alert, Loading, PageTitle } from "../ui";
import { STATUS_CLASSES, bucketize, formatNumber, latest, plottedPoints, type Buckets } from "./metrics-series";

// The environment's requests, latency, CPU and memory as graphs (uPlot, only in this lazily loaded
// page), with its deployments marked on the time axis. Refreshed every REFRESH_MS while the tab is
// visible; a hidden tab asks nothing and catches up when it shows again.
const REFRESH_MS = 12_000;
const RANGES = [
  { minutes: 15, label: "15 min" },
  { minutes: 60, label: "1 h" },
  { minutes: 360, label: "6 h" },
  { minutes: 1440, label: "24 h" },
] as const;

/** Colour and dash per series: the legend shows both, so no series is told apart by colour alone. */
interface SeriesStyle {
  label: string;
  color: string;
  dash: number[];
}
const STATUS_STYLE: Record<(typeof STATUS_CLASSES)[number], SeriesStyle> = {
  "2xx": { label: "2xx", color: "#1a7f37", dash: [] },
  "3xx": { label: "3xx", color: "#0550ae", dash: [8, 4] },
  "4xx": { label: "4xx", color: "#8a5a00", dash: [2, 3] },
  "5xx": { label: "5xx", color: "#cf222e", dash: [10, 3, 2, 3] },
};
const LATENCY_STYLE: SeriesStyle[] = [
  { label: "p50", color: "#1a7f37", dash: [] },
  { label: "p95", color: "#0550ae", dash: [8, 4] },
  { label: "p99", color: "#cf222e", dash: [2, 3] },
];
const MARKER_COLOR = "#6e40c9";

interface Marker {
  label: string;
  at: number;
  deployment: DeploymentView;
}

interface Snapshot {
  fromMs: number;
  toMs: number;
  buckets: Buckets;
  markers: Marker[];
}

/** The environment's deployments queued since `fromMs` (newest first), a page of 100 at a time, at most 500. */
async function deploymentsSince(app: string, env: string, fromMs: number): Promise<DeploymentView[]> {
  const all: DeploymentView[] = [];
  for (let before: string | undefined; all.length < 500; ) {
    const page = await api.listDeployments(app, env, 100, before);
    all.push(...page);
    const last = page[page.length - 1];
    // Older pages hold only deployments queued (so finished) before the range starts.
    if (page.length < 100 || !last || Date.parse(last.queuedAt) < fromMs) break;
    before = last.id;
  }
  return all;
}

async function load(app: string, env: string, minutes: number): Promise<Snapshot> {
  const toMs = Date.now();
  const fromMs = toMs - minutes * 60_000;
  const [{ series }, deployments] = await Promise.all([metricsApi.series(app, env, new Date(fromMs).toISOString()), deploymentsSince(app, env, fromMs)]);
  const markers = deployments
    .filter((d) => d.finishedAt && Date.parse(d.finishedAt) >= fromMs && Date.parse(d.finishedAt) <= toMs)
    .sort((a, b) => Date.parse(a.finishedAt!) - Date.parse(b.finishedAt!))
    .map((d, i) => ({ label: `D${i + 1}`, at: Date.parse(d.finishedAt!) / 1000, deployment: d }));
  return { fromMs, toMs, buckets: bucketize(series as MetricsPoint[], fromMs, toMs), markers };
}

export function MetricsPage({ app, env }: { app: string; env: string }): JSX.Element {
  const [minutes, setMinutes] = useState<number>(60);
  const [snap, setSnap] = useState<Snapshot | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = async () => {
      clearTimeout(timer);
      if (document.visibilityState !== "visible") return;
      try {
        const s = await load(app, env, minutes);
        if (!current) return;
        setSnap(s);
        setError(undefined);
      } catch (err) {
        if (current) setError(messageOf(err));
      }
      if (current && document.visibilityState === "visible") timer = setTimeout(refresh, REFRESH_MS);
    };
    const onVisibility = () => {
      if (document.visibilityState === "visible") void refresh();
      else clearTimeout(timer);
    };
    document.addEventListener("visibilitychange", onVisibility);
    void refresh();
    return () => {
      current = false;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [app, env, minutes]);

  const b = snap?.buckets;
  const per = b && b.stepMinutes > 1 ? ` (one point per ${b.stepMinutes} min)` : "";
  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title={`Metrics of ${app}/${env}`}>
        Metrics of {app} / {env}
      </PageTitle>
      <fieldset class="metrics-range">
        <legend>Time range</legend>
        {RANGES.map((r) => (
          <label key={r.minutes} class="choice">
            <input type="radio" name="range" value={r.minutes} checked={minutes === r.minutes} onChange={() => setMinutes(r.minutes)} />
            Last {r.label}
          </label>
        ))}
      </fieldset>
      <p class="muted">Refreshed every {REFRESH_MS / 1000} s while this tab is shown.{per}</p>
      {error && <Alert>{error}</Alert>}
      {!snap && !error && <Loading what="metrics" />}
      {snap && b && (
        <>
          {b.minutesWithData === 0 && <p class="muted">No metrics in this range yet: they appear a few seconds after the first requests or container readings.</p>}
          <Graph
            id="requests"
            title="Requests per second by status class"
            unit="req/s"
            snap={snap}
            series={STATUS_CLASSES.map((c) => ({ style: STATUS_STYLE[c], values: b.rates[c] }))}
          />
          <Graph
            id="latency"
            title="Latency"
            unit="ms"
            snap={snap}
            series={[
              { style: LATENCY_STYLE[0]!, values: b.p50 },
              { style: LATENCY_STYLE[1]!, values: b.p95 },
              { style: LATENCY_STYLE[2]!, values: b.p99 },
            ]}
          />
          <Graph id="cpu" title="CPU" unit="% of a core" snap={snap} series={[{ style: { label: "CPU", color: "#0550ae", dash: [] }, values: b.cpu }]} />
          <Graph id="memory" title="Memory" unit="MiB" snap={snap} series={[{ style: { label: "Memory", color: "#1a7f37", dash: [] }, values: b.memoryMiB }]} />
          <section class="panel" aria-labelledby="markers-title">
            <h2 id="markers-title">Deployments in this range</h2>
            {snap.markers.length === 0 ? (
              <p class="muted">None: no deployment finished in this range.</p>
            ) : (
              <ul class="markers" aria-label="Deployments marked on the graphs">
                {snap.markers.map((m) => (
                  <li key={m.deployment.id}>
                    <span class="marker-key" aria-hidden="true">
                      <Swatch style={{ label: m.label, color: MARKER_COLOR, dash: [4, 3] }} />
                    </span>
                    <strong>{m.label}</strong>: {m.deployment.kind && m.deployment.kind !== "deploy" ? `${m.deployment.kind} ` : "deployment "}
                    {m.deployment.commit ? m.deployment.commit.slice(0, 7) : m.deployment.id.slice(0, 8)} {m.deployment.state} at {formatTime(m.deployment.finishedAt)}
                  </li>
                ))}
              </ul>
            )}
          </section>
        </>
      )}
    </>
  );
}

function Swatch({ style }: { style: SeriesStyle }): JSX.Element {
  return (
    <svg width="28" height="10" viewBox="0 0 28 10" aria-hidden="true" focusable="false">
      <line x1="0" y1="5" x2="28" y2="5" stroke={style.color} stroke-width="3" stroke-dasharray={style.dash.length ? style.dash.join(" ") : undefined} />
    </svg>
  );
}

interface GraphProps {
  id: string;
  title: string;
  unit: string;
  snap: Snapshot;
  series: { style: SeriesStyle; values: (number | null)[] }[];
}

/** One graph: its heading, a text summary for screen readers (and everyone), the legend, the plot. */
function Graph({ id, title, unit, snap, series }: GraphProps): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const markers = useRef<Marker[]>(snap.markers);
  markers.current = snap.markers;
  const data: uPlot.AlignedData = [snap.buckets.x, ...series.map((s) => s.values)];
  const plotted = plottedPoints(...series.map((s) => s.values));
  const rangeRef = useRef<[number, number]>([0, 0]);
  rangeRef.current = [snap.fromMs / 1000, snap.toMs / 1000];

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const width = () => Math.max(200, el.clientWidth);
    const opts: uPlot.Options = {
      width: width(),
      height: 180,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => rangeRef.current }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{ stroke: "#57606a", grid: { stroke: "#eaeef2" } }, { stroke: "#57606a", grid: { stroke: "#eaeef2" }, size: 56, values: (_u, ticks) => ticks.map((t) => formatNumber(t)) }],
      series: [{}, ...series.map((s) => ({ label: s.style.label, stroke: s.style.color, width: 2, dash: s.style.dash, spanGaps: false, points: { show: sparse, size: 5 } }))],
      hooks: { draw: [(u: uPlot) => drawMarkers(u, markers.current)] },
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: width(), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = undefined;
    };
    // The plot is built once per graph; new data goes in through setData below.
  }, []);
  useEffect(() => {
    plot.current?.setData(data);
  }, [snap]);

  const summary = series.map((s) => {
    const peak = s.values.reduce<number | null>((m, v) => (v === null ? m : m === null ? v : Math.max(m, v)), null);
    return `${s.style.label}: ${formatNumber(latest(s.values))} ${unit} now, peak ${formatNumber(peak)}`;
  });
  return (
    <section class="panel graph" aria-labelledby={`${id}-title`} data-graph={id} data-plotted={plotted} data-markers={snap.markers.length}>
      <h2 id={`${id}-title`}>{title}</h2>
      <p class="graph-summary" id={`${id}-summary`}>
        {summary.join("; ")}.
      </p>
      <ul class="legend" aria-label={`Legend of ${title}`}>
        {series.map((s) => (
          <li key={s.style.label}>
            <Swatch style={s.style} /> {s.style.label}
          </li>
        ))}
        {snap.markers.length > 0 && (
          <li>
            <Swatch style={{ label: "deployment", color: MARKER_COLOR, dash: [4, 3] }} /> deployment (D1…)
          </li>
        )}
      </ul>
      <div class="plot" ref={host} aria-hidden="true" />
    </section>
  );
}

/** Dots on a series with gaps and few values: an isolated measured minute shows, where a line would not. */
function sparse(u: uPlot, seriesIdx: number): boolean {
  let n = 0;
  let gaps = 0;
  for (const v of u.data[seriesIdx] ?? []) {
    if (v === null || v === undefined) gaps++;
    else n++;
  }
  return gaps > 0 && n <= 60;
}

/** Vertical dashed lines where deployments finished, each labelled D1, D2, … as in the list below the graphs. */
function drawMarkers(u: uPlot, markers: Marker[]): void {
  const ctx = u.ctx;
  const { top, height, left, width } = u.bbox;
  ctx.save();
  ctx.strokeStyle = MARKER_COLOR;
  ctx.fillStyle = MARKER_COLOR;
  ctx.lineWidth = 2 * uPlot.pxRatio;
  ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
  ctx.font = `${11 * uPlot.pxRatio}px sans-serif`;
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.at, "x", true));
    if (x < left || x > left + width) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    // Labels near the right edge go to the left of their line, so they are not cut off.
    const textWidth = ctx.measureText(m.label).width;
    const tx = x + 3 * uPlot.pxRatio + textWidth > left + width ? x - 3 * uPlot.pxRatio - textWidth : x + 3 * uPlot.pxRatio;
    ctx.fillText(m.label, tx, top + 11 * uPlot.pxRatio);
  }
  ctx.restore();
}
