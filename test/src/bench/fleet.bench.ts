/**
 * Fleet benchmark (PRODUCT.md, "Performance targets": simulated agents held by
 * one control plane on 2 cores, 5 s heartbeats, p99 job dispatch < 100 ms,
 * target ≥ 5,000).
 *
 * One control plane (the built one, as a process, on a fresh PostgreSQL
 * database and a real nats-server, heartbeat interval 5 s) and N simulated
 * agents in 2 load-generator processes (fleet-worker.ts) that speak the real
 * protocols: each agent registers with its own join token, keeps a Heartbeat
 * stream with a beat every 5 s (phases spread evenly), and consumes its own
 * durable JetStream pull consumer. N grows in steps; at each step, after the
 * new agents registered and one heartbeat interval passed, deployments are
 * requested through the REST API at a steady rate for the dwell time. They go
 * the real way (outbox → JetStream → the agent's consumer); the dispatch
 * latency is the time from sending the POST to the simulated agent holding
 * the job message (CLOCK_MONOTONIC in both processes). The agent acks, fetches
 * the spec (GetJobSpec) and reports `result: succeeded` (ReportJobEvents), so
 * the deployment ends and its environment can be deployed again.
 *
 * Deployments go to a pool of environments of one app; an environment's host
 * is chosen (least loaded online host) at its first deployment, so every step
 * adds a few environments, primed before its dwell, to spread jobs over the
 * growing fleet. Each environment gets a PostgreSQL database (the control
 * plane creates one at the first deployment), hence a pool and not one
 * environment per job.
 *
 * Per step: heartbeats/s answered, heartbeat errors (stream errors, answers
 * later than one interval, beats unanswered after one interval), dispatch
 * latency p50/p95/p99, CPU % (of one core, /proc/<pid>/stat over the dwell)
 * and RSS of the control plane, nats-server, the control plane's PostgreSQL
 * backends and the cluster's background processes, the load generators, and
 * what else the machine was doing. Before each window the benchmark waits
 * (bounded) until the control plane has caught up with heartbeats after the
 * registration burst, and the load generators run a full GC so that their own
 * pauses do not land in the window. A step that misses is measured once more
 * at the same size (a stall of this shared machine passes then, a limit does
 * not); the ramp stops at the first size whose last measurement misses, or
 * when the next step would not fit the time budget (8 min, cleanup included).
 *
 * `runFleetBench()` returns markdown; run alone with
 * `node test/dist/bench/fleet.bench.js` (progress on stderr, tables on
 * stdout). Environment overrides for exploring: FLEET_STEPS=500,1000,…
 * FLEET_DWELL_S, FLEET_RATE, FLEET_WORKERS, FLEET_BUDGET_S, FLEET_LOG_LEVEL,
 * FLEET_GET_SPEC=0, FLEET_AFTER_MISS (steps still run after the first miss),
 * FLEET_RETRIES, FLEET_REGISTER_CONCURRENCY, FLEET_KEEP_LOGS=1, FLEET_REPLICAS=2
 * (two control-plane processes sharing the machine, the database and NATS); to measure a
 * change to the control plane without touching the repository:
 * FLEET_CP_MAIN=/path/to/other/build/main.js, FLEET_CP_NODE_ARGS="--cpu-prof
 * --cpu-prof-dir=…", FLEET_WORKER_NODE_ARGS, FLEET_WORKER_NICE=10 (the load generators at a
 * lower CPU priority than the platform's processes).
 *
 * Open files: every simulated agent holds a gRPC and a NATS socket; the load
 * generators are started through `bash -c 'ulimit -n 65536; exec node …'`
 * (root may raise the hard limit; otherwise the soft limit goes up to the hard
 * one). The control plane and nats-server inherit this process's limit
 * (20,000 here: enough for ~10,000 agents).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { Api } from "../support/platform.js";
import { FleetPlatform } from "./fleet-platform.js";
import { UsageSampler, type UsageWindow } from "./fleet-proc.js";
import { collectGarbage, monoMs, type AgentSeed, type FromWorker, type ToWorker, type WorkerStats } from "./fleet-protocol.js";
import { fixed, mdTable, textTable } from "./stats.js";

export interface FleetBenchOptions {
  /** Fleet sizes to step through (stops at the first miss, or when the time budget would be exceeded). */
  steps?: number[];
  /** Measured time per step (default 20 s). */
  dwellMs?: number;
  /** Wait after the last registration of a step before measuring (default: one heartbeat interval). */
  settleMs?: number;
  /** Deployments per second during the dwell (default 20). */
  ratePerSec?: number;
  /** Load generator processes (default 2; at least one per control-plane replica). */
  workers?: number;
  /**
   * Control-plane processes on the one PostgreSQL and NATS (default 1). With 2, the second is a
   * replica (issue 16): load generator i talks gRPC to replica i mod n, and the deployments'
   * POSTs alternate between them; the control-plane CPU and RSS are the replicas' sum.
   */
  replicas?: number;
  heartbeatIntervalMs?: number;
  /** The whole run, cleanup included (default 8 min). */
  budgetMs?: number;
  /** Steps still run after the first one that misses (default 0). */
  stepsAfterMiss?: number;
  /** A step that misses is measured again this many times at the same size (default 1). */
  retries?: number;
  /** Concurrent registrations per load generator (default 32). */
  registerConcurrency?: number;
  /** Simulated agents call GetJobSpec before reporting, as the real agent does (default true). */
  getJobSpec?: boolean;
  /** The control plane's LOG_LEVEL (default info, as in production). */
  logLevel?: string;
  /** Open-file limit set for the load generators (default 65536). */
  workerFdLimit?: number;
  progress?: (msg: string) => void;
}

