import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { DataSpec } from "@slipway/proto";
import { LABELS, StepFailure } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import { runDataJob } from "../data/data.runner.js";
import { CANCEL_REASON } from "../steps/context.js";
import { runDeployment } from "./deploy.runner.js";
import { COMMIT, OLD_IMAGE, fakeDeployment, withCurrentDeployment, type FakeDeployment, type FakeDeploymentOptions } from "../testing/deploy.fixture.js";

// The content copy is the data runner's (tested against real servers elsewhere).
vi.mock("../data/data.runner.js", () => ({ runDataJob: vi.fn() }));
const dataJob = vi.mocked(runDataJob);

const NEW_IMAGE = `slipway/shop:${COMMIT}`;
const copy: DataSpec = { action: "copy", app: "shop", environment: "test", database: true, media: false, sourceDatabaseUrl: "postgres://a", targetDatabaseUrl: "postgres://b" };

// Fake time: the probe's pauses and timeouts take no real time.
beforeEach(() => {
  vi.useFakeTimers();
  dataJob.mockReset();
  dataJob.mockResolvedValue("succeeded");
});
afterEach(() => {
  vi.useRealTimers();
});

/** Runs the deployment to its end under fake time. */
async function deploy(d: FakeDeployment): Promise<string> {
  const outcome = runDeployment(d.ctx);
  await vi.runAllTimersAsync();
  return outcome;
}

/** An environment serving its previous deployment, about to deploy `main` with one release command. */
function serving(opts: FakeDeploymentOptions = {}) {
  const d = fakeDeployment({ ...opts, spec: { releaseCommands: [{ label: "migrate", command: "migrate" }], ...opts.spec } });
  const previous = withCurrentDeployment(d, 2);
  return { d, previous };
}

function newContainers(d: FakeDeployment) {
  return d.runtime.withLabels({ [LABELS.deployment]: "dep-new", [LABELS.role]: "web" });
}

/** What a user sees after a failure before the switch: the old version keeps serving, nothing new is left running. */
function expectPreviousStillServes(d: FakeDeployment, previous: ReturnType<typeof withCurrentDeployment>) {
  expect(d.ingress.routed(d.slug)).toEqual(previous.targets);
  for (const c of previous.containers) expect(d.runtime.containers.get(c.id)?.running).toBe(true);
  expect(newContainers(d)).toEqual([]);
  expect(d.envs.entries.get(d.slug)!.deploymentId).toBe("dep-old");
  expect(d.report.lines()).toContain("the previous version keeps serving; nothing was switched");
}

