import http from "node:http";
import type { ProbeSpec } from "@slipway/proto";
import { StepFailure, parseStatusRanges, statusAccepted } from "@slipway/core";
import type { ContainerRuntime, RunningContainer } from "../docker/container-runtime.js";

/** The pause between two probes of one container. */
const PROBE_INTERVAL_MS = 200;

/** Sends one probe to 127.0.0.1:<port> and resolves with the status; rejects on no answer within timeoutMs. */
export type ProbeRequest = (port: number, path: string, timeoutMs: number) => Promise<number>;

const probeOnce: ProbeRequest = (port, path, timeoutMs) => {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, timeout: timeoutMs, agent: false, headers: { "user-agent": "slipway-startup-probe" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
};

/** What probing needs, without a deployment around it: a deployment's probe step and a wake both probe. */
export interface ProbeOptions {
  runtime: ContainerRuntime;
  probe: ProbeSpec;
  webPort: number;
  logLine: (line: string) => void;
  /** Throws to stop probing (cancel, shutdown); called before every probe. */
  check?: () => void;
  /** Pause between two probes of one container (default 200 ms). */
  intervalMs?: number;
  /** Sends one probe (default: an HTTP GET to the published port); unit tests pass a fake. */
  send?: ProbeRequest;
}

/**
 * Sends HTTP requests straight to each container's published port (never
 * through the ingress) until one is accepted (default any status below 500).
 * Fails with a StepFailure when a container exits (with its last log lines),
 * when the overall timeout passes or the probes run out.
 */
export async function probeContainers(containers: RunningContainer[], opts: ProbeOptions): Promise<void> {
  const ranges = parseStatusRanges(opts.probe.acceptedStatuses);
  await Promise.all(containers.map((c) => probeContainer(c, ranges, opts)));
}

async function probeContainer(c: RunningContainer, ranges: ReturnType<typeof parseStatusRanges>, opts: ProbeOptions): Promise<void> {
  const { probe: p, runtime, logLine } = opts;
  const interval = opts.intervalMs ?? PROBE_INTERVAL_MS;
  const send = opts.send ?? probeOnce;
  const deadline = Date.now() + p.startupTimeoutMs;
  const started = Date.now();
  let last = "no probe sent yet";
  for (let attempt = 1; attempt <= p.maxRetries; attempt++) {
    opts.check?.();
    const status = await runtime.inspect(c.id);
    if (!status || !status.running || status.restartCount > 0) {
      const tail = await runtime.logsTail(c.id, 30).catch(() => "");
      logLine(`container ${c.name} exited${status?.exitCode !== null && status?.exitCode !== undefined ? ` with code ${status.exitCode}` : ""}; its last output:`);
      for (const line of tail.split("\n").filter(Boolean)) logLine(`  ${line}`);
      throw new StepFailure("container_exited", `container ${c.name} exited during the startup probe${status?.exitCode != null ? ` (code ${status.exitCode})` : ""}`, false);
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      const code = await send(c.hostPort!, p.path, Math.min(p.probeTimeoutMs, remaining));
      if (statusAccepted(ranges, code)) {
        logLine(`${c.name}: GET ${p.path} answered ${code} after ${attempt} probe(s) in ${((Date.now() - started) / 1000).toFixed(2)} s`);
        return;
      }
      last = `answered ${code}, not in ${p.acceptedStatuses}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
  const tail = await runtime.logsTail(c.id, 20).catch(() => "");
  if (tail.trim()) {
    logLine(`last output of ${c.name}:`);
    for (const line of tail.split("\n").filter(Boolean)) logLine(`  ${line}`);
  }
  throw new StepFailure(
    "probe_failed",
    `startup probe failed: ${c.name} did not answer GET ${p.path} on web port ${opts.webPort} acceptably within ${p.startupTimeoutMs / 1000} s / ${p.maxRetries} probes (last: ${last})`,
    false,
  );
}
