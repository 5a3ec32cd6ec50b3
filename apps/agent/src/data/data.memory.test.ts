/**
 * [memory, ≥ 200 MB database] PRODUCT.md's target: agent peak memory during a
 * 200 MB database backup < 150 MB. The dump runs in a child node process of
 * its own (dump-rss.testkit.ts) so the figure is the backup's, not vitest's,
 * and as plain JavaScript like the agent runs in production: the data module
 * is transpiled into a temp dir first, because a TypeScript loader (tsx) in
 * the child would add ~30 MB of its own.
 * Real PostgreSQL and a real s3rver; the database is generated here and
 * dropped afterwards. Takes about a minute.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import ts from "typescript";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { downloadArchive, dumpToS3, restoreFromFile } from "./database.js";
import { makeS3Client } from "./s3.js";
import { createDb, dbUrl, dropDb, rand, REPO_ROOT, startS3rver, withDb, type S3rverHandle } from "./data.testkit.js";

const run = rand();
const big = `slipway_data_test_${run}_big`;
const restored = `slipway_data_test_${run}_restored`;
const LIMIT = 150 * 1024 * 1024;
let s3: S3rverHandle | undefined;
let jsDir: string | undefined;

/** Emits the probe and what it imports as ES modules under node_modules/.cache, where @slipway/* and the SDK resolve. */
function transpileProbe(): string {
  const cache = path.join(REPO_ROOT, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(path.join(cache, "slipway-dump-probe-"));
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const srcDir = path.join(REPO_ROOT, "apps/agent/src/data");
  for (const file of readdirSync(srcDir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))) {
    const src = readFileSync(path.join(srcDir, file), "utf8");
    const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    writeFileSync(path.join(dir, file.replace(/\.ts$/, ".js")), out.outputText);
  }
  return dir;
}

interface ProbeResult {
  bytes: number;
  sha256: string;
  ms: number;
  rssBefore: number;
  peakRssSampled: number;
  maxRssKernel: number;
}

function runProbe(key: string): Promise<ProbeResult> {
  const script = path.join(jsDir!, "dump-rss.testkit.js");
  const child = spawn(process.execPath, [script, dbUrl(big), s3!.endpoint, "backups", key], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.once("close", (code) => {
      const line = out.trim().split("\n").at(-1) ?? "";
      if (code === 0 && line.startsWith("{")) resolve(JSON.parse(line) as ProbeResult);
      else reject(new Error(`probe exited ${code}: ${err}`));
    });
  });
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

async function contentDigest(db: string): Promise<{ rows: number; sum: string }> {
  return withDb(db, async (c) => {
    const r = await c.query<{ rows: string; sum: string }>(`SELECT count(*) AS rows, sum(hashtext(b::text))::text AS sum FROM bulk b`);
    return { rows: Number(r.rows[0].rows), sum: r.rows[0].sum };
  });
}

beforeAll(async () => {
  jsDir = transpileProbe();
  s3 = await startS3rver(["backups"]);
  await createDb(big);
  await createDb(restored);
  // ~230 MB on disk: 1.1 M rows of random hex text (it compresses, so the dump is smaller than the database).
  await withDb(big, async (c) => {
    await c.query(`CREATE TABLE bulk (id int, a text, b text, c bytea)`);
    await c.query(`INSERT INTO bulk SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text),
                     md5(g::text) || md5(random()::text), decode(md5(random()::text), 'hex') FROM generate_series(1, 1100000) g`);
  });
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([dropDb(big), dropDb(restored)]);
  await s3?.stop();
  if (jsDir) rmSync(jsDir, { recursive: true, force: true });
});

describe("[memory] backup of a ≥ 200 MB database", () => {
  it("streams to S3 with peak RSS < 150 MB; the object is exactly what pg_dump wrote and restores", async () => {
    const size = await withDb(big, async (c) => Number((await c.query<{ s: string }>(`SELECT pg_database_size(current_database()) AS s`)).rows[0].s));
    expect(size).toBeGreaterThanOrEqual(200 * 1024 * 1024);

    const r = await runProbe("big/database.dump");
    const peak = Math.max(r.peakRssSampled, r.maxRssKernel);
    console.log(
      `[memory] database ${mb(size)}, dump ${mb(r.bytes)} in ${(r.ms / 1000).toFixed(1)} s; ` +
        `peak RSS ${mb(peak)} (sampled every 50 ms: ${mb(r.peakRssSampled)}, kernel maxrss: ${mb(r.maxRssKernel)}; ` +
        `${mb(r.rssBefore)} before the dump with the SDK loaded); limit ${mb(LIMIT)}`,
    );
    expect(peak).toBeLessThan(LIMIT);

    const client = makeS3Client(s3!.location("backups", ""));
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: "backups", Key: "big/database.dump" }));
      expect(head.ContentLength).toBe(r.bytes);
      const got = await client.send(new GetObjectCommand({ Bucket: "backups", Key: "big/database.dump" }));
      const hash = createHash("sha256");
      for await (const chunk of got.Body as Readable) hash.update(chunk as Buffer);
      expect(hash.digest("hex")).toBe(r.sha256);
    } finally {
      client.destroy();
    }

    const file = path.join(mkdtempSync(path.join(tmpdir(), "slipway-restore-")), "database.dump");
    try {
      expect(await downloadArchive(s3!.location("backups", "big/"), "database.dump", file)).toEqual({ bytes: r.bytes, sha256: r.sha256 });
      await restoreFromFile(file, dbUrl(restored));
    } finally {
      rmSync(path.dirname(file), { recursive: true, force: true });
    }
    expect(await contentDigest(restored)).toEqual(await contentDigest(big));
  });

  it("cancelling a dump kills pg_dump and leaves no object behind", async () => {
    const ac = new AbortController();
    const started = performance.now();
    // The cancel lands in the middle of the dump: its timing is what is tested, there is no event to await.
    setTimeout(() => ac.abort(), 1500);
    const err = await dumpToS3(dbUrl(big), s3!.location("backups", "cancelled/"), "database.dump", { signal: ac.signal }).catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
    expect(performance.now() - started).toBeLessThan(10_000);
    const client = makeS3Client(s3!.location("backups", ""));
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: "backups", Key: "cancelled/database.dump" })).catch((e: unknown) => e);
      expect((head as Error).name).toBe("NotFound");
    } finally {
      client.destroy();
    }
  });
});