describe("a deployment", () => {
  it("succeeds and serves the new version when its certificate cannot be installed: the log says why", async () => {
    const { d } = serving({ spec: { certificates: [{ hostnames: ["shop-test.localhost"], certPem: "not a certificate", keyPem: "" }], acmeThumbprint: "k".repeat(43) } });
    expect(await deploy(d)).toBe("succeeded");
    expect(d.ingress.routed(d.slug).map((t) => t.id)).toEqual(newContainers(d).map((c) => c.id));
    expect(d.ingress.acmeThumbprint).toBe("k".repeat(43));
    expect(d.report.lines()).toContain(
      "certificate for shop-test.localhost not installed: the certificate is not PEM (no BEGIN CERTIFICATE block); the site stays on HTTP and the previous certificate, if any",
    );
  });

  it("runs source → build → release → start → probe → switch → cleanup, and reports success with commit and image", async () => {
    const { d, previous } = serving();
    expect(await deploy(d)).toBe("succeeded");
    expect(d.report.steps()).toEqual([
      "source:running", "source:succeeded",
      "build:running", "build:succeeded",
      "release:running", "release:succeeded",
      "start:running", "start:succeeded",
      "probe:running", "probe:succeeded",
      "switch:running", "switch:succeeded",
      "cleanup:running", "cleanup:succeeded",
    ]);
    // The image's id is what shipped (the fake runtime's ids are "sha256:<tag>").
    const digest = `sha256:${NEW_IMAGE}`;
    expect(d.report.events.filter((e) => e.kind === "facts")).toEqual([{ kind: "facts", commit: COMMIT, image: NEW_IMAGE, imageDigest: digest }]);
    expect(d.report.results()).toEqual([{ kind: "result", state: "succeeded", commit: COMMIT, image: NEW_IMAGE, imageDigest: digest }]);
    // Served by the new containers only; the old ones are gone.
    const fresh = newContainers(d);
    expect(fresh).toHaveLength(1);
    expect(d.ingress.routed(d.slug).map((t) => t.id)).toEqual(fresh.map((c) => c.id));
    for (const c of previous.containers) expect(d.runtime.containers.has(c.id)).toBe(false);
    expect(d.envs.entries.get(d.slug)).toMatchObject({ deploymentId: "dep-new", image: NEW_IMAGE });
    // Traffic moved in one switch, after the probe.
    expect(d.ingress.callsOf("switchTraffic")).toHaveLength(1);
  });

  it("marks steps with nothing to do as skipped: reuse never builds, no release commands, no content copy", async () => {
    const d = fakeDeployment({ spec: { buildMode: "reuse", currentImage: OLD_IMAGE } });
    withCurrentDeployment(d);
    expect(await deploy(d)).toBe("succeeded");
    expect(d.report.steps()).toEqual(expect.arrayContaining(["build:skipped", "release:skipped"]));
    expect(d.report.steps().some((s) => s.startsWith("content:"))).toBe(false);
    expect(d.git.calls).toEqual([]);
    expect(d.runtime.builds).toEqual([]);
    expect(d.report.results()[0]).toMatchObject({ state: "succeeded", image: OLD_IMAGE });
  });

  it("deploys a given image (rollback): no source, no build, release commands skipped when asked, the preamble first, the digest reported", async () => {
    const { d } = serving({ spec: { buildMode: "image", image: OLD_IMAGE, skipRelease: true, preamble: ["rolling back", "the database is NOT rolled back"] } });
    expect(await deploy(d)).toBe("succeeded");
    expect(d.report.lines().slice(0, 2)).toEqual(["rolling back", "the database is NOT rolled back"]);
    expect(d.report.steps()).toEqual(expect.arrayContaining(["source:succeeded", "build:skipped", "release:skipped"]));
    expect(d.report.lines()).toContain("the release commands are not run (migrate): a rollback runs them only when asked (\"runReleaseCommands\": true)");
    expect(d.git.calls).toEqual([]);
    expect(d.runtime.builds).toEqual([]);
    expect(d.runtime.callsOf("runOneOff")).toEqual([]);
    expect(d.report.results()[0]).toMatchObject({ state: "succeeded", image: OLD_IMAGE, imageDigest: "sha256:old" });
  });

  it("refuses a given image rebuilt since it was shipped (another id under the same tag), and the old version keeps serving", async () => {
    const { d, previous } = serving({ spec: { buildMode: "image", image: OLD_IMAGE, imageDigest: "sha256:shipped-then" } });
    expect(await deploy(d)).toBe("failed");
    expect(d.report.results()[0]).toMatchObject({ state: "failed", failure: expect.objectContaining({ type: "image_changed", retryable: false }) });
    expectPreviousStillServes(d, previous);
  });

  it("a given image (promote) runs the release commands as usual", async () => {
    const { d } = serving({ spec: { buildMode: "image", image: OLD_IMAGE } });
    expect(await deploy(d)).toBe("succeeded");
    expect(d.report.steps()).toEqual(expect.arrayContaining(["build:skipped", "release:succeeded"]));
    expect(d.runtime.builds).toEqual([]);
  });

  it("fails at the source step when the given image is no longer on the host, and the old version keeps serving", async () => {
    const { d, previous } = serving({ spec: { buildMode: "image", image: "slipway/shop:0000000000000000000000000000000000000000" } });
    expect(await deploy(d)).toBe("failed");
    expect(d.report.results()[0]).toMatchObject({ state: "failed", failure: expect.objectContaining({ type: "image_not_on_host", retryable: false }) });
    expect(d.report.results()[0]!.failure!.message).toMatch(/is no longer on this host/);
    expectPreviousStillServes(d, previous);
  });

  it("runs the content copy between build and release when asked", async () => {
    const { d } = serving({ spec: { content: copy } });
    expect(await deploy(d)).toBe("succeeded");
    const order = d.report.steps().filter((s) => s.endsWith(":running"));
    expect(order.slice(0, 4)).toEqual(["source:running", "build:running", "content:running", "release:running"]);
    expect(dataJob).toHaveBeenCalledTimes(1);
  });
});

