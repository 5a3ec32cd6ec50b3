// Integration tests of sleeping and waking against the real dockerd and
// /usr/sbin/haproxy, all on 127.0.0.1. Tests run in order and share one
// test bed (image, HAProxy, waker); everything is removed in afterAll.
import http from "node:http";
import net from "node:net";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import { PAGE, Testbed, waitFor } from "./testbed.testkit.js";

const bed = new Testbed();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Directly to a container's port, no ingress: one GET, resolving with the status. */
function directGet(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/**
 * The cold-start floor on the environment's own (stopped) container, behind
 * the agent's back: `docker start`, read the new port, GET / every 20 ms
 * until the first 200; then stop it again so the environment still sleeps.
 */
async function floorOnce(containerId: string): Promise<number> {
  const t0 = performance.now();
  await bed.runtime.startExisting(containerId);
  const port = (await bed.runtime.inspect(containerId))!.hostPort!;
  let ms: number | undefined;
  while (ms === undefined) {
    try {
      if ((await directGet(port)) === 200) ms = performance.now() - t0;
    } catch (err) {
      if (performance.now() - t0 > 30_000) throw new Error(`the container never answered on port ${port} within 30 s`, { cause: err });
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await bed.runtime.stop(containerId, 5);
  return ms;
}

async function putToSleep(env: string): Promise<void> {
  expect(await bed.envs.sleep(bed.slug(env), async () => true)).toBe(true);
  expect(bed.envs.get(bed.slug(env))?.state).toBe("sleeping");
  expect(await bed.containersRunning(env)).toEqual([false]);
}

describe("sleeping and waking environments (real dockerd + HAProxy)", () => {
  beforeAll(async () => {
    await bed.start();
  });

  afterAll(async () => {
    await bed.close();
  });

  it("records a deployment: registry entry with labels, heartbeat observation, no variables on disk", async () => {
    await bed.deploy("sleepy", { sleepAfterSeconds: 2, variables: { SECRET_KEY: "very-secret-value" } });
    const e = bed.envs.get(bed.slug("sleepy"))!;
    expect(e).toMatchObject({ app: bed.app, environment: "sleepy", state: "running", webPort: 8080, sleepAfterSeconds: 2, hostnames: [bed.host("sleepy")] });
    expect(e.containerIds).toHaveLength(1);
    const [c] = await bed.containers({ [LABELS.environment]: "sleepy", [LABELS.role]: "web" });
    expect(c!.Labels[AGENT_LABELS.environmentId]).toBe(e.environmentId);
    expect(bed.envs.observations()).toContainEqual({ app: bed.app, environment: "sleepy", environmentId: e.environmentId, state: "running", deploymentId: e.deploymentId });
    const onDisk = await readFile(path.join(bed.dir, "environments.json"), "utf8");
    expect(onDisk).toContain(e.image);
    expect(onDisk).not.toContain("very-secret-value");
    expect(await bed.get("sleepy")).toMatchObject({ status: 200, body: PAGE });
  });

  it("goes to sleep after sleepAfterSeconds without requests; one GET wakes it with the normal page (wake time vs cold-start floor)", async () => {
    bed.startSleeper(200);
    const sleptAfter = await waitFor("the environment to sleep", () => bed.envs.get(bed.slug("sleepy"))?.state === "sleeping", 15_000);
    expect(sleptAfter).toBeGreaterThanOrEqual(1000);
    expect(await bed.containersRunning("sleepy")).toEqual([false]);
    expect(await bed.ingress.current(bed.slug("sleepy"))).toEqual([]);
    await bed.sleeper!.stop();

    // Interleaved, so that both see the same load on the machine.
    const wakes: number[] = [];
    const floors: number[] = [];
    for (let i = 0; i < 5; i++) {
      if (i > 0) await putToSleep("sleepy");
      floors.push(await floorOnce(bed.envs.get(bed.slug("sleepy"))!.containerIds[0]!));
      const t0 = performance.now();
      const r = await bed.get("sleepy");
      wakes.push(performance.now() - t0);
      expect(r).toMatchObject({ status: 200, body: PAGE });
      expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
      expect(await bed.containersRunning("sleepy")).toEqual([true]);
    }
    // Traffic goes straight to the container again, not through the waker.
    const [routed] = await bed.ingress.current(bed.slug("sleepy"));
    expect(routed?.id).toBe(bed.envs.get(bed.slug("sleepy"))!.containerIds[0]);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
    console.log(
      `wake from sleep, first answer through the ingress: median ${median(wakes).toFixed(0)} ms (${fmt(wakes)}); ` +
        `cold-start floor (docker start + first direct HTTP answer): median ${median(floors).toFixed(0)} ms (${fmt(floors)}); ` +
        `ratio ${(median(wakes) / median(floors)).toFixed(2)}`,
    );
  });

  it("wakes once for 10 concurrent requests, and all of them get the page", async () => {
    await putToSleep("sleepy");
    const before = bed.runtime.restarts;
    const replies = await Promise.all(Array.from({ length: 10 }, () => bed.get("sleepy")));
    expect(replies.map((r) => r.status)).toEqual(new Array(10).fill(200));
    expect(replies.every((r) => r.body === PAGE)).toBe(true);
    expect(bed.runtime.restarts - before).toBe(1);
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
  });

  it("never wakes for X-Slipway-No-Wake: 1 (503, stays asleep)", async () => {
    await putToSleep("sleepy");
    const before = bed.runtime.restarts;
    const r = await bed.get("sleepy", { headers: { "X-Slipway-No-Wake": "1" } });
    expect(r.status).toBe(503);
    expect(r.body).toContain(`environment ${bed.app}/sleepy is sleeping`);
    expect(bed.runtime.restarts).toBe(before);
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("sleeping");
    expect(await bed.containersRunning("sleepy")).toEqual([false]);
  });

  it("stays awake past sleepAfterSeconds while a long request is open, then sleeps", async () => {
    await bed.get("sleepy");
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
    bed.startSleeper(200);
    const slow = bed.get("sleepy", { path: "/cgi-bin/slow?5" });
    // The idle time is the behaviour under test (not a wait for something):
    // 4.5 s without a new request, more than twice sleepAfterSeconds: only the open session keeps it awake.
    await new Promise((r) => setTimeout(r, 4500));
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
    expect(await slow).toMatchObject({ status: 200, body: "slow done\n" });
    await waitFor("the environment to sleep after the long request", () => bed.envs.get(bed.slug("sleepy"))?.state === "sleeping", 10_000);
    await bed.sleeper!.stop();
  });

  it("wakes for a held upgrade (WebSocket-style) request and tunnels it to the container", async () => {
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("sleeping");
    // busybox httpd does not speak WebSocket and answers the upgrade request as a plain GET: the page proves the tunnel.
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(bed.httpPort, "127.0.0.1", () => {
        sock.write(`GET / HTTP/1.1\r\nHost: ${bed.host("sleepy")}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      let text = "";
      sock.setEncoding("utf8");
      sock.on("data", (d: string) => {
        text += d;
        if (text.includes(PAGE)) {
          sock.destroy();
          resolve(text);
        }
      });
      sock.on("error", reject);
      sock.on("close", () => reject(new Error(`connection closed; got: ${text}`)));
      sock.setTimeout(20_000, () => sock.destroy(new Error(`no answer; got: ${text}`)));
    });
    expect(answer).toMatch(/^HTTP\/1\.[01] 200/);
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
  });

  it("after an agent restart with another waker port and a host reboot, re-renders HAProxy and wakes on the next request", async () => {
    const oldPort = bed.wakerPort;
    // As after a reboot: the registry says running, the containers are stopped.
    for (const id of bed.envs.get(bed.slug("sleepy"))!.containerIds) await bed.runtime.stop(id, 5);
    await bed.startAgentSide();
    expect(bed.wakerPort).not.toBe(oldPort);
    const cfg = await readFile(path.join(bed.dir, "haproxy", "haproxy.cfg"), "utf8");
    expect(cfg).toContain(`server waker 127.0.0.1:${bed.wakerPort} backup`);
    expect(cfg).not.toContain(`127.0.0.1:${oldPort} backup`);
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("sleeping");
    expect(await bed.get("sleepy")).toMatchObject({ status: 200, body: PAGE });
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
  });

  it("after an agent restart, points a running environment at its containers' current addresses", async () => {
    const e = bed.envs.get(bed.slug("sleepy"))!;
    // A container restarted behind the agent's back, and a route to where it used to be.
    await bed.runtime.stop(e.containerIds[0]!, 5);
    await bed.runtime.startExisting(e.containerIds[0]!);
    const st = (await bed.runtime.inspect(e.containerIds[0]!))!;
    await bed.ingress.switchTraffic(bed.slug("sleepy"), [{ id: e.containerIds[0]!, host: "127.0.0.1", port: st.hostPort! }], { drainTimeoutMs: 100 });
    await bed.startAgentSide();
    expect(bed.envs.get(bed.slug("sleepy"))?.state).toBe("running");
    expect((await bed.ingress.current(bed.slug("sleepy"))).map((t) => `${t.host}:${t.port}`)).toEqual([`${st.address}:${e.webPort}`]);
    expect(await bed.get("sleepy")).toMatchObject({ status: 200, body: PAGE });
  });

  it("answers 503 with the reason when a wake fails, and the environment stays asleep", async () => {
    const slug = bed.slug("sleepy");
    const probe = bed.envs.get(slug)!.probe;
    await putToSleep("sleepy");
    await bed.registry.update(slug, { probe: { ...probe, acceptedStatuses: "299", startupTimeoutMs: 1000 } });
    try {
      const r = await bed.get("sleepy");
      expect(r.status).toBe(503);
      expect(r.body).toContain(`environment ${bed.app}/sleepy could not be woken: startup probe failed`);
      expect(bed.envs.get(slug)?.state).toBe("sleeping");
      expect(await bed.containersRunning("sleepy")).toEqual([false]);
    } finally {
      await bed.registry.update(slug, { probe });
    }
    expect(await bed.get("sleepy")).toMatchObject({ status: 200, body: PAGE });
  });
});
