import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { EnvironmentSpec } from "@slipway/proto";
import { StepFailure, toFailure, type Logger } from "@slipway/core";
import { authOf, type Environments } from "../envs/environments.js";
import type { JobReporter } from "../report/job-reporter.js";
import { tlsSpecOf } from "../envs/env-certificates.js";

/** What an environment job needs. */
export interface EnvironmentJobContext {
  spec: EnvironmentSpec;
  envs: Environments;
  report: JobReporter;
  log: Logger;
}

/**
 * Runs one environment job (stop, start, routes, remove, handoff) as a single step
 * named after the action, under the heading `===== <action> =====`, and
 * reports the result. Never throws.
 */
export async function runEnvironmentJob(ctx: EnvironmentJobContext): Promise<"succeeded" | "failed"> {
  const { spec, envs, report } = ctx;
  const action = spec.action;
  const logLine = (line: string) => report.logLine(line);
  const ref = { app: spec.app, environment: spec.environment, environmentId: spec.environmentId };
  report.heading(action);
  report.step(action, "running");
  const started = Date.now();
  try {
    switch (action) {
      case "stop":
        await envs.stop(ref, logLine);
        break;
      case "start":
        await envs.start(ref, logLine, tlsSpecOf(spec));
        break;
      case "routes":
        await envs.routes(
          { ...ref, hostnames: spec.hostnames, basicAuth: authOf(spec.basicAuth), sleepAfterSeconds: spec.sleepAfterSeconds, tls: tlsSpecOf(spec) },
          logLine,
        );
        break;
      case "remove":
        await envs.remove(ref, logLine, spec.hostnames); // also removes the certificates only this environment used
        break;
      case "handoff":
        await envs.handoff(ref, await resolveAddress(spec.forwardTo), spec.hostnames, logLine, tlsSpecOf(spec));
        break;
      default:
        throw new StepFailure("unknown_action", `unknown environment action '${action}'`, false);
    }
    report.step(action, "succeeded");
    report.result("succeeded", {});
    ctx.log.info({ action, ms: Date.now() - started }, "environment job succeeded");
    return "succeeded";
  } catch (err) {
    const f = toFailure(err);
    report.step(action, "failed");
    report.logLine(`${action} failed: ${f.message}`);
    report.result("failed", { error: err });
    ctx.log.warn({ action, failure: f }, "environment job failed");
    return "failed";
  }
}

/** host:port → an IP and port (the ingress takes addresses, not names). */
async function resolveAddress(hostPort: string): Promise<{ host: string; port: number }> {
  const m = /^(.+):(\d{1,5})$/.exec(hostPort);
  if (!m) throw new StepFailure("invalid_forward", `cannot forward to '${hostPort}': expected host:port`, false);
  const host = m[1]!.replace(/^\[|\]$/g, "");
  const ip = isIP(host) ? host : (await lookup(host, { family: 4 })).address;
  return { host: ip, port: Number(m[2]) };
}
