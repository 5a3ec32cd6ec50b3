/**
 * What a real multi-user S3 server costs (issue 11): a single-node Ceph Object Gateway (monitor,
 * OSD, gateway) against the embedded s3rver, started from nothing until they answer HTTP, three
 * times each: seconds and resident memory of their processes, in the same run. Then what the
 * radosgw provider adds to an environment's first deployment: creating its user and bucket.
 * Progress on stderr; the markdown for BENCHMARKS.md is returned.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { createLogger } from "@slipway/core";
import { startRadosGw } from "@slipway/control-plane/testing/radosgw";
import { RadosGwProvider, environmentBucket, newStorageCredentials } from "@slipway/control-plane/radosgw-provider";
import { startS3rver } from "./data.bench.js";
import { fixed, max, mdTable, median, min } from "./stats.js";

const ROUNDS = 3;
const ENVIRONMENTS = 10;
const progress = (msg: string) => process.stderr.write(`bench [storage] ${msg}\n`);

function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Start {
  seconds: number;
  rssMiB: number;
}

async function s3rverStart(): Promise<Start> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-s3rver-bench-"));
  const t = performance.now();
  const s3 = await startS3rver(dir);
  const seconds = (performance.now() - t) / 1000;
  const rssMiB = rss(s3.child.pid!) / 1048576;
  const exited = new Promise((r) => s3.child.once("exit", r));
  s3.child.kill("SIGTERM");
  await exited;
  rmSync(dir, { recursive: true, force: true });
  return { seconds, rssMiB };
}

async function rgwStart(objectstore: "memstore" | "bluestore"): Promise<Start> {
  const rgw = await startRadosGw({ objectstore });
  try {
    return { seconds: rgw.startSeconds, rssMiB: rgw.rssBytes() / 1048576 };
  } finally {
    await rgw.stop();
  }
}

export async function runStorageBench(): Promise<{ markdown: string }> {
  const runs: Record<string, Start[]> = { "embedded s3rver (baseline)": [], "radosgw, memstore (RAM; tests)": [], "radosgw, bluestore on a sparse file (persistent)": [] };
  for (let i = 1; i <= ROUNDS; i++) {
    progress(`round ${i}/${ROUNDS}: s3rver, radosgw memstore, radosgw bluestore`);
    runs["embedded s3rver (baseline)"]!.push(await s3rverStart());
    runs["radosgw, memstore (RAM; tests)"]!.push(await rgwStart("memstore"));
    runs["radosgw, bluestore on a sparse file (persistent)"]!.push(await rgwStart("bluestore"));
  }
  const base = runs["embedded s3rver (baseline)"]!;
  const rows = Object.entries(runs).map(([name, xs]) => {
    const s = xs.map((x) => x.seconds);
    const m = xs.map((x) => x.rssMiB);
    return [name, `${fixed(median(s), 2)} (${fixed(min(s), 2)}–${fixed(max(s), 2)})`, `${fixed(median(s) / median(base.map((x) => x.seconds)), 1)}×`, `${fixed(median(m), 0)} MiB`, `${fixed(median(m) / median(base.map((x) => x.rssMiB)), 1)}×`];
  });

  progress(`provisioning ${ENVIRONMENTS} environments' users and buckets on a radosgw (memstore)`);
  const rgw = await startRadosGw();
  const provision: number[] = [];
  try {
    const provider = new RadosGwProvider({ endpoint: rgw.endpoint, region: "us-east-1", admin: rgw.admin, log: createLogger("bench", "silent") });
    for (let i = 0; i < ENVIRONMENTS; i++) {
      const id = randomUUID();
      const t = performance.now();
      await provider.provision({ environmentId: id, bucket: environmentBucket(id), credentials: newStorageCredentials() });
      provision.push(performance.now() - t);
    }
  } finally {
    await rgw.stop();
  }
  const markdown = [
    "### Storage: a multi-user S3 server (radosgw) against the embedded s3rver",
    "",
    `From nothing until it answers HTTP (${ROUNDS} rounds each, median with range; RSS of its processes once ready):`,
    "",
    mdTable(["server", "start s", "÷ s3rver", "RSS", "÷ s3rver"], rows),
    "",
    `One environment's user and bucket on radosgw (the radosgw provider's provision, ${ENVIRONMENTS} environments): median ${fixed(median(provision), 0)} ms, max ${fixed(max(provision), 0)} ms.`,
    "",
  ].join("\n");
  return { markdown };
}