export const TARGET_AGENTS = 10_000;
/** Wait between the load generators' forced collection and the window. */
const GC_SETTLE_MS = 3000;
export const TARGET_P99_MS = 100;
const DEFAULT_STEPS = [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000];
/** Environments primed at the first step, and added at every later step. */
const ENVS_FIRST = 12;
const ENVS_PER_STEP = 4;
/** Cleanup reserve kept out of the step budget (workers, control plane, nats, databases). */
const CLEANUP_RESERVE_MS = 45_000;
/** At most this long after the settle time for the control plane to catch up with heartbeats after a ramp. */
const MAX_BACKLOG_WAIT_MS = 30_000;
/** A dispatched job not received this long after the dwell counts as lost. */
const LATE_LIMIT_MS = 5000;
const APP = "fleet";

export interface StepResult {
  agents: number;
  /** 2 when the step is measured again after a miss. */
  attempt: number;
  added: number;
  registerFailed: number;
  registerErrors: Record<string, number>;
  rampS: number;
  registerPerS: number;
  registerP50Ms: number;
  registerP99Ms: number;
  consumeP99Ms: number;
  online: number;
  dwellS: number;
  hbExpectedPerS: number;
  hbPerS: number;
  hbSent: number;
  hbAnswered: number;
  hbErrors: number;
  hbErrorKinds: Record<string, number>;
  hbLate: number;
  hbOverdue: number;
  hbRttP50Ms: number;
  hbRttP99Ms: number;
  dispatched: number;
  received: number;
  lost: number;
  dispatchErrors: Record<string, number>;
  skippedNoFreeEnv: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  postP50Ms: number;
  postP99Ms: number;
  /** received before the POST answer came back */
  rxBeforeAnswer: number;
  jobErrors: Record<string, number>;
  usage: UsageWindow;
  workerLoopP99Ms: number;
  workerLoopMaxMs: number;
  natsNotices: Record<string, number>;
  pass: boolean;
  why: string[];
}

export interface FleetBenchResult {
  markdown: string;
  text: string;
  steps: StepResult[];
  /** Largest N of the passing steps before the first miss (0 when the first step missed). */
  held: number;
  startedAt: string;
  durationS: number;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => `${fixed(b / 2 ** 20, 0)} MB`;
const ms = (x: number) => (Number.isFinite(x) ? fixed(x, x < 10 ? 1 : 0) : x === Infinity ? "∞" : "n/a");
const int = (n: number) => Math.round(n).toLocaleString("en-US");
const merge = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
};

/** Node flags of the load generators (FLEET_WORKER_NODE_ARGS adds some, e.g. --trace-gc). */
const WORKER_NICE = Number(process.env.FLEET_WORKER_NICE ?? 0);
const WORKER_NODE_ARGS = ["--max-old-space-size=4096", ...(process.env.FLEET_WORKER_NODE_ARGS ?? "").split(" ").filter(Boolean)];

/** A load generator process and a typed request/answer channel to it. */
class WorkerProc {
  readonly child: ChildProcess;
  readonly pid: number;
  private waiters: Array<{ t: FromWorker["t"]; resolve: (m: FromWorker) => void; reject: (e: Error) => void }> = [];
  exited = false;

