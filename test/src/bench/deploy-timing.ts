import type { Api } from "../support/platform.js";

/** The deployment steps up to the traffic switch, in order. */
export const STEPS = ["source", "build", "release", "start", "probe", "switch"] as const;

export interface DeployRun {
  id: string;
  body: unknown;
  commit: string;
  /** POST call → 202 answer, ms */
  postMs: number;
  /** POST call → the agent's first event (deployment startedAt), ms */
  dispatchMs: number;
  /** POST call → switch step finishedAt, ms ("to switch") */
  toSwitchMs: number;
  /** POST call → the 20 ms poll saw `succeeded`, ms */
  observedMs: number;
  /** step name → finishedAt − startedAt, ms (0 for a step never started) */
  stepMs: Record<string, number>;
  stepStates: Record<string, string>;
  /** toSwitch − dispatch − sum of the step durations up to switch: time between steps, ms */
  betweenStepsMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = ["succeeded", "failed", "cancelled"];

/**
 * Requests a deployment and polls it every `pollMs` until it ends; times are
 * taken against the wall clock (the agent's step timestamps come from the
 * same machine's clock).
 */
export async function timedDeploy(api: Api, app: string, env: string, body: unknown, opts: { pollMs?: number; timeoutMs?: number } = {}): Promise<DeployRun> {
  const pollMs = opts.pollMs ?? 20;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const tPost = Date.now();
  const created = await api.call("POST", `/v1/apps/${app}/environments/${env}/deployments`, body);
  const postMs = Date.now() - tPost;
  let d: any;
  let observedMs: number;
  for (;;) {
    d = await api.call("GET", `/v1/deployments/${created.id}`);
    if (TERMINAL.includes(d.state)) {
      observedMs = Date.now() - tPost;
      break;
    }
    if (Date.now() - tPost > timeoutMs) throw new Error(`deployment ${created.id} did not end within ${timeoutMs} ms (state ${d.state})`);
    await sleep(pollMs);
  }
  if (d.state !== "succeeded") {
    const log = await api.log(d.id).catch(() => "(no log)");
    throw new Error(`deployment ${d.id} ${d.state}: ${JSON.stringify(d.error)}\n${String(log).split("\n").slice(-30).join("\n")}`);
  }
  const stepMs: Record<string, number> = {};
  const stepStates: Record<string, string> = {};
  for (const s of d.steps as { name: string; state: string; startedAt: string | null; finishedAt: string | null }[]) {
    stepStates[s.name] = s.state;
    stepMs[s.name] = s.startedAt && s.finishedAt ? Date.parse(s.finishedAt) - Date.parse(s.startedAt) : 0;
  }
  const sw = (d.steps as { name: string; finishedAt: string | null }[]).find((s) => s.name === "switch");
  if (!sw?.finishedAt) throw new Error(`deployment ${d.id} succeeded without a finished switch step: ${JSON.stringify(d.steps)}`);
  const toSwitchMs = Date.parse(sw.finishedAt) - tPost;
  const dispatchMs = d.startedAt ? Date.parse(d.startedAt) - tPost : NaN;
  const stepSum = STEPS.reduce((a, n) => a + (stepMs[n] ?? 0), 0);
  return {
    id: d.id,
    body,
    commit: d.commit,
    postMs,
    dispatchMs,
    toSwitchMs,
    observedMs,
    stepMs,
    stepStates,
    betweenStepsMs: toSwitchMs - dispatchMs - stepSum,
  };
}
