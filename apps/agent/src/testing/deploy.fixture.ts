// A deployment wired to fakes, for the unit tests of the steps and the runner.
import type { DeploySpec } from "@slipway/proto";
import { createLogger, environmentSlug } from "@slipway/core";
import type { DeployContext } from "../steps/context.js";
import { routeTarget, webLabels } from "../envs/env-containers.js";
import type { BackendTarget } from "../ingress/ingress.js";
import { FakeContainerRuntime, FakeEnvironments, FakeIngress, FakeJobReporter, FakeSourceRepository, type FakeContainer } from "./fakes.js";

export const HOST_ID = "host-1";
/** The commit `main` points at in the fake repository. */
export const COMMIT = "0123456789abcdef0123456789abcdef01234567";
/** The image and deployment of the environment's current (previous) deployment, see withCurrentDeployment. */
export const OLD_IMAGE = "slipway/shop:fedcba9876543210fedcba9876543210fedcba98";
export const OLD_DEPLOYMENT = "dep-old";
/** The id of the environment the fake deployments deploy (shop/test). */
export const ENV_ID = "5b0e1d2c-3a4f-4e6d-9c8b-7a6f5e4d3c2b";

/** A deploy job's spec: app shop, environment test, auto build of main, one replica, no release commands. */
export function deploySpec(over: Partial<DeploySpec> = {}): DeploySpec {
  return {
    app: "shop",
    environment: "test",
    repository: "https://deploy:s3cret@git.example.test/shop.git",
    branch: "main",
    buildMode: "auto",
    currentImage: "",
    webPort: 0,
    probe: { path: "/health", acceptedStatuses: "200-399", startupTimeoutMs: 10_000, probeTimeoutMs: 1_000, maxRetries: 50 },
    releaseCommands: [],
    releaseCommandTimeoutMs: 60_000,
    replicas: 1,
    variables: { GREETING: "hi" },
    hostnames: ["shop-test.localhost"],
    deploymentId: "dep-new",
    environmentId: ENV_ID,
    sleepAfterSeconds: 0,
    gitSshKey: "",
    gitKnownHosts: "",
    image: "",
    skipRelease: false,
    preamble: [],
    imageDigest: "",
    certificates: [],
    acmeThumbprint: "",
    httpsRedirect: false,
    hstsMaxAgeSeconds: 0,
    ...over,
  };
}

export interface FakeDeployment {
  ctx: DeployContext;
  runtime: FakeContainerRuntime;
  ingress: FakeIngress;
  git: FakeSourceRepository;
  report: FakeJobReporter;
  envs: FakeEnvironments;
  /** Aborts ctx.signal: `abort.abort(CANCEL_REASON)` is a user's cancel, any other reason an agent shutdown. */
  abort: AbortController;
  slug: string;
  /** The statuses and timeouts of every probe sent, in order (the default answers 200 at once). */
  probes: Array<{ port: number; path: string; timeoutMs: number }>;
}

export interface FakeDeploymentOptions {
  spec?: Partial<DeploySpec>;
  ctx?: Partial<DeployContext>;
  /** Each probe's outcome (default: 200 at once). */
  answer?: (port: number, path: string, timeoutMs: number) => Promise<number>;
}

/** A deployment context on fresh fakes. */
export function fakeDeployment(opts: FakeDeploymentOptions = {}): FakeDeployment {
  const spec = deploySpec(opts.spec);
  const runtime = new FakeContainerRuntime();
  const ingress = new FakeIngress();
  const git = new FakeSourceRepository({ main: COMMIT });
  const report = new FakeJobReporter();
  const envs = new FakeEnvironments();
  const abort = new AbortController();
  const probes: FakeDeployment["probes"] = [];
  const answer = opts.answer ?? (async () => 200);
  const ctx: DeployContext = {
    spec,
    hostId: HOST_ID,
    jobId: "job-1",
    runtime,
    ingress,
    git,
    envs,
    report,
    log: createLogger("unit", "silent"),
    signal: abort.signal,
    started: [],
    switched: false,
    sendProbe: (port, path, timeoutMs) => {
      probes.push({ port, path, timeoutMs });
      return answer(port, path, timeoutMs);
    },
    ...opts.ctx,
  };
  return { ctx, runtime, ingress, git, report, envs, abort, slug: environmentSlug(spec.environmentId), probes };
}

/**
 * Gives the environment a current deployment, as a previous successful one left
 * it: `replicas` running web containers of OLD_IMAGE, routed by the ingress and
 * recorded in the environments. Records no calls on the fakes.
 */
export function withCurrentDeployment(d: FakeDeployment, replicas = 1): { containers: FakeContainer[]; targets: BackendTarget[] } {
  const { spec } = d.ctx;
  const labels = webLabels(HOST_ID, { app: spec.app, environment: spec.environment, environmentId: spec.environmentId, deploymentId: OLD_DEPLOYMENT });
  const containers = Array.from({ length: replicas }, () => d.runtime.addContainer({ image: OLD_IMAGE, labels }));
  const targets = containers.map((c) => routeTarget(c, 8000));
  d.runtime.images.set(OLD_IMAGE, { id: "sha256:old", exposedPorts: [8000] });
  d.ingress.route(d.slug, targets);
  d.envs.entries.set(d.slug, {
    app: spec.app,
    environment: spec.environment,
    environmentId: spec.environmentId,
    slug: d.slug,
    image: OLD_IMAGE,
    webPort: 8000,
    probe: spec.probe!,
    containerIds: containers.map((c) => c.id),
    deploymentId: OLD_DEPLOYMENT,
    hostnames: spec.hostnames,
    basicAuth: null,
    sleepAfterSeconds: 0,
    state: "running",
  });
  return { containers, targets };
}
