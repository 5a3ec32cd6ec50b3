/**
 * The HAProxy master's worker generations, as the adapter needs them:
 * reloads that are confirmed by the master's reload counter and sent again
 * when the master did not act on one, and the workers a reload replaced,
 * followed until none of them can take a request that the current
 * configuration routes differently.
 *
 * Why a reload can be lost: after every start and every reload the master
 * re-executes itself once more (into "wait mode", to free the memory of the
 * configuration) and binds a new master socket. Until it has, the socket path
 * belongs to the previous image, whose listener dies with it: a connection
 * there is refused, or accepted into the backlog and then reset, and a
 * SIGUSR2 sent meanwhile is dropped. The worker already answers on the admin
 * socket during that time.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { StepFailure } from "@slipway/core";
import type { BackendRecord, IngressStructure } from "./haproxy.config.js";
import type { HaproxyRuntime, ProcList } from "./haproxy-runtime.js";

export interface WorkerGenerationsOptions {
  runtime: HaproxyRuntime;
  log: Logger;
  /** How long a reload may take, re-sent reloads included (the adapter's readyTimeoutMs). */
  timeoutMs: number;
  /** The last lines of HAProxy's own output, for error messages. */
  logTail: () => Promise<string>;
}

/** A reload the master has acted on. */
export interface ReloadResult {
  newWorker: number;
  /** Reload commands sent: more than 1 when the master did not act on one. */
  attempts: number;
}

/** Workers a backend's switch waited for, and how long. */
export interface ServedResult {
  workers: number[];
  waitedMs: number;
  /** False when some of them could still take a request at the deadline. */
  complete: boolean;
}

const MAX_RELOAD_ATTEMPTS = 5;
const POLL_MS = 25;

export class WorkerGenerations {
  /**
   * Old workers by pid: the structure they route by (unknown for workers this
   * adapter did not replace, e.g. before an agent restart) and since when
   * they are known to be stopping.
   */
  private readonly old = new Map<number, { routes?: IngressStructure; stoppingSince?: number }>();

  constructor(private readonly opts: WorkerGenerationsOptions) {}

  /**
   * Asks the master to reload and resolves once it has, with the new worker
   * answering on the admin socket. A reload the master did not act on (its
   * counter is unchanged once its CLI answers again) is sent again; one it
   * could not load (the old worker stays current, `failed` counts it) is
   * StepFailure("ingress_reload_failed"). Not safe to call concurrently.
   */
  async reload(oldWorker: number): Promise<ReloadResult> {
    const { runtime, log } = this.opts;
    const deadline = Date.now() + this.opts.timeoutMs;
    const before = await this.masterAnswer(deadline);
    let attempts = 0;
    for (;;) {
      attempts++;
      await runtime.reload().catch((err: unknown) => log.warn({ err: errorMessage(err), attempts }, "reload command failed; asking the master whether it acted on it"));
      // Only a master that has finished re-executing answers, so this answer
      // comes from the master that took the command, or from the one that lost it.
      const after = await this.masterAnswer(deadline);
      if (before.reloads === null || after.reloads === null || after.reloads > before.reloads) {
        if (after.failedReloads && after.workers.includes(oldWorker)) {
          throw new StepFailure("ingress_reload_failed", `haproxy could not load the new configuration; log: ${await this.opts.logTail()}`, true);
        }
        break;
      }
      if (attempts >= MAX_RELOAD_ATTEMPTS || Date.now() >= deadline) {
        throw new StepFailure("ingress_unavailable", `the haproxy master did not act on ${attempts} reload commands; log: ${await this.opts.logTail()}`, true);
      }
      log.warn({ attempts, reloads: after.reloads }, "the haproxy master did not act on the reload; sending it again");
    }
    const newWorker = await poll("a new haproxy worker after reload", deadline, this.opts.logTail, async () => {
      const pid = await runtime.workerPid();
      return pid !== oldWorker && (await runtime.showProc()).workers.includes(pid) ? pid : undefined;
    });
    return { newWorker, attempts };
  }

  /** Records a worker that a reload replaced and the structure it still routes by. */
  replaced(pid: number, routes: IngressStructure): void {
    this.old.set(pid, { routes: structuredClone(routes) });
  }

