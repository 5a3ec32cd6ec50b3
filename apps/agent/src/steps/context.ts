import type { DeploySpec } from "@slipway/proto";
import { LABELS, StepFailure, type Logger } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import type { ContainerRuntime, RunningContainer } from "../docker/container-runtime.js";
import type { Ingress } from "../ingress/ingress.js";
import type { SourceRepository } from "../git/source-repository.js";
import type { JobReporter } from "../report/job-reporter.js";
import type { Environments } from "../envs/environments.js";

/** What the steps and the runner report through (JobReporter in the agent, a fake in unit tests). */
export type DeployReporter = Pick<JobReporter, "heading" | "logLine" | "step" | "progress" | "backup" | "facts" | "result" | "cancelRequested">;

/** What the steps use of the agent's environments (Environments in the agent, a fake in unit tests). */
export type DeployEnvironments = Pick<Environments, "exclusive" | "get" | "all" | "recordDeployment" | "slugFor">;

/** Everything a deployment's steps share; each step reads what it needs and fills in what it learns. */
export interface DeployContext {
  spec: DeploySpec;
  hostId: string;
  jobId: string;
  runtime: ContainerRuntime;
  ingress: Ingress;
  git: SourceRepository;
  /** The environments this agent serves: the switch records the deployment there, under the environment's lock. */
  envs: DeployEnvironments;
  report: DeployReporter;
  log: Logger;
  /** Aborted when the job must stop (cancel or agent shutdown). */
  signal: AbortSignal;
  commit?: string;
  image?: string;
  /** The image's id (sha256:…): what the deployment shipped. */
  imageDigest?: string;
  webPort?: number;
  /** Containers this deployment started; removed on failure before the switch. */
  started: RunningContainer[];
  /** Set once traffic moved to the new containers: from then on they are the environment's. */
  switched: boolean;
  /** The job ran here before and reported events: its agent died mid-deployment and JetStream redelivered it. */
  earlierAttempt?: boolean;
  /** Sends one startup probe, resolving with the HTTP status (default: GET 127.0.0.1:<port><path>); unit tests pass a fake. */
  sendProbe?: (port: number, path: string, timeoutMs: number) => Promise<number>;
  /** The host's disk janitor (DiskJanitor in the agent): holds the job's image, prunes before a build when space is short. */
  disk?: DeployDisk;
  /** Test hook (SLIPWAY_AGENT_TEST_PAUSE_BEFORE_SWITCH_MS): wait this long before switching traffic. */
  pauseBeforeSwitchMs?: number;
  /** Test hook (SLIPWAY_AGENT_TEST_PAUSE_MID_SWITCH_MS): wait this long once the new servers are ready and the old ones draining. */
  pauseMidSwitchMs?: number;
}

/** What a deployment asks of the disk janitor (disk/janitor.ts). */
export interface DeployDisk {
  hold(jobId: string, image: string): Promise<void>;
  beforeBuild(say: (line: string) => void): Promise<void>;
  buildEnded(): void;
  afterNoSpace(say: (line: string) => void): Promise<void>;
}

/** The abort reason used when a user cancels; any other reason means the agent is shutting down. */
export const CANCEL_REASON = "cancel";

/** Throws at a step boundary when the deployment was cancelled or the agent stops. */
export function checkCancelled(ctx: DeployContext): void {
  if (ctx.report.cancelRequested || (ctx.signal.aborted && ctx.signal.reason === CANCEL_REASON)) {
    throw new StepFailure("cancelled", "deployment cancelled by request", false);
  }
  if (ctx.signal.aborted) throw new StepFailure("agent_shutdown", "the agent stopped before the deployment finished", true);
}

/** The environment's slug (backend, lock, network), by its id: see Environments.slugFor. */
export function slugOf(ctx: Pick<DeployContext, "spec" | "envs">): string {
  return ctx.envs.slugFor(ctx.spec.environmentId);
}

/** Labels of the environment's Docker network: who it belongs to (by id), and for people, app and environment. */
export function networkLabels(ctx: Pick<DeployContext, "spec" | "hostId">): Record<string, string> {
  const { spec } = ctx;
  return { [LABELS.managed]: "true", [LABELS.app]: spec.app, [LABELS.environment]: spec.environment, [AGENT_LABELS.environmentId]: spec.environmentId, [LABELS.host]: ctx.hostId };
}

export function imageTag(app: string, commit: string): string {
  return `slipway/${app}:${commit}`;
}
