/**
 * Ingress benchmark (issue 10, "Honest ingress figures"), measured with
 * Debian's wrk against a keep-alive Node app deployed through the real
 * platform (control plane, agent, the agent's HAProxy). In one run, three
 * targets for the same container:
 *   - ingress: the agent's HAProxy (its counters read by the agent; a request
 *              log thinned to a latency sample sent to the agent over UDP);
 *   - direct:  the container's address on its Docker network and its web port
 *              (what HAProxy connects to; no docker-proxy);
 *   - bare:    a second HAProxy started here from the agent's own rendered
 *              config minus the request log and its sampling rules (same binary, host map, backend,
 *              server address, keep-alive on both sides), on its own port.
 * Phase 1 (saturating): wrk as fast as it goes; req/s and CPU seconds per
 * 1,000 requests of each HAProxy, the agent and the app (from /proc/<pid>/stat).
 * Phase 2 (paced): every connection pauses after each response, a moderate
 * rate; latency percentiles of the three, and the latency the hop adds =
 * ingress (or bare) − direct, paired by round.
 * Then the platform's traffic metrics (GET …/metrics) are checked against the
 * requests wrk completed through the ingress.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import Dockerode from "dockerode";
import { Platform, type AgentHandle } from "../support/platform.js";
import { TestRepo } from "../support/git-repo.js";
import { keepAliveAppFiles } from "../support/keepalive-app.js";
import { getVia } from "../support/load.js";
import { freePort, startProcess, waitFor, type Proc } from "../support/processes.js";
import { childPids, cpuSecondsOf, machineCpuSeconds, waitedChildrenCpuSeconds } from "../support/proc-stat.js";
import { haproxyCommand } from "../support/haproxy-admin.js";
import { runWrk, type WrkResult } from "../support/wrk.js";
import { fixed, max, mdTable, median, min, textTable } from "./stats.js";

const CONNECTIONS = 12;
const THREADS = 2;
const RUN_S = 10;
/** Rounds of each phase; every round runs each target once, in a rotating order. */
const ROUNDS = Number(process.env.SLIPWAY_BENCH_INGRESS_ROUNDS ?? 3);
/** Paced phase: each connection waits this long after a response (≈ 12 × 1000 / 10.3 ≈ 1,150 req/s). */
const PAUSE_MS = 10;
const RUNTIME_LIMIT_MS = 420_000;
const TARGET_CPU_RATIO = 1.2;
const TARGET_ADDED_P99_MS = 1;
const TARGET_COUNT_TOLERANCE = 0.01;
const METRICS_INTERVAL_MS = 10_000;
const ENV = "test";

type Target = "ingress" | "direct" | "bare";
const TARGETS: Target[] = ["ingress", "direct", "bare"];