  constructor(script: string, env: NodeJS.ProcessEnv, fdLimit: number, onEvent: (m: FromWorker) => void) {
    // The shell raises the open-file limit (each agent holds a gRPC and a NATS socket), then becomes node: same PID.
    this.child = spawn(
      "bash",
      ["-c", `ulimit -n ${fdLimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`, process.execPath, ...WORKER_NODE_ARGS, script],
      // The generator's stdout goes to this process's stderr: stdout carries only the results.
      { env, stdio: ["ignore", 2, 2, "ipc"] },
    );
    this.pid = this.child.pid!;
    if (WORKER_NICE !== 0) os.setPriority(this.pid, WORKER_NICE);
    this.child.on("message", (m: FromWorker) => {
      const i = this.waiters.findIndex((w) => w.t === m.t);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
      else onEvent(m);
    });
    this.child.once("exit", (code, signal) => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`load generator ${this.pid} exited (${signal ?? code})`));
    });
  }

  request<T extends FromWorker["t"]>(msg: ToWorker | undefined, answer: T, timeoutMs: number): Promise<Extract<FromWorker, { t: T }>> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error(`load generator ${this.pid} is gone`));
      const t = setTimeout(() => reject(new Error(`load generator ${this.pid}: no '${answer}' within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        t: answer,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m as Extract<FromWorker, { t: T }>);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      if (msg) this.child.send(msg);
    });
  }

  send(msg: ToWorker): void {
    if (!this.exited) this.child.send(msg);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once("exit", () => r()));
    try {
      this.child.send({ t: "stop" } satisfies ToWorker);
    } catch {
      // channel already closed
    }
    const t = setTimeout(() => {
      if (!this.exited) process.kill(this.pid, "SIGKILL");
    }, 8000);
    await gone;
    clearTimeout(t);
  }
}

/** One requested deployment, from the POST to the agent's report. */
interface Dispatch {
  env: string;
  t0: number;
  answeredAt?: number;
  id?: string;
  rxAt?: number;
  doneAt?: number;
  error?: string;
  prime: boolean;
}

export async function runFleetBench(opts: FleetBenchOptions = {}): Promise<FleetBenchResult> {
  const envNum = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
  const steps = opts.steps ?? (process.env.FLEET_STEPS ? process.env.FLEET_STEPS.split(",").map(Number) : DEFAULT_STEPS);
  const hbInterval = opts.heartbeatIntervalMs ?? 5000;
  const dwellMs = opts.dwellMs ?? (envNum("FLEET_DWELL_S") ?? 20) * 1000;
  const settleMs = opts.settleMs ?? hbInterval;
  const rate = opts.ratePerSec ?? envNum("FLEET_RATE") ?? 20;
  const nReplicas = Math.max(1, opts.replicas ?? envNum("FLEET_REPLICAS") ?? 1);
  const nWorkers = Math.max(nReplicas, opts.workers ?? envNum("FLEET_WORKERS") ?? 2);
  const budgetMs = opts.budgetMs ?? (envNum("FLEET_BUDGET_S") ?? 480) * 1000;
  const afterMiss = opts.stepsAfterMiss ?? envNum("FLEET_AFTER_MISS") ?? 0;
  const retries = opts.retries ?? envNum("FLEET_RETRIES") ?? 1;
  const regConcurrency = opts.registerConcurrency ?? envNum("FLEET_REGISTER_CONCURRENCY") ?? 32;
  const getJobSpec = opts.getJobSpec ?? process.env.FLEET_GET_SPEC !== "0";
  const logLevel = opts.logLevel ?? process.env.FLEET_LOG_LEVEL ?? "info";
  const fdLimit = opts.workerFdLimit ?? 65536;
  const startedAt = new Date();
  const t0 = performance.now();
  const deadline = t0 + budgetMs;
  const elapsed = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  const progress = opts.progress ?? ((msg: string) => process.stderr.write(`fleet bench [${elapsed()} s] ${msg}\n`));

  const platform = new FleetPlatform({ heartbeatIntervalMs: hbInterval, logLevel });
  /** The replicas after the first (FLEET_REPLICAS). */
  const replicas: Array<{ proc: { pid: number; child: ChildProcess; stop(): Promise<void> }; httpPort: number; grpcPort: number }> = [];
  const workers: WorkerProc[] = [];
  let db: pg.Client | undefined;
  let failed = false;

  // Dispatch bookkeeping: the worker's receipt may arrive before the POST answer.
  const dispatches = new Map<string, Dispatch>();
  const early = new Map<string, { rxAt?: number; doneAt?: number; error?: string }>();
  const busyEnvs = new Set<string>();
  const onEvent = (m: FromWorker) => {
    if (m.t !== "rx" && m.t !== "done") return;
    const d = dispatches.get(m.deploymentId);
    const target = d ?? early.get(m.deploymentId) ?? {};
    if (m.t === "rx") target.rxAt ??= m.at;
    else {
      target.doneAt = m.at;
      if (!m.ok) target.error = m.error;
      if (d) busyEnvs.delete(d.env);
    }
    if (!d) early.set(m.deploymentId, target);
  };

  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      progress("cleaning up: load generators, control plane, nats-server, databases");
      await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
      await db?.end().catch(() => undefined);
      // Stop the control planes first so no deployment recreates a database being dropped.
      await Promise.all(replicas.map((r) => r.proc.stop().catch(() => undefined)));
      await platform.cp?.stop().catch(() => undefined);
      const dropped = await platform.dropEnvironmentDatabases().catch((e: unknown) => {
        progress(`warning: dropping environment databases: ${(e as Error).message}`);
        return 0;
      });
      await platform.stop().catch((e: unknown) => progress(`warning: platform stop: ${(e as Error).message}`));
      rmSync(platform.nats.storeDir, { recursive: true, force: true });
      if (failed || process.env.FLEET_KEEP_LOGS) progress(`logs kept in ${platform.dir}`);
      else rmSync(platform.dir, { recursive: true, force: true });
      progress(`cleanup done (${dropped} environment databases dropped)`);
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    progress(`${sig}: stopping`);
    failed = true;
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // If the process exits before the cleanup ran (another SIGINT handler exiting first, a crash),
  // at least stop the processes started here, by PID.
  const onExit = () => {
    // Only processes that have not exited (a PID may be reused once they have).
    const alive = (c?: ChildProcess) => c !== undefined && c.exitCode === null && c.signalCode === null;
    const nats = (platform.nats as unknown as { proc?: { child?: ChildProcess } }).proc?.child;
    for (const c of [...workers.map((w) => w.child), platform.cp?.child, ...replicas.map((r) => r.proc.child), nats]) {
      try {
        if (alive(c) && c!.pid) process.kill(c!.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  };
  process.on("exit", onExit);

  const results: StepResult[] = [];
  const notes: string[] = [];
  try {
    progress(`starting nats-server, a PostgreSQL database and the control plane (heartbeat interval ${hbInterval} ms, LOG_LEVEL ${logLevel})`);
    await platform.start();
    for (let i = 1; i < nReplicas; i++) replicas.push(await platform.startReplica(i));
    const apis = [platform.api, ...replicas.map((r) => new Api(`http://127.0.0.1:${r.httpPort}`, platform.adminToken))];
    const api = platform.api;
    let posts = 0;
    db = new pg.Client({ connectionString: platform.databaseUrl });
    await db.connect();
    const natsPid = platform.natsPid();
    const cpPids = [platform.cp!.pid, ...replicas.map((r) => r.proc.pid)];
    const grpcPorts = [platform.grpcPort, ...replicas.map((r) => r.grpcPort)];

    const script = fileURLToPath(new URL("./fleet-worker.js", import.meta.url));
    for (let i = 0; i < nWorkers; i++) {
      const wenv: NodeJS.ProcessEnv = { ...process.env, FLEET_GRPC_ADDRESS: `127.0.0.1:${grpcPorts[i % grpcPorts.length]}`, FLEET_GET_SPEC: getJobSpec ? "1" : "0" };
      workers.push(new WorkerProc(script, wenv, fdLimit, onEvent));
    }
    await Promise.all(workers.map((w) => w.request(undefined, "ready", 20_000)));
    progress(`${nWorkers} load generator(s) ready (PIDs ${workers.map((w) => w.pid).join(", ")}; open files raised to ${fdLimit}); control plane PID${cpPids.length > 1 ? "s" : ""} ${cpPids.join(", ")}, nats-server PID ${natsPid}`);

    await api.call("POST", "/v1/apps", { name: APP, repository: "/nonexistent/slipway-fleet-bench.git" });
    const envs: string[] = [];

    const post = (d: Dispatch): Promise<void> =>
      apis[posts++ % apis.length]!
        .call<{ id: string }>("POST", `/v1/apps/${APP}/environments/${d.env}/deployments`, {})
        .then((r) => {
          d.answeredAt = monoMs();
          d.id = r.id;
          dispatches.set(r.id, d);
          const e = early.get(r.id);
          if (e) {
            early.delete(r.id);
            d.rxAt ??= e.rxAt;
            if (e.doneAt !== undefined) {
              d.doneAt = e.doneAt;
              d.error = e.error;
              busyEnvs.delete(d.env);
            }
          }
        })
        .catch((err: unknown) => {
          d.answeredAt = monoMs();
          d.error = `POST: ${(err as Error).message.slice(0, 160)}`;
          busyEnvs.delete(d.env);
        });

    /** New environments, each deployed once (placing it on a host and creating its database); not measured. */
    const prime = async (count: number) => {
      const names = Array.from({ length: count }, (_, i) => `e${envs.length + i + 1}`);
      const ds = await Promise.all(
        names.map(async (name) => {
          await api.call("POST", `/v1/apps/${APP}/environments`, { name });
          const d: Dispatch = { env: name, t0: monoMs(), prime: true };
          busyEnvs.add(name);
          await post(d);
          return d;
        }),
      );
      const until = performance.now() + 30_000;
      while (ds.some((d) => d.doneAt === undefined && !d.error) && performance.now() < until) await sleep(50);
      const bad = ds.filter((d) => d.doneAt === undefined || d.error);
      if (bad.length) throw new Error(`priming environments: ${bad.map((d) => `${d.env}: ${d.error ?? "not done in 30 s"}`).join("; ")}`);
      envs.push(...names);
    };

    let agents = 0;
    let nextIdx = 0;
    let lastStepS = 0;
    let regRate = 0;
    let misses = 0;
    for (const target of steps) {
      if (target <= agents) continue;
      const delta = target - agents;
      // Time check: the ramp (at the rate seen so far) + settle + dwell + drain must fit before the cleanup reserve.
      const rampGuess = regRate > 0 ? (delta / regRate) * 1000 * 1.3 : delta * 10;
      const need = rampGuess + settleMs + dwellMs + LATE_LIMIT_MS + 5000;
      const left = deadline - CLEANUP_RESERVE_MS - performance.now();
      if (need > left) {
        progress(`stopping before ${int(target)} agents: the step needs ~${fixed(need / 1000, 0)} s, ${fixed(left / 1000, 0)} s left in the budget`);
        notes.push(`Not measured: ${int(target)} agents and more (that step would need ~${fixed(need / 1000, 0)} s; ${fixed(Math.max(0, left) / 1000, 0)} s were left in the ${fixed(budgetMs / 1000, 0)} s budget).`);
        break;
      }

      // ---- ramp: join tokens, registrations ----
      const rampStart = performance.now();
      progress(`step ${int(target)}: creating ${int(delta)} join tokens`);
      const tokens: string[] = new Array(delta);
      let ti = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (ti < delta) {
            const i = ti++;
            tokens[i] = (await api.call<{ token: string }>("POST", "/v1/join-tokens")).token;
          }
        }),
      );
      const seeds: AgentSeed[][] = workers.map(() => []);
      tokens.forEach((token, i) => seeds[i % workers.length]!.push({ idx: nextIdx++, joinToken: token }));
      progress(`step ${int(target)}: registering ${int(delta)} agents (${regConcurrency} at a time per load generator)`);
      const regStart = performance.now();
      // Registrations slow down when the control plane is saturated: stop them when the budget would be overrun.
      const allowance = deadline - CLEANUP_RESERVE_MS - performance.now() - (settleMs + dwellMs + LATE_LIMIT_MS + 5000);
      const halt = setTimeout(() => {
        progress(`step ${int(target)}: registrations too slow for the time budget; halting them`);
        for (const w of workers) w.send({ t: "halt" });
      }, Math.max(0, allowance));
      const added = await Promise.all(workers.map((w, i) => w.request({ t: "add", agents: seeds[i]!, concurrency: regConcurrency }, "added", 600_000))).finally(() => clearTimeout(halt));
      const regS = (performance.now() - regStart) / 1000;
      const ok = added.reduce((n, a) => n + a.ok, 0);
      const regFailed = added.reduce((n, a) => n + a.failed, 0);
      const regErrors = added.reduce((acc, a) => merge(acc, a.errors), {} as Record<string, number>);
      const registerMs = added.flatMap((a) => a.registerMs);
      const consumeMs = added.flatMap((a) => a.consumeMs);
      regRate = ok / Math.max(regS, 0.001);
      agents += ok;
      progress(
        `step ${int(target)}: ${int(ok)} registered in ${fixed(regS, 1)} s (${fixed(regRate, 0)}/s; Register p50 ${ms(pct(registerMs, 50))} ms, p99 ${ms(pct(registerMs, 99))} ms; NATS connect+consume p99 ${ms(pct(consumeMs, 99))} ms)` +
          (regFailed ? `; ${regFailed} FAILED: ${JSON.stringify(regErrors)}` : ""),
      );
      if (ok + regFailed < delta) {
        notes.push(
          `Stopped while growing the fleet to ${int(target)}: only ${int(ok)} of ${int(delta)} more agents registered in ${fixed(regS, 0)} s ` +
            `(${fixed(regRate, 0)}/s, Register p50 ${ms(pct(registerMs, 50))} ms, p99 ${ms(pct(registerMs, 99))} ms) before the time budget ran out; that size was not measured.`,
        );
        break;
      }
      const regDone = performance.now();

      // ---- environments for this step, then settle (every new agent has sent its first beats) ----
      try {
        await prime(envs.length === 0 ? ENVS_FIRST : ENVS_PER_STEP);
      } catch (err) {
        if (envs.length === 0) throw err;
        notes.push(`Stopped at ${int(agents)} agents before measuring: ${(err as Error).message}`);
        progress(`step ${int(target)}: ${(err as Error).message}; stopping`);
        break;
      }
      const settleLeft = regDone + settleMs - performance.now();
      if (settleLeft > 0) await sleep(settleLeft);
      let last: StepResult | undefined;
      for (let attempt = 1; ; attempt++) {
        // A registration burst can leave the control plane behind on heartbeats; measure its steady state, so wait
        // (bounded) until no beat has waited more than a second.
        const backlogUntil = Math.min(performance.now() + MAX_BACKLOG_WAIT_MS, deadline - CLEANUP_RESERVE_MS - dwellMs - LATE_LIMIT_MS);
        let oldest = Infinity;
        while (performance.now() < backlogUntil) {
          oldest = Math.max(...(await Promise.all(workers.map((w) => w.request({ t: "probe" }, "probe", 30_000)))).map((p) => p.oldestPendingMs));
          if (oldest < 1000) break;
          await sleep(1000);
        }
        if (oldest >= 1000) progress(`step ${int(target)}: the control plane is still behind on heartbeats (oldest unanswered ${fixed(oldest / 1000, 1)} s); measuring anyway`);
        const rampS = attempt === 1 ? (performance.now() - rampStart) / 1000 : NaN;

        // ---- dwell ----
        progress(`step ${int(target)}: measuring for ${dwellMs / 1000} s, ${rate} deployments/s over ${envs.length} environments`);
        // The generators' (and this process's) own major GCs take 100–200 ms at a few thousand agents each: collect now, so
        // that none is due during the window and the receipt times stay the control plane's.
        await Promise.all([...workers.map((w) => w.request({ t: "gc" }, "gc", 30_000)), collectGarbage()]);
        // A forced collection leaves work behind (V8 sweeps on background threads after the pause; the beats it delayed
        // go out together): measured, the first second of a window started at once answered POSTs in 100–150 ms
        // against a p99 of 65 ms for the rest. Let it settle first.
        await sleep(GC_SETTLE_MS);
        await Promise.all(workers.map((w) => w.request({ t: "stats" }, "stats", 30_000)));
        const sampler = new UsageSampler({
          "control plane": () => cpPids,
          "nats-server": () => (natsPid ? [natsPid] : []),
          "PostgreSQL (control plane's backends)": async () =>
            (await db!.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")).rows.map((r) => r.pid),
          // Shared by the whole cluster, but mostly driven by this load: WAL writer, checkpointer, autovacuum, ...
          "PostgreSQL background processes": async () =>
            (await db!.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")).rows.map((r) => r.pid),
          "load generators": () => workers.map((w) => w.pid),
          "benchmark driver": () => [process.pid],
        });
        const dwellStart = performance.now();
        const stepDispatches: Dispatch[] = [];
        const inflight: Promise<void>[] = [];
        let skipped = 0;
        const interval = 1000 / rate;
        for (let k = 0; ; k++) {
          const due = dwellStart + k * interval;
          if (due >= dwellStart + dwellMs) break;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          const free = envs.filter((e) => !busyEnvs.has(e));
          if (free.length === 0) {
            skipped++;
            continue;
          }
          const env = free[Math.floor(Math.random() * free.length)]!;
          busyEnvs.add(env);
          const d: Dispatch = { env, t0: monoMs(), prime: false };
          stepDispatches.push(d);
          inflight.push(post(d));
        }
        const ws = await Promise.all(workers.map((w) => w.request({ t: "stats" }, "stats", 30_000)));
        const dwellS = (performance.now() - dwellStart) / 1000;
        const usage = await sampler.stop();
        // Late receipts still count (as latency); wait a bounded time for them.
        await Promise.all(inflight);
        const lateUntil = performance.now() + LATE_LIMIT_MS;
        while (stepDispatches.some((d) => d.rxAt === undefined && !d.error) && performance.now() < lateUntil) await sleep(50);
        const on = (await db.query<{ online: string; total: string }>(
          `SELECT count(*) FILTER (WHERE last_heartbeat_at > now() - make_interval(secs => $1)) AS online, count(*) AS total FROM hosts`,
          [(3 * hbInterval) / 1000],
        )).rows[0]!;

        const stats = ws.map((m) => m.stats);
        const sum = (f: (s: WorkerStats) => number) => stats.reduce((n, s) => n + f(s), 0);
        const lat = stepDispatches.filter((d) => !d.error).map((d) => (d.rxAt !== undefined ? d.rxAt - d.t0 : Infinity));
        const dispatchErrors: Record<string, number> = {};
        for (const d of stepDispatches) if (d.error) dispatchErrors[d.error] = (dispatchErrors[d.error] ?? 0) + 1;
        const received = stepDispatches.filter((d) => d.rxAt !== undefined).length;
        const hbErrorKinds = stats.reduce((acc, s) => merge(acc, s.hbErrors), {} as Record<string, number>);
        const hbLate = sum((s) => s.hbLate);
        const hbOverdue = sum((s) => s.hbOverdue);
        const hbErrors = Object.values(hbErrorKinds).reduce((a, b) => a + b, 0) + hbLate + hbOverdue;
        const rtt = stats.flatMap((s) => s.hbRtt);
        const posts = stepDispatches.filter((d) => d.answeredAt !== undefined).map((d) => d.answeredAt! - d.t0);
        const r: StepResult = {
          agents,
          attempt,
          added: ok,
          registerFailed: regFailed,
          registerErrors: regErrors,
          rampS,
          registerPerS: regRate,
          registerP50Ms: pct(registerMs, 50),
          registerP99Ms: pct(registerMs, 99),
          consumeP99Ms: pct(consumeMs, 99),
          online: Number(on.online),
          dwellS,
          hbExpectedPerS: agents / (hbInterval / 1000),
          hbPerS: sum((s) => s.hbAnswered) / dwellS,
          hbSent: sum((s) => s.hbSent),
          hbAnswered: sum((s) => s.hbAnswered),
          hbErrors,
          hbErrorKinds,
          hbLate,
          hbOverdue,
          hbRttP50Ms: pct(rtt, 50),
          hbRttP99Ms: pct(rtt, 99),
          dispatched: stepDispatches.length,
          received,
          lost: stepDispatches.filter((d) => d.rxAt === undefined && !d.error).length,
          dispatchErrors,
          skippedNoFreeEnv: skipped,
          p50Ms: pct(lat, 50),
          p95Ms: pct(lat, 95),
          p99Ms: pct(lat, 99),
          maxMs: lat.length ? Math.max(...lat) : NaN,
          postP50Ms: pct(posts, 50),
          postP99Ms: pct(posts, 99),
          rxBeforeAnswer: stepDispatches.filter((d) => d.rxAt !== undefined && d.answeredAt !== undefined && d.rxAt < d.answeredAt).length,
          jobErrors: stats.reduce((acc, s) => merge(acc, s.jobErrors), {} as Record<string, number>),
          usage,
          workerLoopP99Ms: Math.max(...stats.map((s) => s.loopDelayP99Ms)),
          workerLoopMaxMs: Math.max(...stats.map((s) => s.loopDelayMaxMs)),
          natsNotices: stats.reduce((acc, s) => merge(acc, s.natsNotices), {} as Record<string, number>),
          pass: false,
          why: [],
        };
        if (!(r.p99Ms < TARGET_P99_MS)) r.why.push(`dispatch p99 ${ms(r.p99Ms)} ms ≥ ${TARGET_P99_MS} ms`);
        if (r.hbErrors > 0) r.why.push(`${r.hbErrors} heartbeat errors (${JSON.stringify({ ...hbErrorKinds, late: hbLate, overdue: hbOverdue })})`);
        if (r.registerFailed > 0) r.why.push(`${r.registerFailed} registrations failed`);
        if (r.lost > 0) r.why.push(`${r.lost} dispatched jobs not received within ${LATE_LIMIT_MS / 1000} s after the dwell`);
        if (Object.keys(dispatchErrors).length) r.why.push(`deployment errors: ${JSON.stringify(dispatchErrors)}`);
        if (r.online < r.agents) r.why.push(`only ${r.online} of ${r.agents} hosts online`);
        if (r.dispatched < rate * (dwellMs / 1000) * 0.9) r.why.push(`only ${r.dispatched} deployments dispatched (${skipped} skipped: no free environment)`);
        r.pass = r.why.length === 0;
        results.push(r);
        lastStepS = (performance.now() - rampStart) / 1000;
        const u = usage.roles;
        progress(
          `step ${int(agents)}: ${r.pass ? "PASS" : "MISS"}; heartbeats ${fixed(r.hbPerS, 0)}/s (expected ${fixed(r.hbExpectedPerS, 0)}), errors ${r.hbErrors}, RTT p99 ${ms(r.hbRttP99Ms)} ms; ` +
            `dispatch n=${r.dispatched} p50 ${ms(r.p50Ms)} / p95 ${ms(r.p95Ms)} / p99 ${ms(r.p99Ms)} ms (POST p99 ${ms(r.postP99Ms)} ms); ` +
            `CPU: control plane ${fixed(u["control plane"]!.cpuPct, 0)} %, nats ${fixed(u["nats-server"]!.cpuPct, 0)} %, PostgreSQL ${fixed(u["PostgreSQL (control plane's backends)"]!.cpuPct, 0)} %, generators ${fixed(u["load generators"]!.cpuPct, 0)} %, other ${fixed(usage.otherCpuPct, 0)} %, steal ${fixed(usage.stealPct, 0)} %; ` +
            `RSS control plane ${mb(u["control plane"]!.rssEndBytes)}, nats ${mb(u["nats-server"]!.rssEndBytes)}; online ${r.online}/${r.agents}; step took ${fixed(lastStepS, 0)} s` +
            (r.pass ? "" : ` — ${r.why.join("; ")}`),
        );
        last = r;
        if (r.pass || attempt > retries) break;
        // A miss is measured once more at the same size: a transient (a stall of this shared machine) passes then, a limit does not.
        if (deadline - CLEANUP_RESERVE_MS - performance.now() < dwellMs + LATE_LIMIT_MS + 10_000) break;
        progress(`step ${int(agents)}: measuring the same fleet once more`);
      }
      if (!last!.pass && ++misses > afterMiss) break;
    }
    // Not part of the target: what the admin's host list costs at this fleet size (after the measurements).
    if (agents > 0 && deadline - CLEANUP_RESERVE_MS - performance.now() > 20_000) {
      const t = performance.now();
      const list = await Promise.race([api.call<unknown[]>("GET", "/v1/hosts"), sleep(15_000).then(() => undefined)]);
      const took = performance.now() - t;
      notes.push(list ? `\`GET /v1/hosts\` with ${int(list.length)} hosts answered in ${fixed(took, 0)} ms (after the measurements).` : `\`GET /v1/hosts\` with ${int(agents)} hosts did not answer within 15 s.`);
      progress(notes.at(-1)!);
    }
  } catch (err) {
    failed = true;
    progress(`ERROR: ${(err as Error).stack ?? err}`);
    progress(`control plane log tail:\n${platform.tail("control-plane.log", 15)}`);
    throw err;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await cleanup();
    process.removeListener("exit", onExit);
  }

  // A size holds when its last measurement passed (a miss followed by a passing retry holds); the result is the
  // largest size before the first one that does not hold.
  let held = 0;
  const sizes = [...new Set(results.map((r) => r.agents))];
  for (const n of sizes) {
    const lastOf = results.filter((r) => r.agents === n).at(-1)!;
    if (!lastOf.pass) break;
    held = n;
  }
  const durationS = (performance.now() - t0) / 1000;
  const { text, markdown } = report(results, held, notes, { startedAt, durationS, rate, dwellMs, nWorkers, nReplicas, hbInterval, getJobSpec, logLevel, fdLimit });
  progress(`done in ${fixed(durationS, 0)} s`);
  return { markdown, text, steps: results, held, startedAt: startedAt.toISOString(), durationS };
}

