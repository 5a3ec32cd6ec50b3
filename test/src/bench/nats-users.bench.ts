/**
 * What one NATS user per host costs (issue 11): the embedded nats-server started with N host users, and
 * adding one more host as the control plane does when an agent registers its key (the users file written,
 * the server reloaded, the reload confirmed by the marker user). N = 10, 1,000 and 8,000 (the fleet
 * benchmark's scale), five additions each; no client connected meanwhile. Progress on stderr; the
 * markdown for BENCHMARKS.md is returned.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { nkeys } from "@nats-io/transport-node";
import { createLogger } from "@slipway/core";
import { NatsUserDirectory, loadOrCreateSeed } from "@slipway/control-plane/nats-users";
import { startEmbeddedNats, type EmbeddedNats } from "@slipway/control-plane/embedded-nats";
import { fixed, max, mdTable, median } from "./stats.js";

const SIZES = [10, 1000, 8000];
const ADDITIONS = 5;
const progress = (msg: string) => process.stderr.write(`bench [nats users] ${msg}\n`);

export async function runNatsUsersBench(): Promise<{ markdown: string }> {
  const log = createLogger("bench", "silent");
  const rows: string[][] = [];
  for (const n of SIZES) {
    progress(`${n} hosts`);
    const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-nats-users-bench-"));
    let server: EmbeddedNats | undefined;
    try {
      const hosts = Array.from({ length: n }, () => ({ hostId: randomUUID(), publicKey: nkeys.createUser().getPublicKey() }));
      const usersFile = path.join(dir, "nats", "users.conf");
      const users = new NatsUserDirectory({ file: usersFile, controlPlaneSeed: await loadOrCreateSeed(path.join(dir, "seed")), hosts: async () => hosts, reload: () => server!.reload(), url: () => server!.url, log });
      await users.writeInitial();
      const t0 = performance.now();
      server = await startEmbeddedNats({ dataDir: dir, bin: "nats-server", usersFile, log });
      const startMs = performance.now() - t0;
      const adds: number[] = [];
      for (let i = 0; i < ADDITIONS; i++) {
        hosts.push({ hostId: randomUUID(), publicKey: nkeys.createUser().getPublicKey() });
        const t = performance.now();
        await users.sync();
        adds.push(performance.now() - t);
      }
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
      rows.push([String(n), fixed(startMs, 0), `${fixed(median(adds), 0)} (max ${fixed(max(adds), 0)})`, `${fixed(rss, 0)} MiB`]);
    } finally {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    markdown: [
      "### NATS: one user per host",
      "",
      mdTable(["host users", "nats-server start ms", "add one host: write, reload, confirmed (ms, median of 5)", "nats-server RSS"], rows),
      "",
    ].join("\n"),
  };
}