const t0 = performance.now();
const progress = (msg: string) => process.stderr.write(`ingress bench [${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

interface Run {
  target: Target;
  phase: "max" | "paced";
  wrk: WrkResult;
  /** CPU seconds during the run */
  cpu: { haproxy: number; agent: number; bare: number; app: number; wrk: number; machineBusy: number; machineTotal: number };
}

interface Measured {
  runs: Run[];
  direct: { host: string; port: number };
  configDiff: string[];
  metrics: { expected: number; counted: number; inFlightBound: number; waitedMs: number };
  agentIdleCpuPerS: number;
  /** What the agent logged about its traffic log socket ("receiving the ingress traffic log"): batched reading or not. */
  agentLog: string;
}

/** The agent's start-up line about its traffic log socket, as printed. */
function trafficLogLine(platform: Platform): string {
  let text = "";
  try {
    text = readFileSync(path.join(platform.dir, "agent-0.log"), "utf8");
  } catch {
    return "(no agent log)";
  }
  for (const line of text.split("\n")) {
    if (!line.includes("receiving the ingress traffic log")) continue;
    try {
      const j = JSON.parse(line) as { batched?: boolean; queueCapacity?: number };
      return `batched: ${j.batched ?? "not logged"}, kernel queue ≈ ${j.queueCapacity ?? "?"} datagrams`;
    } catch {
      return line.slice(0, 200);
    }
  }
  return "(not found in the agent log)";
}

/** One GET to an address without a Host-routed proxy. */
function getDirect(host: string, port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: "/", agent: false, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/**
 * Where the agent's HAProxy sends the environment's requests: the one active slot of the backend
 * that routes its host name (backends are named after environment ids) in the agent's persisted ingress state.
 */
function routedTarget(haproxyDir: string, hostname: string): { host: string; port: number } {
  const state = JSON.parse(readFileSync(path.join(haproxyDir, "ingress-state.json"), "utf8")) as {
    backends: Record<string, { hostnames: string[]; slots: Record<string, { host: string; port: number; state: string }> }>;
  };
  const backend = Object.keys(state.backends).find((name) => state.backends[name]!.hostnames.includes(hostname)) ?? `(none routes ${hostname})`;
  const slots = Object.values(state.backends[backend]?.slots ?? {}).filter((s) => s.state === "active");
  if (slots.length !== 1) throw new Error(`expected one active slot in ${backend}, found ${JSON.stringify(state.backends[backend])}`);
  return { host: slots[0]!.host, port: slots[0]!.port };
}

/** Pids of the environment's web container: docker-init (HostConfig.Init) and its children (node). */
function appPids(hostId: string, app: string): number[] {
  const ids = execFileSync("docker", ["ps", "-q", "--filter", `label=io.slipway.host=${hostId}`, "--filter", `label=io.slipway.app=${app}`, "--filter", `label=io.slipway.environment=${ENV}`], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean);
  if (ids.length !== 1) throw new Error(`expected one running container of ${app}/${ENV}, docker ps says ${ids.join(", ") || "none"}`);
  const pid = Number(execFileSync("docker", ["inspect", "-f", "{{.State.Pid}}", ids[0]!], { encoding: "utf8" }).trim());
  return [pid, ...childPids(pid)];
}

/**
 * The bare HAProxy's config: the agent's rendered haproxy.cfg with the request
 * log removed (the `log` lines, `option dontlognull`, `log-format`, the sampling rules), its own
 * port and its own copies of the host map, sockets and server-state file.
 * Returns the config and the lines that differ, so the report can show them.
 */
export function bareConfig(platformCfg: string, platformDir: string, bareDir: string, ingressPort: number, barePort: number): { cfg: string; diff: string[] } {
  const diff: string[] = [];
  const out: string[] = [];
  for (const line of platformCfg.split("\n")) {
    const t = line.trim();
    if (/^log\s/.test(t) || t === "option dontlognull" || /^log-format\s/.test(t) || t.includes("txn.slw_keep")) {
      diff.push(`- ${t}`);
      continue;
    }
    let l = line.split(platformDir).join(bareDir);
    if (/^\s*bind\s/.test(l)) l = l.replace(`:${ingressPort}`, `:${barePort}`);
    if (l !== line) diff.push(`~ ${t} → ${l.trim()}`);
    out.push(l);
  }
  return { cfg: out.join("\n"), diff };
}

async function startBareHaproxy(agent: AgentHandle, barePort: number): Promise<{ proc: Proc; dir: string; masterPid: number; diff: string[] }> {
  const platformDir = path.join(agent.stateDir, "haproxy");
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-bare-haproxy-"));
  const { cfg, diff } = bareConfig(readFileSync(path.join(platformDir, "haproxy.cfg"), "utf8"), platformDir, dir, agent.ingressPort, barePort);
  writeFileSync(path.join(dir, "haproxy.cfg"), cfg);
  copyFileSync(path.join(platformDir, "hosts.map"), path.join(dir, "hosts.map"));
  // The slots' addresses live in the runtime state; a server-state file carries them over, as on the agent's reloads.
  const state = await haproxyCommand(path.join(platformDir, "admin.sock"), "show servers state");
  if (!state.includes("# be_id")) throw new Error(`unexpected 'show servers state': ${state.slice(0, 200)}`);
  writeFileSync(path.join(dir, "server-state"), state);
  execFileSync("/usr/sbin/haproxy", ["-c", "-q", "-f", path.join(dir, "haproxy.cfg")]);
  const pidFile = path.join(dir, "haproxy.pid");
  const proc = startProcess("/usr/sbin/haproxy", ["-W", "-S", `${dir}/master.sock,mode,600`, "-f", path.join(dir, "haproxy.cfg"), "-p", pidFile], {
    env: process.env,
    logFile: path.join(dir, "haproxy.log"),
  });
  return { proc, dir, masterPid: proc.pid, diff };
}

/** A target's order per round: rotated each round and reversed every other, so drift in the machine's load hits all alike. */
function order(round: number): Target[] {
  const r = [...TARGETS.slice(round % 3), ...TARGETS.slice(0, round % 3)];
  return round % 2 ? r.reverse() : r;
}

async function measure(platform: Platform, repo: TestRepo, app: string, bare: { current?: Awaited<ReturnType<typeof startBareHaproxy>> }): Promise<Measured> {
  progress("starting nats-server, PostgreSQL database, control plane and an agent (and its HAProxy)");
  await platform.start();
  // INGRESS_AGENT_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": where the agent's CPU goes.
  const agent = await platform.addAgent({ SLIPWAY_METRICS_INTERVAL_MS: String(METRICS_INTERVAL_MS) }, { nodeArgs: (process.env.INGRESS_AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean) });
  const api = platform.api;
  const host = `${app}-${ENV}.localhost`;
  repo.commit(keepAliveAppFiles, "keep-alive app");
  await api.call("POST", "/v1/apps", { name: app, repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 30 } } });
  progress(`deploying ${app}/${ENV} (a Node keep-alive app on slipway/node:20)`);
  const d = await api.deploy(app, ENV);
  if (d.state !== "succeeded") throw new Error(`deployment ${d.id} ${d.state}: ${await api.log(d.id)}`);

  const metricsPath = `/v1/apps/${app}/environments/${ENV}/metrics?since=${encodeURIComponent(new Date(Date.now() - 120_000).toISOString())}`;
  const countedSoFar = async () => ((await api.call<{ series: { requests: number }[] }>("GET", metricsPath)).series ?? []).reduce((s, p) => s + p.requests, 0);
  const baseline = await countedSoFar();
  let expected = 0;
  let ingressWrkRuns = 0;

  const haproxyDir = path.join(agent.stateDir, "haproxy");
  const direct = routedTarget(haproxyDir, host);
  const viaIngress = await getVia(agent.ingressPort, host);
  expected++;
  const viaDirect = await getDirect(direct.host, direct.port);
  if (viaIngress.status !== 200 || viaIngress.body !== "ok\n" || viaDirect.status !== 200 || viaDirect.body !== "ok\n") {
    throw new Error(`the app does not answer as expected: ingress ${viaIngress.status} ${JSON.stringify(viaIngress.body)}, direct ${viaDirect.status} ${JSON.stringify(viaDirect.body)}`);
  }
  progress(`HAProxy routes ${host} to ${direct.host}:${direct.port} (the container's address on its network)`);

  const barePort = await freePort();
  bare.current = await startBareHaproxy(agent, barePort);
  await waitFor("the bare HAProxy to serve the app", async () => {
    if (bare.current!.proc.child.exitCode !== null) throw new Error(`bare HAProxy exited: ${readFileSync(path.join(bare.current!.dir, "haproxy.log"), "utf8")}`);
    const r = await getVia(barePort, host).catch(() => undefined);
    return r?.status === 200 && r.body === "ok\n";
  }, 15_000, 100);
  progress(`bare HAProxy on :${barePort}; its config differs from the agent's in: ${bare.current.diff.join("; ")}`);

  const platformMaster = Number(readFileSync(path.join(haproxyDir, "haproxy.pid"), "utf8").trim().split("\n")[0]);
  // Masters too: the agent reads HAProxy's counters through its master's CLI every second.
  const pids = {
    haproxy: [platformMaster, ...childPids(platformMaster)],
    agent: [agent.proc.pid],
    bare: [bare.current.masterPid, ...childPids(bare.current.masterPid)],
    app: appPids(agent.hostId!, app),
  };
  if (pids.haproxy.length < 2 || pids.bare.length < 2) throw new Error(`no HAProxy workers found (agent's master ${platformMaster}: ${pids.haproxy}, bare master ${bare.current.masterPid}: ${pids.bare})`);
  progress(`pids: agent's HAProxy master and workers ${pids.haproxy.join(",")}, agent ${pids.agent}, bare HAProxy master and workers ${pids.bare.join(",")}, app ${pids.app.join(",")}`);

  const urls: Record<Target, string> = {
    ingress: `http://127.0.0.1:${agent.ingressPort}/`,
    direct: `http://${direct.host}:${direct.port}/`,
    bare: `http://127.0.0.1:${barePort}/`,
  };
  const one = async (target: Target, phase: Run["phase"], durationS: number): Promise<Run> => {
    const before = { haproxy: cpuSecondsOf(pids.haproxy), agent: cpuSecondsOf(pids.agent), bare: cpuSecondsOf(pids.bare), app: cpuSecondsOf(pids.app), wrk: waitedChildrenCpuSeconds(), m: machineCpuSeconds() };
    const wrk = await runWrk({ url: urls[target], host, connections: CONNECTIONS, threads: THREADS, durationS, ...(phase === "paced" ? { pauseMs: PAUSE_MS } : {}) });
    const m = machineCpuSeconds();
    const cpu = {
      haproxy: cpuSecondsOf(pids.haproxy) - before.haproxy,
      agent: cpuSecondsOf(pids.agent) - before.agent,
      bare: cpuSecondsOf(pids.bare) - before.bare,
      app: cpuSecondsOf(pids.app) - before.app,
      wrk: waitedChildrenCpuSeconds() - before.wrk,
      machineBusy: m.busy - before.m.busy,
      machineTotal: m.total - before.m.total,
    };
    if (target === "ingress") {
      expected += wrk.requests;
      ingressWrkRuns++;
    }
    if (wrk.failed > 0 || wrk.errors.status > 0) throw new Error(`${target}: wrk saw errors ${JSON.stringify(wrk.errors)}`);
    return { target, phase, wrk, cpu };
  };

  progress("warm-up: 2 s of wrk at each target (not reported)");
  for (const t of TARGETS) await one(t, "max", 2);

  const runs: Run[] = [];
  for (const phase of ["max", "paced"] as const) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of order(round)) {
        const r = await one(t, phase, RUN_S);
        runs.push(r);
        const L = r.wrk.latencyMs;
        progress(
          `${phase} round ${round + 1}/${ROUNDS} ${t.padEnd(7)} ${fixed(r.wrk.rps, 0).padStart(6)} req/s  p50 ${fixed(L.p50, 3)} p99 ${fixed(L.p99, 3)} ms  ` +
            `CPU s: haproxy ${fixed(r.cpu.haproxy, 2)} agent ${fixed(r.cpu.agent, 2)} bare ${fixed(r.cpu.bare, 2)} app ${fixed(r.cpu.app, 2)} wrk ${fixed(r.cpu.wrk, 2)} other ${fixed(otherCpu(r), 1)}; machine ${fixed(r.cpu.machineBusy, 1)}/${fixed(r.cpu.machineTotal, 1)}`,
        );
      }
    }
  }

  // Agent CPU while no request went through the ingress: its own background work (heartbeats, stats, reconcile).
  const quiet = runs.filter((r) => r.target !== "ingress");
  const agentIdleCpuPerS = quiet.reduce((s, r) => s + r.cpu.agent, 0) / quiet.reduce((s, r) => s + r.wrk.seconds, 0);

  progress(`waiting for the platform's traffic metrics to settle (agent pushes every ${METRICS_INTERVAL_MS / 1000} s); wrk completed ${expected} requests through the ingress`);
  const w0 = Date.now();
  let last = -1;
  let lastChange = Date.now();
  const counted = await waitFor("the traffic metrics to settle", async () => {
    const c = (await countedSoFar()) - baseline;
    if (c !== last) {
      last = c;
      lastChange = Date.now();
    }
    // Settled: at least what wrk completed minus the tolerance, and unchanged for longer than one push interval.
    return c >= expected * (1 - TARGET_COUNT_TOLERANCE) && Date.now() - lastChange > METRICS_INTERVAL_MS + 2_000 ? c : undefined;
  }, 90_000, 1_000);
  return {
    runs,
    direct,
    configDiff: bare.current.diff,
    metrics: { expected, counted, inFlightBound: ingressWrkRuns * CONNECTIONS, waitedMs: Date.now() - w0 },
    agentIdleCpuPerS,
    agentLog: trafficLogLine(platform),
  };
}