  /**
   * Resolves once no old worker can take a request for `backend` that it
   * would route differently from `current` (other host names or auth, or no
   * such backend). An old worker can take one while it listens, and
   * afterwards on a client connection it keeps: the config keeps idle
   * keep-alive connections open through a reload (`close-spread-time
   * infinite`) and closes each after its next response. So the condition per
   * worker is: exited; or stopping and without a client connection; or
   * stopping for longer than a connection may wait idle for its next request
   * (`idleLimitMs`), after which each connection it still holds is in the
   * middle of a request (answered with `Connection: close`) or a tunnel.
   * Gives up (complete: false) after idleLimitMs plus the reload timeout.
   * Read-only: safe beside other calls.
   */
  async untilServed(backend: string, current: BackendRecord, idleLimitMs: number | undefined): Promise<ServedResult> {
    const { runtime } = this.opts;
    const started = Date.now();
    const deadline = started + (idleLimitMs ?? 0) + this.opts.timeoutMs;
    const waitedFor = new Set<number>();
    for (;;) {
      const procs = await this.masterAnswer(deadline);
      for (const pid of this.old.keys()) if (!procs.oldWorkers.includes(pid)) this.old.delete(pid);
      const blocking: number[] = [];
      for (const pid of procs.oldWorkers) {
        let rec = this.old.get(pid);
        if (!rec) this.old.set(pid, (rec = {}));
        if (rec.routes && sameRouting(rec.routes.backends[backend], current)) continue;
        // An exiting worker answers nothing for a moment: undecided until the next `show proc`.
        const info = await runtime.workerInfo(pid).catch(() => null);
        if (info === undefined) continue; // exited since `show proc`
        if (info === null) {
          blocking.push(pid);
          continue;
        }
        if (info["Stopping"] === "1") {
          rec.stoppingSince ??= Date.now();
          if (Number(info["CurrConns"]) === 0) continue;
          if (idleLimitMs !== undefined && Date.now() - rec.stoppingSince >= idleLimitMs) continue;
        }
        blocking.push(pid);
      }
      if (blocking.length === 0) return { workers: [...waitedFor], waitedMs: Date.now() - started, complete: true };
      blocking.forEach((pid) => waitedFor.add(pid));
      if (Date.now() >= deadline) return { workers: blocking, waitedMs: Date.now() - started, complete: false };
      await sleep(POLL_MS);
    }
  }

  /** `show proc`, retried until the master answers (its CLI is gone while it re-executes). */
  private masterAnswer(deadline: number): Promise<ProcList> {
    return poll("the haproxy master to answer", deadline, this.opts.logTail, () => this.opts.runtime.showProc());
  }
}

/** Same host names and basic auth: a worker with `a` routes the backend's requests as one with `b` does. */
export function sameRouting(a: BackendRecord | undefined, b: BackendRecord): boolean {
  if (!a) return false;
  return a.hostnames.join(" ") === b.hostnames.join(" ") && (a.basicAuth?.digest ?? null) === (b.basicAuth?.digest ?? null);
}

const TIME_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * The longest a client connection can stay open in a worker of this config
 * while waiting for its next request: the largest `timeout http-keep-alive`
 * or `timeout http-request` (HAProxy uses `timeout client` when neither is
 * set). Undefined when the config sets none of them (no bound).
 */
export function clientIdleLimitMs(config: string): number | undefined {
  const timeouts = (name: string) =>
    [...config.matchAll(new RegExp(`^\\s*timeout\\s+${name}\\s+(\\d+)(us|ms|s|m|h|d)?\\s*$`, "gm"))].map((m) => Number(m[1]) * TIME_UNITS_MS[m[2] ?? "ms"]!);
  const idle = [...timeouts("http-keep-alive"), ...timeouts("http-request")];
  const limits = idle.length > 0 ? idle : timeouts("client");
  return limits.length > 0 ? Math.max(...limits) : undefined;
}

/**
 * Calls `probe` until it answers (not undefined) or `deadline` passes (then
 * StepFailure "ingress_unavailable" with the last error and HAProxy's log);
 * `aborted` names a reason to give up at once (the master exited).
 */
export async function poll<T>(
  what: string,
  deadline: number,
  logTail: () => Promise<string>,
  probe: () => Promise<T | undefined>,
  opts: { aborted?: () => string | undefined; intervalMs?: number } = {},
): Promise<T> {
  let last: unknown;
  for (;;) {
    const reason = opts.aborted?.();
    if (reason) throw new StepFailure("ingress_start_failed", `${reason}; log: ${await logTail()}`, true);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const cause = last ? ` (last error: ${errorMessage(last)})` : "";
      throw new StepFailure("ingress_unavailable", `timed out waiting for ${what}${cause}; log: ${await logTail()}`, true);
    }
    await sleep(opts.intervalMs ?? POLL_MS);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