/** The consumers' debug events as rates (pull requests issued, idle heartbeats received), then anything else (problems). */
function natsTraffic(r: StepResult): string {
  const n = r.natsNotices;
  const per = (k: string) => fixed((n[k] ?? 0) / r.dwellS, 0);
  const other = Object.entries(n).filter(([k]) => !["next", "heartbeat", "discard", "debug"].includes(k));
  return `${per("next")} pulls/s, ${per("heartbeat")} idle heartbeats/s` + (other.length ? `; ${other.map(([k, v]) => `${k}: ${v}`).join(", ")}` : "");
}

function report(
  results: StepResult[],
  held: number,
  notes: string[],
  run: { startedAt: Date; durationS: number; rate: number; dwellMs: number; nWorkers: number; nReplicas: number; hbInterval: number; getJobSpec: boolean; logLevel: string; fdLimit: number },
): { text: string; markdown: string } {
  const pass = held >= TARGET_AGENTS;
  const verdict = pass ? "PASS" : `MISS (${int(held)} held: ${int(TARGET_AGENTS - held)} agents, ${fixed((1 - held / TARGET_AGENTS) * 100, 0)} % short of the target)`;
  const mainHeader = ["agents", "heartbeats/s answered (expected)", "heartbeat errors", "heartbeat RTT p50 / p99 ms", "deployments", "dispatch p50 / p95 / p99 / max ms", "control plane CPU % / RSS", "nats-server CPU % / RSS", "PostgreSQL CPU %: backends + background", "load generators CPU %", "other load on the machine CPU %", "result"];
  const role = (r: StepResult, name: string) => r.usage.roles[name]!;
  const mainRows = results.map((r) => [
    `${int(r.agents)}${r.attempt > 1 ? " (again)" : ""}`,
    `${fixed(r.hbPerS, 0)} (${fixed(r.hbExpectedPerS, 0)})`,
    String(r.hbErrors),
    `${ms(r.hbRttP50Ms)} / ${ms(r.hbRttP99Ms)}`,
    `${r.dispatched} (${r.received} received)`,
    `${ms(r.p50Ms)} / ${ms(r.p95Ms)} / ${ms(r.p99Ms)} / ${ms(r.maxMs)}`,
    `${fixed(role(r, "control plane").cpuPct, 0)} % / ${mb(role(r, "control plane").rssEndBytes)}`,
    `${fixed(role(r, "nats-server").cpuPct, 0)} % / ${mb(role(r, "nats-server").rssEndBytes)}`,
    `${fixed(role(r, "PostgreSQL (control plane's backends)").cpuPct, 0)} + ${fixed(role(r, "PostgreSQL background processes").cpuPct, 0)}`,
    fixed(role(r, "load generators").cpuPct + role(r, "benchmark driver").cpuPct, 0),
    `${fixed(r.usage.otherCpuPct, 0)}${r.usage.stealPct >= 0.5 ? ` (+ ${fixed(r.usage.stealPct, 0)} steal)` : ""}`,
    r.pass ? "PASS" : `MISS: ${r.why.join("; ")}`,
  ]);
  const rampHeader = ["agents", "added", "ramp s (tokens, registrations, priming, settle and catch-up)", "registrations/s", "Register RPC p50 / p99 ms", "NATS connect + consumer get + consume p99 ms", "online hosts", "POST answered p50 / p99 ms", "received before the POST answer", "load generators: loop delay p99 / max ms, RSS", "agents' JetStream consumers: pull requests, idle heartbeats, problems"];
  const rampRows = results.map((r) =>
    r.attempt > 1
      ? [`${int(r.agents)} (again)`, "—", "—", "—", "—", "—", `${int(r.online)} / ${int(r.agents)}`, `${ms(r.postP50Ms)} / ${ms(r.postP99Ms)}`, `${r.rxBeforeAnswer} of ${r.received}`, `${ms(r.workerLoopP99Ms)} / ${ms(r.workerLoopMaxMs)}, ${mb(role(r, "load generators").rssEndBytes)}`, natsTraffic(r)]
      : [
          int(r.agents),
          int(r.added),
          fixed(r.rampS, 1),
          fixed(r.registerPerS, 0),
          `${ms(r.registerP50Ms)} / ${ms(r.registerP99Ms)}`,
          ms(r.consumeP99Ms),
          `${int(r.online)} / ${int(r.agents)}`,
          `${ms(r.postP50Ms)} / ${ms(r.postP99Ms)}`,
          `${r.rxBeforeAnswer} of ${r.received}`,
          `${ms(r.workerLoopP99Ms)} / ${ms(r.workerLoopMaxMs)}, ${mb(role(r, "load generators").rssEndBytes)}`,
          natsTraffic(r),
        ],
  );
  const cpu = os.cpus();
  const machine = `Node ${process.version}, ${cpu.length} cores: ${cpu[0]?.model ?? "unknown CPU"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`;
  const summary = `Largest fleet held (p99 dispatch < ${TARGET_P99_MS} ms, no heartbeat errors): **${int(held)} agents**; target ≥ ${int(TARGET_AGENTS)}: **${verdict}**.`;
  const setup =
    `Run on ${run.startedAt.toISOString()} (${fixed(run.durationS, 0)} s) with \`node test/dist/bench/fleet.bench.js\` (${machine}). ` +
    (run.nReplicas > 1 ? `**${run.nReplicas} control-plane replicas** on this machine, one PostgreSQL and one NATS (load generator i talks to replica i mod ${run.nReplicas}, POSTs alternate; control-plane CPU and RSS are their sum). ` : "") +
    `Heartbeat interval ${run.hbInterval / 1000} s, ${run.rate} deployments/s for ${run.dwellMs / 1000} s per step, ${run.nWorkers} load generator processes (open files ${run.fdLimit}), ` +
    `agents ${run.getJobSpec ? "ack, GetJobSpec and" : "ack and"} report \`result\`; control plane LOG_LEVEL ${run.logLevel}. CPU % is of one core (200 % = the whole machine).`;
  const text = ["", "=== Slipway fleet benchmark ===", summary.replace(/\*\*/g, ""), setup.replace(/`/g, ""), "", textTable(mainHeader, mainRows), "", textTable(rampHeader, rampRows), ...notes.map((n) => `\n${n}`)].join("\n");
  const markdown = ["## Fleet: simulated agents", "", setup, "", summary, "", mdTable(mainHeader, mainRows), "", mdTable(rampHeader, rampRows), "", ...notes.flatMap((n) => [n, ""])].join("\n");
  return { text, markdown };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  runFleetBench().then(
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