/** CPU seconds of everything else on the machine during a run: other people's work, dockerd, the platform's other processes. */
function otherCpu(r: Run): number {
  const c = r.cpu;
  return c.machineBusy - c.haproxy - c.agent - c.bare - c.app - c.wrk;
}

function verdict(pass: boolean, miss: string): string {
  return pass ? "PASS" : `MISS (${miss})`;
}

function report(m: Measured): { text: string; markdown: string; pass: boolean } {
  const of = (t: Target, phase: Run["phase"]) => m.runs.filter((r) => r.target === t && r.phase === phase);
  const sum = (rs: Run[], f: (r: Run) => number) => rs.reduce((s, r) => s + f(r), 0);
  const perK = (rs: Run[], f: (r: Run) => number) => (sum(rs, f) / sum(rs, (r) => r.wrk.requests)) * 1000;
  const spread = (xs: number[], d = 0) => `${fixed(median(xs), d)} (${fixed(min(xs), d)}–${fixed(max(xs), d)})`;

  const maxIngress = of("ingress", "max");
  const maxBare = of("bare", "max");
  const maxDirect = of("direct", "max");
  const haproxyK = perK(maxIngress, (r) => r.cpu.haproxy);
  const agentK = perK(maxIngress, (r) => r.cpu.agent);
  const agentNetK = perK(maxIngress, (r) => Math.max(0, r.cpu.agent - m.agentIdleCpuPerS * r.wrk.seconds));
  const bareK = perK(maxBare, (r) => r.cpu.bare);
  const cpuRatio = (haproxyK + agentK) / bareK;
  // The same at the paced rate: both proxies then serve the same requests per second, so per-request CPU compares like for like.
  const pacedHaproxyK = perK(of("ingress", "paced"), (r) => r.cpu.haproxy);
  const pacedAgentK = perK(of("ingress", "paced"), (r) => r.cpu.agent);
  const pacedBareK = perK(of("bare", "paced"), (r) => r.cpu.bare);
  const pacedRatio = (pacedHaproxyK + pacedAgentK) / pacedBareK;
  const rps = (rs: Run[]) => sum(rs, (r) => r.wrk.requests) / sum(rs, (r) => r.wrk.seconds);

  // Latency added: per round, ingress (bare) minus direct at the same pace; the median over rounds, and every round shown.
  const pairs = (t: Target, q: "p50" | "p99") => of(t, "paced").map((r, i) => r.wrk.latencyMs[q] - (of("direct", "paced")[i]?.wrk.latencyMs[q] ?? NaN));
  const added = { p50: median(pairs("ingress", "p50")), p99: median(pairs("ingress", "p99")) };
  const bareAdded = { p50: median(pairs("bare", "p50")), p99: median(pairs("bare", "p99")) };
  const M = m.metrics;
  const countErr = (M.counted - M.expected) / M.expected;
  const pass = { cpu: cpuRatio <= TARGET_CPU_RATIO, pacedCpu: pacedRatio <= TARGET_CPU_RATIO, p99: added.p99 < TARGET_ADDED_P99_MS, count: Math.abs(countErr) <= TARGET_COUNT_TOLERANCE };

  const summaryHeader = ["measure", "figure", "target", "result"];
  const summary = [
    [
      "platform CPU per 1,000 requests (agent's HAProxy + agent) ÷ bare HAProxy's, saturating wrk",
      `(${fixed(haproxyK, 3)} + ${fixed(agentK, 3)}) ÷ ${fixed(bareK, 3)} CPU s = ${fixed(cpuRatio, 2)}`,
      `≤ ${TARGET_CPU_RATIO}`,
      verdict(pass.cpu, `${fixed(cpuRatio - TARGET_CPU_RATIO, 2)} over`),
    ],
    [
      `the same at the paced rate (${CONNECTIONS} connections, ${PAUSE_MS} ms pause after each response)`,
      `(${fixed(pacedHaproxyK, 3)} + ${fixed(pacedAgentK, 3)}) ÷ ${fixed(pacedBareK, 3)} CPU s = ${fixed(pacedRatio, 2)}`,
      `≤ ${TARGET_CPU_RATIO}`,
      verdict(pass.pacedCpu, `${fixed(pacedRatio - TARGET_CPU_RATIO, 2)} over`),
    ],
    [
      `p99 latency added by the ingress (ingress − direct, paced wrk: ${CONNECTIONS} connections, ${PAUSE_MS} ms pause after each response)`,
      `${fixed(added.p99, 3)} ms (p50 ${fixed(added.p50, 3)} ms); bare HAProxy adds p99 ${fixed(bareAdded.p99, 3)}, p50 ${fixed(bareAdded.p50, 3)} ms`,
      `< ${TARGET_ADDED_P99_MS} ms`,
      verdict(pass.p99, `${fixed(added.p99 - TARGET_ADDED_P99_MS, 3)} ms over`),
    ],
    [
      "requests counted by the platform's traffic metrics vs. completed by wrk through the ingress",
      `${M.counted} vs. ${M.expected} (${countErr >= 0 ? "+" : ""}${fixed(countErr * 100, 3)} %; up to ${M.inFlightBound} were in flight when a wrk run stopped)`,
      "±1 %",
      verdict(pass.count, `${fixed(countErr * 100, 2)} %`),
    ],
    ["req/s through the ingress ÷ directly (saturating)", `${fixed(rps(maxIngress), 0)} ÷ ${fixed(rps(maxDirect), 0)} = ${fixed(rps(maxIngress) / rps(maxDirect), 2)}; bare HAProxy ${fixed(rps(maxBare), 0)} (${fixed(rps(maxBare) / rps(maxDirect), 2)})`, "—", "—"],
  ];

  const tHeader = ["target (saturating wrk)", "req/s: median (min–max)", "HAProxy CPU s / 1,000 req", "agent CPU s / 1,000 req", "app CPU s / 1,000 req", "machine busy %", "of which other processes %"];
  const tRows = TARGETS.map((t) => {
    const rs = of(t, "max");
    return [
      t,
      spread(rs.map((r) => r.wrk.rps)),
      t === "direct" ? "—" : fixed(perK(rs, (r) => (t === "ingress" ? r.cpu.haproxy : r.cpu.bare)), 3),
      t === "ingress" ? `${fixed(agentK, 3)} (${fixed(agentNetK, 3)} above its idle ${fixed(m.agentIdleCpuPerS * 100, 1)} % of a core)` : "—",
      fixed(perK(rs, (r) => r.cpu.app), 3),
      spread(rs.map((r) => (r.cpu.machineBusy / r.cpu.machineTotal) * 100)),
      spread(rs.map((r) => (otherCpu(r) / r.cpu.machineTotal) * 100)),
    ];
  });
  const lHeader = ["target (paced wrk)", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "HAProxy + agent CPU s / 1,000 req"];
  const lRows = TARGETS.map((t) => {
    const rs = of(t, "paced");
    const cpuK = t === "ingress" ? perK(rs, (r) => r.cpu.haproxy + r.cpu.agent) : t === "bare" ? perK(rs, (r) => r.cpu.bare) : NaN;
    return [t, spread(rs.map((r) => r.wrk.rps)), spread(rs.map((r) => r.wrk.latencyMs.p50), 3), spread(rs.map((r) => r.wrk.latencyMs.p90), 3), spread(rs.map((r) => r.wrk.latencyMs.p99), 3), spread(rs.map((r) => r.wrk.latencyMs.p999), 3), t === "direct" ? "—" : fixed(cpuK, 3)];
  });
  const runHeader = ["phase", "target", "requests", "s", "req/s", "p50 ms", "p99 ms", "HAProxy CPU s", "agent CPU s", "bare CPU s", "app CPU s", "wrk CPU s", "other CPU s", "machine busy CPU s"];
  const runRows = m.runs.map((r) => [r.phase, r.target, String(r.wrk.requests), fixed(r.wrk.seconds, 2), fixed(r.wrk.rps, 0), fixed(r.wrk.latencyMs.p50, 3), fixed(r.wrk.latencyMs.p99, 3), fixed(r.cpu.haproxy, 2), fixed(r.cpu.agent, 2), fixed(r.cpu.bare, 2), fixed(r.cpu.app, 2), fixed(r.cpu.wrk, 2), fixed(otherCpu(r), 1), fixed(r.cpu.machineBusy, 1)]);

  const cpu = os.cpus();
  const header = [
    `Run on ${new Date().toISOString()} (Node ${process.version}, ${cpu.length} cores: ${cpu[0]?.model ?? "unknown CPU"}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")} at the end).`,
    `wrk ${THREADS} threads, ${CONNECTIONS} connections, ${RUN_S} s per run, ${ROUNDS} rounds per phase; direct = ${m.direct.host}:${m.direct.port}.`,
    `Bare HAProxy config = the agent's minus: ${m.configDiff.join("; ")}.`,
    `Traffic metrics settled ${fixed(M.waitedMs / 1000, 1)} s after the last run. Agent's traffic log socket: ${m.agentLog}.`,
  ];
  const text = ["", "=== Ingress benchmark (wrk, keep-alive Node app) ===", ...header, "", textTable(summaryHeader, summary), "", textTable(tHeader, tRows), "", textTable(lHeader, lRows), "", textTable(runHeader, runRows)].join("\n");
  const markdown = ["### Ingress, measured with wrk (as printed)", "", ...header, "", mdTable(summaryHeader, summary), "", mdTable(tHeader, tRows), "", mdTable(lHeader, lRows), "", mdTable(runHeader, runRows), ""].join("\n");
  return { text, markdown, pass: pass.cpu && pass.pacedCpu && pass.p99 && pass.count };
}