type Setup = (d: FakeDeployment) => void;
const failures: Array<[step: string, setup: Setup, failure: { type: string; retryable: boolean }]> = [
  ["source", (d) => d.git.fail("sync", new StepFailure("git_fetch_failed", "could not resolve host", true)), { type: "git_fetch_failed", retryable: true }],
  ["build", (d) => d.runtime.fail("buildImage", new StepFailure("build_failed", "RUN pip install: exit 1", false)), { type: "build_failed", retryable: false }],
  [
    "content",
    (d) => {
      d.ctx.spec.content = copy;
      dataJob.mockImplementation(async (_s, { report }) => {
        report.result("failed", { error: new StepFailure("database_copy_failed", "pg_dump: connection refused", true) });
        return "failed";
      });
    },
    { type: "database_copy_failed", retryable: true },
  ],
  ["release", (d) => void (d.runtime.oneOffScripts = [{ exitCode: 2 }]), { type: "release_command_failed", retryable: false }],
  [
    "start",
    (d) => {
      d.ctx.spec.replicas = 3;
      d.runtime.fail("start", new StepFailure("container_start_failed", "no space left on device", true), { after: 2 });
    },
    { type: "container_start_failed", retryable: true },
  ],
  [
    "probe",
    (d) => {
      d.ctx.spec.replicas = 2;
      d.runtime.on("inspect", (id) => {
        if (newContainers(d)[1]?.id === id) d.runtime.exit(id as string, 1, ["KeyError: 'DATABASE_URL'"]);
      });
    },
    { type: "container_exited", retryable: false },
  ],
  ["switch", (d) => d.ingress.fail("switchTraffic", new Error("admin socket: connection refused")), { type: "internal", retryable: true }],
];

describe("a failure before the switch", () => {
  it.each(failures)("at %s leaves the previous containers routed, removes the new ones and reports the failure", async (step, setup, failure) => {
    const { d, previous } = serving();
    setup(d);
    expect(await deploy(d)).toBe("failed");
    expectPreviousStillServes(d, previous);
    const steps = d.report.steps();
    expect(steps.at(-1)).toBe(`${step}:failed`);
    expect(steps.filter((s) => s.endsWith(":failed"))).toEqual([`${step}:failed`]);
    expect(d.report.results()).toEqual([expect.objectContaining({ state: "failed", failure: expect.objectContaining(failure) })]);
    if (step !== "switch") expect(d.ingress.callsOf("switchTraffic")).toEqual([]);
  });

  it("removes every new container when the probe fails, also those that answered", async () => {
    const { d, previous } = serving({ spec: { replicas: 3 }, answer: async (port) => (port === newContainers(d)[2]!.hostPort ? 503 : 200) });
    d.ctx.spec.probe = { ...d.ctx.spec.probe!, maxRetries: 3 };
    expect(await deploy(d)).toBe("failed");
    expect(d.runtime.removed.filter((r) => !previous.containers.some((c) => c.id === r.id))).toHaveLength(3);
    expectPreviousStillServes(d, previous);
    expect(d.report.results()[0]!.failure).toMatchObject({ type: "probe_failed" });
  });
});

describe("after the switch", () => {
  it("a failing cleanup does not fail the deployment: it warns and leaves the old containers for the next one", async () => {
    const { d, previous } = serving();
    d.runtime.fail("stopAndRemove", new StepFailure("docker_unavailable", "docker went away", true), { times: 2 });
    expect(await deploy(d)).toBe("succeeded");
    expect(d.report.steps().slice(-2)).toEqual(["cleanup:running", "cleanup:failed"]);
    expect(d.report.lines()).toContainEqual(expect.stringMatching(/^warning: cleanup of old containers failed \(docker went away\)/));
    expect(d.ingress.routed(d.slug).map((t) => t.id)).toEqual(newContainers(d).map((c) => c.id));
    expect(previous.containers.some((c) => d.runtime.containers.has(c.id))).toBe(true);
    expect(d.report.results()).toEqual([expect.objectContaining({ state: "succeeded" })]);
  });

  it("a failure once traffic moved keeps the new containers serving", async () => {
    const { d } = serving();
    d.envs.fail("recordDeployment", new Error("EROFS: read-only file system"));
    expect(await deploy(d)).toBe("failed");
    const fresh = newContainers(d);
    expect(fresh).toHaveLength(1);
    expect(d.ingress.routed(d.slug).map((t) => t.id)).toEqual([fresh[0]!.id]);
    expect(d.report.lines()).toContain("deployment failed after the switch: EROFS: read-only file system");
  });

  it("a cancel that arrives once traffic moved does not undo the deployment", async () => {
    const { d } = serving();
    d.ingress.on("switchTraffic", () => {
      d.report.cancelRequested = true;
    });
    expect(await deploy(d)).toBe("succeeded");
    expect(newContainers(d)).toHaveLength(1);
  });
});

