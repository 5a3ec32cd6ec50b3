import { describe, expect, it } from "vitest";
import { LABELS, environmentNetwork, environmentSlug } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import { CANCEL_REASON } from "./context.js";
import { releaseStep } from "./release.step.js";
import { ENV_ID, HOST_ID, fakeDeployment, type FakeDeploymentOptions } from "../testing/deploy.fixture.js";

const IMAGE = "slipway/shop:new";
const commands = [
  { label: "migrate", command: "python manage.py migrate" },
  { label: "collectstatic", command: "python manage.py collectstatic --noinput" },
];

function withCommands(over: FakeDeploymentOptions = {}) {
  const d = fakeDeployment({ ...over, spec: { releaseCommands: commands, releaseCommandTimeoutMs: 90_000, ...over.spec } });
  d.ctx.image = IMAGE;
  return d;
}

describe("release step", () => {
  it("runs each command in order in a fresh one-off of the new image, with the variables, on the environment's network", async () => {
    const d = withCommands();
    d.runtime.oneOffScripts = [{ output: ["Applying shop.0002_price... OK"] }, { output: ["42 static files copied"] }];
    expect(await releaseStep(d.ctx)).toBe(true);
    const network = environmentNetwork(environmentSlug(ENV_ID), HOST_ID);
    expect(d.runtime.methods()).toEqual(["ensureNetwork", "runOneOff", "runOneOff"]);
    expect(d.runtime.networks.has(network)).toBe(true);
    expect(d.runtime.oneOffs.map((s) => s.cmd)).toEqual([
      ["sh", "-c", "python manage.py migrate"],
      ["sh", "-c", "python manage.py collectstatic --noinput"],
    ]);
    for (const s of d.runtime.oneOffs) {
      expect(s).toMatchObject({ image: IMAGE, env: { GREETING: "hi" }, network });
      expect(s.publishPort).toBeUndefined();
      expect(s.labels).toMatchObject({ [LABELS.role]: "release", [LABELS.host]: HOST_ID, [LABELS.deployment]: "dep-new", [AGENT_LABELS.environmentId]: ENV_ID });
    }
    expect(new Set(d.runtime.oneOffs.map((s) => s.name)).size).toBe(2);
    expect(d.runtime.callsOf("runOneOff").map((a) => a[1])).toEqual([{ timeoutMs: 90_000 }, { timeoutMs: 90_000 }]);
    const lines = d.report.lines();
    expect(lines).toContain("$ python manage.py migrate");
    expect(lines.indexOf("Applying shop.0002_price... OK")).toBeLessThan(lines.indexOf("$ python manage.py collectstatic --noinput"));
    expect(lines).toContainEqual(expect.stringMatching(/^\(collectstatic: exit 0 in \d+\.\d s\)$/));
  });

  it("runs each one-off within the environment's limits, and fails saying so when one is killed for memory", async () => {
    const limits = { memoryBytes: 256 * 1048576, nanoCpus: 500_000_000, pids: 128 };
    const d = withCommands({ spec: { limits } });
    d.runtime.oneOffScripts = [{ oomKilled: true, output: ["Killed"] }];
    const err = await releaseStep(d.ctx).catch((e: unknown) => e);
    expect(d.runtime.oneOffs.map((s) => s.limits)).toEqual([limits]);
    expect(err).toMatchObject({ type: "release_command_oom", retryable: false });
    expect((err as Error).message).toBe(
      "release command 'migrate' was killed: out of memory (limit 256 MiB). Release commands may already have changed the database or media; the site keeps serving the previous version.",
    );
    expect(d.runtime.oneOffs).toHaveLength(1);
  });

  it("fails on a non-zero exit and runs no later command", async () => {
    const d = withCommands();
    d.runtime.oneOffScripts = [{ exitCode: 3, output: ["django.db.utils.OperationalError"] }];
    const err = await releaseStep(d.ctx).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: "release_command_failed", retryable: false, details: { exitCode: 3 } });
    // A command that ran may have changed data half-way: the message says the site keeps the previous version.
    expect((err as Error).message).toBe(
      "release command 'migrate' exited with code 3. Release commands may already have changed the database or media; the site keeps serving the previous version.",
    );
    expect(d.runtime.oneOffs).toHaveLength(1);
  });

  it("fails on the first failing command after earlier ones succeeded", async () => {
    const d = withCommands();
    d.runtime.oneOffScripts = [{}, { exitCode: 1 }];
    await expect(releaseStep(d.ctx)).rejects.toMatchObject({ type: "release_command_failed", details: { exitCode: 1 }, message: expect.stringMatching(/^release command 'collectstatic' exited with code 1\./) });
    expect(d.runtime.oneOffs).toHaveLength(2);
    expect(d.report.lines()).toContainEqual(expect.stringMatching(/^\(migrate: exit 0 in/));
  });

  it("fails when a command runs past its timeout", async () => {
    const d = withCommands();
    d.runtime.oneOffScripts = [{ timedOut: true }];
    await expect(releaseStep(d.ctx)).rejects.toMatchObject({ type: "release_command_timeout", retryable: false, message: expect.stringMatching(/ran past its timeout of 90 s and was killed/) });
    expect(d.runtime.oneOffs).toHaveLength(1);
  });

  it("is skipped without release commands, creating nothing", async () => {
    const d = fakeDeployment();
    d.ctx.image = IMAGE;
    expect(await releaseStep(d.ctx)).toBe(false);
    expect(d.runtime.calls).toEqual([]);
  });

  it("stops between commands once a cancel is requested", async () => {
    const d = withCommands();
    d.runtime.on("runOneOff", () => {
      d.report.cancelRequested = true;
    });
    await expect(releaseStep(d.ctx)).rejects.toMatchObject({ type: "cancelled", retryable: false });
    expect(d.runtime.oneOffs).toHaveLength(1);
  });

  it("reports a command killed by the job's signal as a cancel, or as the agent stopping", async () => {
    const cancelled = withCommands();
    cancelled.runtime.oneOffScripts = [{ hang: true }];
    cancelled.runtime.on("runOneOff", () => void setImmediate(() => cancelled.abort.abort(CANCEL_REASON)));
    await expect(releaseStep(cancelled.ctx)).rejects.toMatchObject({ type: "cancelled", retryable: false });

    const shutdown = withCommands();
    shutdown.runtime.oneOffScripts = [{ hang: true }];
    shutdown.runtime.on("runOneOff", () => void setImmediate(() => shutdown.abort.abort("shutdown")));
    await expect(releaseStep(shutdown.ctx)).rejects.toMatchObject({ type: "agent_shutdown", retryable: true });
    expect(shutdown.runtime.oneOffs).toHaveLength(1);
  });
});