/** The cleanup of the run in progress, for a signal handler. */
let cleanupCurrent: (() => Promise<void>) | undefined;

/** Stops what a running ingress benchmark started (bare HAProxy, platform, images); resolves at once when none runs. */
export function abortIngressBench(): Promise<void> {
  return cleanupCurrent?.() ?? Promise.resolve();
}

/** Runs the ingress benchmark with its own platform; cleans up everything it started, also on failure. */
export async function runIngressBench(): Promise<{ text: string; markdown: string; pass: boolean }> {
  if (spawnSync("wrk", ["-v"]).error) throw new Error("wrk is not installed (apt-get install wrk; scripts/setup installs it)");
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  const app = `ingress-${platform.label.replace(/^e2e-/, "")}`;
  const bare: { current?: Awaited<ReturnType<typeof startBareHaproxy>> } = {};
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      progress("cleaning up: bare HAProxy, platform, images");
      await bare.current?.proc.stop().catch(() => undefined);
      if (bare.current) rmSync(bare.current.dir, { recursive: true, force: true });
      await platform.stop().catch((e: unknown) => progress(`warning: platform stop: ${(e as Error).message}`));
      const docker = new Dockerode();
      const images = await docker.listImages({ filters: { reference: [`slipway/${app}`] } }).catch(() => []);
      for (const img of images) for (const tag of img.RepoTags ?? []) await docker.getImage(tag).remove().catch(() => undefined);
      rmSync(repo.dir, { recursive: true, force: true });
      progress(`logs were in ${platform.dir}`);
    })());
  cleanupCurrent = cleanup;
  let timer: NodeJS.Timeout | undefined;
  try {
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`ingress bench: runtime limit of ${RUNTIME_LIMIT_MS / 1000} s reached`)), RUNTIME_LIMIT_MS);
    });
    return report(await Promise.race([measure(platform, repo, app, bare), limit]));
  } catch (err) {
    progress(`agent log tail:\n${platform.tail("agent-0.log", 15)}`);
    throw err;
  } finally {
    clearTimeout(timer);
    await cleanup();
    cleanupCurrent = undefined;
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void abortIngressBench().finally(() => process.exit(130)));
  runIngressBench().then(
    (r) => {
      process.stdout.write(`${r.text}\n\n----- BENCHMARKS.md -----\n${r.markdown}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