/** A cancel requested while `step` runs (the hook is one of that step's calls). */
const cancels: Array<[during: string, next: string, hook: (d: FakeDeployment, cancel: () => void) => void]> = [
  ["source", "build", (d, cancel) => d.git.on("resolve", cancel)],
  ["build", "release", (d, cancel) => d.runtime.on("buildImage", cancel)],
  ["release", "start", (d, cancel) => d.runtime.on("runOneOff", cancel)],
  ["start", "probe", (d, cancel) => d.runtime.on("start", cancel)],
  ["probe", "switch", (d, cancel) => d.runtime.on("inspect", cancel)],
];

describe("a cancel between steps", () => {
  it.each(cancels)("requested during %s stops before %s, removes the new containers and reports cancelled", async (during, next, hook) => {
    const { d, previous } = serving();
    hook(d, () => {
      d.report.cancelRequested = true;
    });
    expect(await deploy(d)).toBe("cancelled");
    expect(d.report.steps()).not.toContain(`${next}:running`);
    expect(d.report.steps()).toContain(`${during}:running`);
    expect(d.report.results()).toEqual([expect.objectContaining({ state: "cancelled", failure: expect.objectContaining({ type: "cancelled", retryable: false }) })]);
    expectPreviousStillServes(d, previous);
    expect(d.report.lines()).toContainEqual(expect.stringMatching(/^deployment cancelled: /));
  });

  it("through the job's signal: the cancel reason cancels, any other reason is the agent stopping (retryable)", async () => {
    const cancelled = serving();
    cancelled.d.runtime.on("buildImage", () => cancelled.d.abort.abort(CANCEL_REASON));
    expect(await deploy(cancelled.d)).toBe("cancelled");
    expect(cancelled.d.report.steps()).not.toContain("release:running");
    expectPreviousStillServes(cancelled.d, cancelled.previous);

    const stopping = serving();
    stopping.d.runtime.on("buildImage", () => stopping.d.abort.abort(new Error("agent stopping")));
    expect(await deploy(stopping.d)).toBe("failed");
    expect(stopping.d.report.results()[0]!.failure).toMatchObject({ type: "agent_shutdown", retryable: true });
    expect(stopping.d.report.steps()).not.toContain("release:running");
    expectPreviousStillServes(stopping.d, stopping.previous);
  });
});

describe("a redelivered deployment", () => {
  it("only finishes an earlier attempt that had switched: no rebuild, no second switch; the replaced containers are removed", async () => {
    const { d, previous } = serving({ ctx: { earlierAttempt: true } });
    // The earlier attempt had started, switched to and recorded one container before the agent died.
    const entry = d.envs.entries.get(d.slug)!;
    const switchedTo = d.runtime.addContainer({ labels: { ...d.runtime.containers.get(previous.containers[0]!.id)!.labels, [LABELS.deployment]: "dep-new" }, image: NEW_IMAGE });
    d.envs.entries.set(d.slug, { ...entry, deploymentId: "dep-new", image: NEW_IMAGE, containerIds: [switchedTo.id] });
    expect(await deploy(d)).toBe("succeeded");
    expect(d.git.calls).toEqual([]);
    expect(d.ingress.callsOf("switchTraffic")).toEqual([]);
    expect([...d.runtime.containers.keys()]).toEqual([switchedTo.id]);
    expect(d.report.results()).toEqual([{ kind: "result", state: "succeeded", commit: COMMIT, image: NEW_IMAGE }]);
  });

  it("otherwise clears what the earlier attempt left and runs again from the start", async () => {
    const { d } = serving({ ctx: { earlierAttempt: true } });
    const left = d.runtime.addContainer({ labels: { ...newLabelsOf(d), [LABELS.role]: "release" } });
    expect(await deploy(d)).toBe("succeeded");
    expect(d.runtime.containers.has(left.id)).toBe(false);
    expect(d.report.steps()[0]).toBe("source:running");
    expect(d.report.lines()[0]).toMatch(/the agent stopped during an earlier attempt of this deployment/);
  });
});

function newLabelsOf(d: FakeDeployment): Record<string, string> {
  return { [LABELS.host]: d.ctx.hostId, [LABELS.app]: "shop", [LABELS.environment]: "test", [AGENT_LABELS.environmentId]: d.ctx.spec.environmentId, [LABELS.deployment]: "dep-new" };
}
