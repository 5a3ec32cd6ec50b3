import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { nkeys } from "@nats-io/nats-core";
import { createLogger } from "@slipway/core";
import { startEmbeddedNats } from "../src/embedded/nats-server.ts";
import { NatsUserDirectory, loadOrCreateSeed } from "../src/bus/nats-users.ts";
const log = createLogger("t", "silent");
for (const n of [10, 1000, 8000]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "nu-"));
  const hosts = Array.from({ length: n }, () => ({ hostId: randomUUID(), publicKey: nkeys.createUser().getPublicKey() }));
  let server: Awaited<ReturnType<typeof startEmbeddedNats>>;
  const usersFile = path.join(dir, "nats", "users.conf");
  const users = new NatsUserDirectory({ file: usersFile, controlPlaneSeed: await loadOrCreateSeed(path.join(dir, "seed")), hosts: async () => hosts, reload: () => server.reload(), url: () => server.url, log });
  await users.writeInitial();
  const t0 = performance.now();
  server = await startEmbeddedNats({ dataDir: dir, bin: "nats-server", usersFile, log });
  const startMs = performance.now() - t0;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    hosts.push({ hostId: randomUUID(), publicKey: nkeys.createUser().getPublicKey() });
    const t = performance.now();
    await users.sync();
    times.push(performance.now() - t);
  }
  const rss = Number(/VmRSS:\s+(\d+)/.exec((await import("node:fs")).readFileSync(`/proc/${server.pid}/status`, "utf8"))![1]) / 1024;
  console.log(`${n} hosts: nats-server start ${startMs.toFixed(0)} ms, RSS ${rss.toFixed(0)} MiB; add one host (write, reload, confirmed): ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
  await server.stop();
}
