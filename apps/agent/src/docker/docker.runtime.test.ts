import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import Dockerode from "dockerode";
import { pino } from "pino";
import tar from "tar-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepFailure } from "@slipway/core";
import { DockerRuntime } from "./docker.runtime.js";

const BASE_IMAGE = "slipway/busybox:1";
const run = randomBytes(4).toString("hex");
const testLabels = { "io.slipway.test": run };
const network = `slipway-test-${run}`;
const webTag = `slipway-test/web:${run}`;
const badTag = `slipway-test/bad:${run}`;

const docker = new Dockerode();
const runtime = new DockerRuntime({ docker, logger: pino({ level: "silent" }) });
const tempDirs: string[] = [];

async function contextDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-build-"));
  tempDirs.push(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

async function containerNamesByLabel(): Promise<string[]> {
  const all = await docker.listContainers({ all: true, filters: { label: [`io.slipway.test=${run}`] } });
  return all.map((c) => c.Names[0].replace(/^\//, ""));
}

/** httpd needs a moment after start; retry until it answers or the deadline passes. */
async function getWithRetry(url: string, deadlineMs = 30_000): Promise<Response> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A stream's end (an exec's exit, a followed log's line) awaited with its own deadline, well inside the test's. */
async function within<T>(what: () => string, p: Promise<T>, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what()}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectFailure(p: Promise<unknown>): Promise<StepFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StepFailure);
  return err as StepFailure;
}

describe("DockerRuntime against the real dockerd", () => {
  beforeAll(async () => {
    expect(await runtime.imageInfo(BASE_IMAGE)).toBeDefined();
  });

  afterAll(async () => {
    const leftovers = await docker.listContainers({ all: true, filters: { label: [`io.slipway.test=${run}`] } });
    await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await docker.getNetwork(network).remove().catch(() => undefined);
    for (const tag of [webTag, badTag]) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("builds an image, reports its EXPOSE and serves it on a loopback port", async () => {
    const dir = await contextDir({
      Dockerfile: [
        `FROM ${BASE_IMAGE}`,
        "COPY index.html /www/index.html",
        "EXPOSE 8080",
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
        "",
      ].join("\n"),
      "index.html": `hello from ${run}\n`,
    });
    const lines: string[] = [];
    const info = await runtime.buildImage(tar.pack(dir), webTag, { labels: testLabels, noCache: false, onLog: (l) => lines.push(l) });
    expect(info.exposedPorts).toEqual([8080]);
    expect(lines.some((l) => l.includes("EXPOSE 8080"))).toBe(true);
    expect(await runtime.imageInfo(webTag)).toEqual(info);
    expect((await docker.getImage(webTag).inspect()).Config.Labels).toMatchObject(testLabels);

    await runtime.ensureNetwork(network, testLabels);
    await runtime.ensureNetwork(network, testLabels);
    const web = await runtime.start({
      name: `slipway-test-web-${run}`,
      image: webTag,
      env: { GREETING: "hi" },
      labels: { ...testLabels, "io.slipway.role": "web" },
      network,
      publishPort: 8080,
    });
    expect(web.hostPort).toBeGreaterThan(0);
    const res = await getWithRetry(`http://127.0.0.1:${web.hostPort}/index.html`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(`hello from ${run}\n`);

    const raw = await docker.getContainer(web.id).inspect();
    expect(raw.HostConfig.Init).toBe(true);
    expect(raw.HostConfig.RestartPolicy?.Name).toBe("unless-stopped");
    expect(raw.HostConfig.NetworkMode).toBe(network);
    expect(raw.Config.Env).toContain("GREETING=hi");
    expect(raw.HostConfig.LogConfig).toEqual({ Type: "json-file", Config: { "max-size": "10m", "max-file": "5" } });
    expect(await runtime.inspect(web.id)).toEqual({ id: web.id, running: true, exitCode: null, oomKilled: false, restartCount: 0, hostPort: web.hostPort, address: web.address });

    // Stopped and kept (as an environment that sleeps), then started again: same container, same env, a fresh port.
    await runtime.stop(web.id, 5);
    await runtime.stop(web.id, 5);
    expect(await runtime.inspect(web.id)).toMatchObject({ running: false });
    expect(await runtime.startExisting(web.id)).toBe(true);
    expect(await runtime.startExisting(web.id)).toBe(true);
    const again = await runtime.inspect(web.id);
    expect(again).toMatchObject({ running: true, restartCount: 0 });
    const res2 = await getWithRetry(`http://127.0.0.1:${again!.hostPort}/index.html`);
    expect(await res2.text()).toBe(`hello from ${run}\n`);
    expect((await docker.getContainer(web.id).inspect()).Config.Env).toContain("GREETING=hi");
    await runtime.stopAndRemove(web.id, 5);
    expect(await runtime.startExisting(web.id)).toBe(false);
    await runtime.stop(web.id, 5);
  });

  it("fails a Dockerfile with a bad instruction as build_failed with the daemon's text", async () => {
    const dir = await contextDir({ Dockerfile: `FROM ${BASE_IMAGE}\nFROBNICATE now\n` });
    const lines: string[] = [];
    const err = await expectFailure(
      runtime.buildImage(tar.pack(dir), badTag, { labels: testLabels, noCache: true, onLog: (l) => lines.push(l) }),
    );
    expect(err.type).toBe("build_failed");
    expect(err.retryable).toBe(false);
    expect(err.message.toLowerCase()).toContain("unknown instruction");
    expect(err.message.toLowerCase()).toContain("frobnicate");
  });

  it("fails a failing RUN step as build_failed and streams its output", async () => {
    const dir = await contextDir({ Dockerfile: `FROM ${BASE_IMAGE}\nRUN echo building-${run} && exit 7\n` });
    const lines: string[] = [];
    const err = await expectFailure(
      runtime.buildImage(tar.pack(dir), badTag, { labels: testLabels, noCache: true, onLog: (l) => lines.push(l) }),
    );
    expect(err.type).toBe("build_failed");
    expect(err.message).toContain("7");
    expect(lines).toContain(`building-${run}`);
  });

  it("aborts the build when its context stream fails, keeping the producer's failure", async () => {
    const dir = await contextDir({ Dockerfile: `FROM ${BASE_IMAGE}\n` });
    const whole: Buffer[] = [];
    for await (const chunk of tar.pack(dir)) whole.push(chunk as Buffer);
    // A truncated tar without its end blocks, as from a git archive that died mid-way.
    const context = new PassThrough();
    context.write(Buffer.concat(whole).subarray(0, 512));
    const cause = new StepFailure("git_archive_failed", "fatal: bad object", false);
    setTimeout(() => context.destroy(cause), 200);
    const t0 = Date.now();
    const err = await expectFailure(runtime.buildImage(context, badTag, { labels: testLabels, noCache: true, onLog: () => undefined }));
    expect(err).toBe(cause);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await runtime.imageInfo(badTag)).toBeUndefined();
  });

  it("runs a one-off, streams stdout and stderr, returns its exit code and removes it", async () => {
    await runtime.ensureNetwork(network, testLabels);
    const lines: string[] = [];
    const name = `slipway-test-oneoff-${run}`;
    const result = await runtime.runOneOff(
      { name, image: BASE_IMAGE, env: {}, labels: testLabels, network, cmd: ["sh", "-c", "echo one; echo two >&2; exit 3"] },
      { timeoutMs: 30_000, onLog: (l) => lines.push(l) },
    );
    expect(result).toEqual({ exitCode: 3, timedOut: false, oomKilled: false });
    // stdout and stderr are copied concurrently by docker, so only the set of lines is certain.
    expect([...lines].sort()).toEqual(["one", "two"]);
    expect(await containerNamesByLabel()).not.toContain(name);
  });

  it("kills a one-off that runs past its timeout and removes it", async () => {
    await runtime.ensureNetwork(network, testLabels);
    const name = `slipway-test-sleep-${run}`;
    const t0 = Date.now();
    const result = await runtime.runOneOff(
      { name, image: BASE_IMAGE, env: {}, labels: testLabels, network, cmd: ["sleep", "60"] },
      { timeoutMs: 1_500, onLog: () => undefined },
    );
    const elapsed = Date.now() - t0;
    expect(result).toEqual({ exitCode: null, timedOut: true, oomKilled: false });
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
    // Killed at the timeout, not at the end of its 60 s (create, kill and remove may take seconds on a busy dockerd).
    expect(elapsed).toBeLessThan(20_000);
    expect(await containerNamesByLabel()).not.toContain(name);
  });

  it("kills and removes a one-off when its signal aborts", async () => {
    await runtime.ensureNetwork(network, testLabels);
    const name = `slipway-test-abort-${run}`;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 500);
    const err = await expectFailure(
      runtime.runOneOff(
        { name, image: BASE_IMAGE, env: {}, labels: testLabels, network, cmd: ["sleep", "60"] },
        { timeoutMs: 60_000, onLog: () => undefined, signal: ac.signal },
      ),
    );
    expect(err.type).toBe("cancelled");
    expect(await containerNamesByLabel()).not.toContain(name);
  });

  it("reports a missing image as image_not_found and leaves nothing behind", async () => {
    await runtime.ensureNetwork(network, testLabels);
    const missing = `slipway-test/missing:${run}`;
    const spec = { name: `slipway-test-missing-${run}`, image: missing, env: {}, labels: testLabels, network };
    const e1 = await expectFailure(runtime.start({ ...spec, publishPort: 80 }));
    expect([e1.type, e1.retryable]).toEqual(["image_not_found", false]);
    const e2 = await expectFailure(runtime.runOneOff(spec, { timeoutMs: 5_000, onLog: () => undefined }));
    expect([e2.type, e2.retryable]).toEqual(["image_not_found", false]);
    expect(await containerNamesByLabel()).not.toContain(spec.name);
  });

  it("tails logs, stops and removes twice, and lists by label", async () => {
    await runtime.ensureNetwork(network, testLabels);
    const a = await runtime.start({
      name: `slipway-test-a-${run}`,
      image: BASE_IMAGE,
      env: {},
      labels: { ...testLabels, "io.slipway.role": "worker" },
      network,
      // Docker copies stdout and stderr concurrently: the pause keeps their order in the log deterministic.
      cmd: ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.3; echo err >&2; exec sleep 60"],
    });
    const b = await runtime.start({
      name: `slipway-test-b-${run}`,
      image: BASE_IMAGE,
      env: {},
      labels: { ...testLabels, "io.slipway.role": "worker" },
      network,
      cmd: ["sleep", "60"],
    });

    const listed = await runtime.list({ ...testLabels, "io.slipway.role": "worker" });
    expect(listed.map((c) => c.name).sort()).toEqual([`slipway-test-a-${run}`, `slipway-test-b-${run}`]);
    expect(listed.every((c) => c.state === "running" && c.labels["io.slipway.test"] === run)).toBe(true);

    let tail = "";
    for (let i = 0; i < 50 && !tail.includes("err"); i++) {
      tail = await runtime.logsTail(a.id, 3);
      if (!tail.includes("err")) await new Promise((r) => setTimeout(r, 100));
    }
    expect(tail.split("\n")).toEqual(["line4", "line5", "err"]);

    const t0 = Date.now();
    await runtime.stopAndRemove(a.id, 10);
    // It stopped on SIGTERM, without waiting out the 10 s grace.
    expect(Date.now() - t0).toBeLessThan(9_000);
    await runtime.stopAndRemove(a.id, 10);
    expect(await runtime.inspect(a.id)).toBeUndefined();
    await runtime.stopAndRemove(b.id, 1);
    expect(await runtime.list({ ...testLabels, "io.slipway.role": "worker" })).toEqual([]);
  });

  it("removes networks idempotently", async () => {
    const extra = `${network}-extra`;
    await runtime.ensureNetwork(extra, testLabels);
    const info = await docker.getNetwork(extra).inspect();
    expect(info.Driver).toBe("bridge");
    expect(info.Labels).toEqual(testLabels);
    await runtime.removeNetwork(extra);
    await runtime.removeNetwork(extra);
  });

  it("reports an unreachable daemon as docker_unavailable, retryable", async () => {
    const offline = new DockerRuntime({ docker: new Dockerode({ socketPath: `/tmp/no-docker-${run}.sock` }), logger: pino({ level: "silent" }) });
    const err = await expectFailure(offline.imageInfo(BASE_IMAGE));
    expect([err.type, err.retryable]).toEqual(["docker_unavailable", true]);
  });

  describe("inside a running container: runtime logs, shells, stats", () => {
    let id: string;

    beforeAll(async () => {
      await runtime.ensureNetwork(network, testLabels);
      const c = await runtime.start({ name: `slipway-test-inside-${run}`, image: BASE_IMAGE, env: {}, labels: testLabels, network, cmd: ["sh", "-c", "echo first; echo second; exec sleep 300"] });
      id = c.id;
    });

    /** A command run to its end as a shell user runs it: what they see and the status the CLI exits with. */
    async function execToEnd(cmd: string[], tty: boolean, input?: string): Promise<{ stdout: string; stderr: string; exit: number | undefined }> {
      const out = { stdout: "", stderr: "" };
      const session = await runtime.exec(id, { cmd, tty, rows: 24, cols: 80 }, (stream, chunk) => (out[stream] += chunk.toString("utf8")));
      if (input !== undefined) session.write(Buffer.from(input));
      session.endInput();
      const exit = await within(() => `the exit of ${cmd.join(" ")} (output so far ${JSON.stringify(out)})`, session.exit);
      return { ...out, exit };
    }

    it("runs a command with its input, its output and errors apart, and its exit status", async () => {
      expect(await execToEnd(["sh", "-c", "echo out; echo err >&2; exit 7"], false)).toEqual({ stdout: "out\n", stderr: "err\n", exit: 7 });
      expect(await execToEnd(["cat"], false, "typed\n")).toEqual({ stdout: "typed\n", stderr: "", exit: 0 });
    });

    // Issue 10: `slipway shell -t web test -- tty` exited 255. The CLI's stdin (a pipe) ended at
    // once; closing a terminal's input made Docker drop the session while the command still ran, and
    // the exit status read at that moment was null, reported as -1.
    it("with a terminal, keeps the output and the exit status of a command that outlives its input", async () => {
      const r = await execToEnd(["sh", "-c", "sleep 0.3; tty; exit 3"], true);
      expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\n$/);
      expect(r.exit).toBe(3);
    });

    it("reports each command's own exit status when many end at once", async () => {
      const codes = Array.from({ length: 16 }, (_, i) => i + 1);
      const results = await Promise.all(codes.map((c) => execToEnd(["sh", "-c", `exit ${c}`], c % 2 === 0)));
      expect(results.map((r) => r.exit)).toEqual(codes);
    });

    it("stops the command of a session that was hung up", async () => {
      const session = await runtime.exec(id, { cmd: ["sleep", "300"], tty: false, rows: 0, cols: 0 }, () => undefined);
      await session.hangUp();
      // Killed by SIGHUP (128 + 1), within 15 s, not at the end of its 300 s.
      expect(await within(() => "the exit of the hung-up session", session.exit)).toBe(129);
    });

    it("reads the output with Docker's timestamps, and follows new output until aborted", async () => {
      const lines: string[] = [];
      await runtime.logs(id, { follow: false, since: 0, tail: 100 }, (l) => lines.push(l));
      expect(lines.map((l) => l.replace(/^\S+ /, ""))).toEqual(["first", "second"]);
      expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);

      const followed: string[] = [];
      let arrived!: () => void;
      const third = new Promise<void>((r) => (arrived = r));
      const ac = new AbortController();
      const done = runtime.logs(id, { follow: true, since: 0, tail: 1, signal: ac.signal }, (l) => {
        followed.push(l.replace(/^\S+ /, ""));
        if (l.endsWith("third")) arrived();
      });
      // The container's PID 1 (docker's init) holds its standard output: writing there is new log output.
      await execToEnd(["sh", "-c", "echo third > /proc/1/fd/1"], false);
      await within(() => `the followed line (followed so far: ${JSON.stringify(followed)})`, third);
      ac.abort();
      await within(() => "the followed log's end after the abort", done);
      expect(followed).toEqual(["second", "third"]);
    });

    it("reads a running container's CPU and memory, and nothing of a missing one", async () => {
      const s = await runtime.stats(id);
      expect(s?.cpu_stats?.system_cpu_usage).toBeGreaterThan(0);
      expect(s?.memory_stats?.usage).toBeGreaterThan(0);
      expect(await runtime.stats("0".repeat(64))).toBeUndefined();
    });
  });
});
