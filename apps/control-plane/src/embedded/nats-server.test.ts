import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { freePort, startEmbeddedNats, type EmbeddedNats } from "./nats-server.js";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// The embedded nats-server of a control plane that died without stopping it must not block the next start.
describe("embedded nats-server", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-nats-"));
  const started: EmbeddedNats[] = [];
  afterAll(async () => {
    for (const n of started) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reclaims its port from a nats-server an earlier control plane of the same data dir left running", async () => {
    const port = await freePort();
    const log = createLogger("t", "silent");
    const usersFile = path.join(dir, "nats", "users.conf");
    mkdirSync(path.dirname(usersFile), { recursive: true });
    writeFileSync(usersFile, "");
    const first = await startEmbeddedNats({ dataDir: dir, bin: "nats-server", port, usersFile, log });
    started.push(first);
    // The first control plane "dies" here without calling stop().
    const second = await startEmbeddedNats({ dataDir: dir, bin: "nats-server", port, usersFile, log });
    started.push(second);
    expect(second.pid).not.toBe(first.pid);
    expect(alive(first.pid)).toBe(false);
    expect(alive(second.pid)).toBe(true);
    expect(second.url).toBe(`nats://127.0.0.1:${port}`);
  });
});
