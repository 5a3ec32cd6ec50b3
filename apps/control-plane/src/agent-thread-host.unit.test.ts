import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { loadConfig } from "./config.js";
import { startAgentThread, type AgentThreadOptions } from "./agent-thread-host.js";

// The host's side of the agent thread, with real worker threads running small scripts in place of
// agent-thread.js: what starting, failing, dying and stopping do to the control plane.
const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-agent-thread-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function script(body: string): URL {
  const file = path.join(dir, `thread-${++n}.mjs`);
  writeFileSync(file, `import { parentPort, workerData } from "node:worker_threads";\n${body}\n`);
  return pathToFileURL(file);
}

const config = loadConfig({ DATABASE_URL: "postgres://127.0.0.1/none" });
const shared = { natsUrl: "nats://127.0.0.1:4222", natsSeeded: true, storage: { media: { endpoint: "http://127.0.0.1:1", region: "r", accessKeyId: "a", secretAccessKey: "s", bucket: "media", endpointForContainers: "http://127.0.0.1:1" }, backups: { endpoint: "http://127.0.0.1:1", region: "r", accessKeyId: "a", secretAccessKey: "s", bucket: "backups" } } };
const log = createLogger("test", "silent");

function start(body: string, opts: AgentThreadOptions = {}, natsUsers?: { sync(): Promise<void> }) {
  const cleanups: Array<() => Promise<void>> = [];
  const deaths: number[] = [];
  const port = startAgentThread(config, shared, natsUsers, log, cleanups, { script: script(body), onDeath: (code) => deaths.push(code), ...opts });
  return { port, cleanups, deaths };
}

describe("the agent thread, seen from the main thread", () => {
  it("hands the thread its configuration and resolves with the port it listens on", async () => {
    const t = start(`parentPort.postMessage({ type: "ready", grpcPort: workerData.config.databaseUrl === "postgres://127.0.0.1/none" && workerData.shared.storage.media.bucket === "media" ? 7701 : 1 });
parentPort.on("message", (m) => { if (m.type === "stop") parentPort.postMessage({ type: "stopped" }); });`);
    await expect(t.port).resolves.toBe(7701);
    expect(t.cleanups).toHaveLength(1);
    await t.cleanups[0]!();
    expect(t.deaths).toEqual([]);
  });

  it("runs the NATS users' sync in the main thread for the thread, and passes its failure back", async () => {
    let calls = 0;
    const users = { sync: async () => { calls++; if (calls === 2) throw new Error("reload failed"); } };
    const t = start(
      `const answers = [];
parentPort.on("message", (m) => {
  if (m.type === "nats-users-synced") {
    answers.push(m.error ?? "ok");
    if (answers.length === 1) parentPort.postMessage({ type: "nats-users-sync", id: 2 });
    else parentPort.postMessage({ type: "ready", grpcPort: answers[0] === "ok" && answers[1] === "reload failed" ? 7701 : 1 });
  }
  if (m.type === "stop") parentPort.postMessage({ type: "stopped" });
});
parentPort.postMessage({ type: "nats-users-sync", id: 1 });`,
      {},
      users,
    );
    await expect(t.port).resolves.toBe(7701);
    expect(calls).toBe(2);
    await t.cleanups[0]!();
  });

  it("fails the start with the thread's reason, and ends the thread", async () => {
    const ticks = path.join(dir, "ticks");
    const t = start(`import { appendFileSync } from "node:fs";
appendFileSync(${JSON.stringify(ticks)}, ".");
setInterval(() => appendFileSync(${JSON.stringify(ticks)}, "."), 10);
parentPort.postMessage({ type: "failed", message: "No address added out of total 1 resolved" });`);
    await expect(t.port).rejects.toThrow("the agent thread could not start: No address added out of total 1 resolved");
    expect(t.cleanups).toEqual([]);
    // A live thread ticks every 10 ms: 300 ms without a tick is an ended one (terminate() is asynchronous).
    const quiet = async () => {
      const size = statSync(ticks).size;
      await new Promise((r) => setTimeout(r, 300));
      return statSync(ticks).size === size;
    };
    await expect.poll(quiet, { timeout: 5_000, interval: 0 }).toBe(true);
    expect(t.deaths).toEqual([]);
  });

  it("fails the start when the thread exits before listening", async () => {
    const t = start(`process.exit(3);`);
    await expect(t.port).rejects.toThrow("the agent thread exited (3) before listening");
    expect(t.deaths).toEqual([]);
  });

  it("takes the process down when the thread dies after it listened", async () => {
    const t = start(`parentPort.postMessage({ type: "ready", grpcPort: 7701 });
setTimeout(() => { throw new Error("a bug in the agent thread"); }, 50);`);
    await expect(t.port).resolves.toBe(7701);
    await expect.poll(() => t.deaths, { timeout: 5_000 }).toEqual([1]);
  });

  it("stops the thread when asked, and ends one that does not stop in time", async () => {
    const polite = start(`parentPort.postMessage({ type: "ready", grpcPort: 7701 });
const keep = setInterval(() => undefined, 1000);
parentPort.on("message", (m) => { if (m.type === "stop") setTimeout(() => parentPort.postMessage({ type: "stopped" }), 50); });`);
    await polite.port;
    const started = Date.now();
    await polite.cleanups[0]!();
    expect(Date.now() - started).toBeLessThan(2_000);

    const deaf = start(`parentPort.postMessage({ type: "ready", grpcPort: 7701 });
setInterval(() => undefined, 1000);`, { stopWaitMs: 300 });
    await deaf.port;
    const t0 = Date.now();
    await deaf.cleanups[0]!();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(polite.deaths).toEqual([]);
    expect(deaf.deaths).toEqual([]);
  });
});
