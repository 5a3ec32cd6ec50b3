import http from "node:http";
import { StepFailure, parseStatusRanges, statusAccepted } from "@slipway/core";
import type { RunningContainer } from "../docker/container-runtime.js";
import type { DeployContext } from "./context.js";
import { checkCancelled } from "./context.js";

/** The pause between two probes of one container. */
const PROBE_INTERVAL_MS = 200;

function probeOnce(port: number, path: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, timeout: timeoutMs, agent: false, headers: { "user-agent": "slipway-startup-probe" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

/**
 * Sends HTTP requests to each new container's web port until one is accepted
 * (default any status below 500). Fails when the container exits (with its
 * last log lines), when the overall timeout passes or the probes run out.
 */
export async function probeStep(ctx: DeployContext): Promise<void> {
  const p = ctx.spec.probe!;
  const ranges = parseStatusRanges(p.acceptedStatuses);
  await Promise.all(ctx.started.map((c) => probeContainer(ctx, c, ranges, p)));
}

async function probeContainer(ctx: DeployContext, c: RunningContainer, ranges: ReturnType<typeof parseStatusRanges>, p: NonNullable<DeployContext["spec"]["probe"]>): Promise<void> {
  const { report } = ctx;
  const deadline = Date.now() + p.startupTimeoutMs;
  const started = Date.now();
  let last = "no probe sent yet";
  for (let attempt = 1; attempt <= p.maxRetries; attempt++) {
    checkCancelled(ctx);
    const status = await ctx.runtime.inspect(c.id);
    if (!status || !status.running || status.restartCount > 0) {
      const tail = await ctx.runtime.logsTail(c.id, 30).catch(() => "");
      report.logLine(`container ${c.name} exited${status?.exitCode !== null && status?.exitCode !== undefined ? ` with code ${status.exitCode}` : ""}; its last output:`);
      for (const line of tail.split("\n").filter(Boolean)) report.logLine(`  ${line}`);
      throw new StepFailure("container_exited", `container ${c.name} exited during the startup probe${status?.exitCode != null ? ` (code ${status.exitCode})` : ""}`, false);
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      const code = await probeOnce(c.hostPort!, p.path, Math.min(p.probeTimeoutMs, remaining));
      if (statusAccepted(ranges, code)) {
        report.logLine(`${c.name}: GET ${p.path} answered ${code} after ${attempt} probe(s) in ${((Date.now() - started) / 1000).toFixed(2)} s`);
        return;
      }
      last = `answered ${code}, not in ${p.acceptedStatuses}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, Math.min(PROBE_INTERVAL_MS, Math.max(0, deadline - Date.now()))));
  }
  const tail = await ctx.runtime.logsTail(c.id, 20).catch(() => "");
  if (tail.trim()) {
    report.logLine(`last output of ${c.name}:`);
    for (const line of tail.split("\n").filter(Boolean)) report.logLine(`  ${line}`);
  }
  throw new StepFailure(
    "probe_failed",
    `startup probe failed: ${c.name} did not answer GET ${p.path} on web port ${ctx.webPort} acceptably within ${p.startupTimeoutMs / 1000} s / ${p.maxRetries} probes (last: ${last})`,
    false,
  );
}
