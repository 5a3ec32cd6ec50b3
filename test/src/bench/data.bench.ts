/**
 * Data benchmark (PRODUCT.md, "Performance targets"), in one run on the same
 * data, against the local PostgreSQL (127.0.0.1:5432) and an s3rver started
 * here:
 *   a. database copy: the agent's copyDatabase ÷ a plain
 *      `pg_dump -Fc | pg_restore` shell pipe (target ≤ 1.1);
 *   b. media copy of 1,000 ~10 KB objects: the agent's copyPrefix ÷
 *      `aws s3 sync` on the same server (target ≤ 0.7);
 *   c. peak RSS of a node process doing dumpToS3 of a ≥ 200 MB database
 *      (target < 150 MB).
 * Runs alternate between the two sides so drift in the machine's load hits
 * both alike; every target is recreated (database) or fresh (prefix) per run.
 * Results are verified by reading back. Progress goes to stderr.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import type { S3Location } from "@slipway/proto";
import { copyDatabase, copyPrefix, listAll, makeS3Client, mapBounded, uploadStream } from "@slipway/agent/internal";
import { fixed, mdTable, median } from "./stats.js";

const run = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const AGENT_DATA = path.join(REPO_ROOT, "apps/agent/dist/data");
const AWS = "/usr/bin/aws";
const RUNS = 3;
/** Media runs are short and the noisiest: more of them. */
const MEDIA_RUNS = 5;
const MEDIA_OBJECTS = 1000;
const TARGET_DB = 1.1;
const TARGET_MEDIA = 0.7;
const TARGET_RSS_MB = 150;
const PG = { host: "127.0.0.1", port: "5432", user: "postgres" };
const url = (db: string) => `postgres://${PG.user}@${PG.host}:${PG.port}/${db}`;

const t0 = performance.now();
const progress = (msg: string) => process.stderr.write(`data bench [${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

async function sql(db: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url(db) });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}
const recreate = async (db: string) => {
  await sql("postgres", `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  await sql("postgres", `CREATE DATABASE "${db}"`);
};
const digest = async (db: string) =>
  (await sql(db, `SELECT count(*)::text || ':' || sum(hashtext(b::text))::text AS d FROM bulk b`)).rows[0].d as string;

const S3RVER_MAIN = `
const [dir] = process.argv.slice(1);
import("s3rver").then(async ({ default: S3rver }) => {
  const server = new S3rver({ directory: dir, address: "127.0.0.1", port: 0, silent: true, configureBuckets: [{ name: "bench", configs: [] }] });
  const info = await server.run();
  process.stdout.write("listening " + info.port + "\\n");
  process.on("SIGTERM", () => server.close().then(() => process.exit(0), () => process.exit(1)));
});`;

export async function startS3rver(dir: string): Promise<{ child: ChildProcess; endpoint: string }> {
  // --openssl-legacy-provider: s3rver's ListObjectsV2 pagination needs it on Node 20.
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "-e", S3RVER_MAIN, dir], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`s3rver exited (${code})`)));
  });
  return { child, endpoint: `http://127.0.0.1:${port}` };
}

/** `count` objects of 8–12 KB random bytes under loc.prefix. */
async function putObjects(loc: S3Location, count: number): Promise<void> {
  const client = makeS3Client(loc);
  try {
    const keys = Array.from({ length: count }, (_, i) => `${loc.prefix}uploads/${i % 20}/file-${i}.bin`);
    await mapBounded(keys, 16, async (key) => {
      await uploadStream(client, loc.bucket, key, [randomBytes(8192 + Math.floor(Math.random() * 4096))], { partSize: 1 << 20, queueSize: 1 });
    });
  } finally {
    client.destroy();
  }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const s = performance.now();
  await fn();
  return performance.now() - s;
}

interface Side {
  label: string;
  ms: number[];
}

const verdict = (ok: boolean, ratio: number, target: number, lowerIsBetter = true) =>
  ok ? "PASS" : `MISS (${fixed(lowerIsBetter ? ratio / target : target / ratio)}× the target)`;

type DbSide = "pipe" | "ours" | "oursCompressed";

/** Rounds of pipe / ours / ours with compression, rotating the order each round; every run into a freshly created database. */
async function databaseCopy(src: string, target: string): Promise<{ sides: Record<DbSide, Side>; bytes: number }> {
  const sides: Record<DbSide, Side> = {
    pipe: { label: "pg_dump -Fc | pg_restore", ms: [] },
    ours: { label: "copyDatabase", ms: [] },
    oursCompressed: { label: "copyDatabase, pg_dump's default compression", ms: [] },
  };
  const want = await digest(src);
  let bytes = 0;
  const conn = (db: string) => `-h ${PG.host} -p ${PG.port} -U ${PG.user} -d ${db}`;
  const order: DbSide[] = ["pipe", "ours", "oursCompressed"];
  for (let round = 0; round < RUNS; round++) {
    for (let k = 0; k < order.length; k++) {
      const side = order[(k + round) % order.length];
      await recreate(target);
      const ms =
        side === "pipe"
          ? await timed(() =>
              run("bash", ["-o", "pipefail", "-c", `pg_dump -Fc ${conn(src)} | pg_restore --clean --if-exists --no-owner --no-privileges ${conn(target)}`]),
            )
          : await timed(async () => {
              const r = await copyDatabase(url(src), url(target), side === "oursCompressed" ? { compress: "default" } : {});
              if (side === "ours") bytes = r.bytes;
            });
      if ((await digest(target)) !== want) throw new Error(`${sides[side].label} produced different content`);
      sides[side].ms.push(ms);
      progress(`database copy round ${round + 1}/${RUNS} (${sides[side].label}): ${(ms / 1000).toFixed(2)} s`);
    }
  }
  return { sides, bytes };
}

async function mediaCopy(loc: (prefix: string) => S3Location, endpoint: string): Promise<{ ours: Side; aws: Side } | undefined> {
  if (!existsSync(AWS)) return undefined;
  const sides = { ours: { label: "copyPrefix", ms: [] as number[] }, aws: { label: "aws s3 sync", ms: [] as number[] } };
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    AWS_DEFAULT_REGION: "us-east-1",
    AWS_CONFIG_FILE: "/nonexistent",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
    AWS_EC2_METADATA_DISABLED: "true",
  };
  const client = makeS3Client(loc(""));
  try {
    for (let i = 0; i < MEDIA_RUNS * 2; i++) {
      // aws, ours, ours, aws, aws, ours, …: each side goes first as often as the other
      const side = (i + Math.floor(i / 2)) % 2 === 0 ? "aws" : "ours";
      const dst = `dst-${side}-${i}/`;
      const ms =
        side === "ours"
          ? await timed(() => copyPrefix(loc("src/"), loc(dst)))
          : await timed(() => run(AWS, ["s3", "sync", "s3://bench/src/", `s3://bench/${dst}`, "--endpoint-url", endpoint, "--only-show-errors"], { env }));
      const copied = await listAll(client, loc(dst));
      if (copied.length !== MEDIA_OBJECTS) throw new Error(`${side} copied ${copied.length}/${MEDIA_OBJECTS} objects`);
      sides[side].ms.push(ms);
      progress(`media copy ${i + 1}/${MEDIA_RUNS * 2} (${sides[side].label}): ${(ms / 1000).toFixed(2)} s`);
    }
  } finally {
    client.destroy();
  }
  return sides;
}

const PROBE = `
const { dumpToS3 } = await import(process.argv[1] + "/database.js");
const [, , url, endpoint] = process.argv;
let peak = process.memoryUsage().rss;
const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
const r = await dumpToS3(url, { endpoint, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", bucket: "bench", prefix: "", forcePathStyle: true }, "big.dump");
clearInterval(t);
console.log(JSON.stringify({ bytes: r.bytes, peak: Math.max(peak, process.resourceUsage().maxRSS * 1024) }));`;

/** dumpToS3 of a ≥ 200 MB database in a node process of its own, as the agent runs it (compiled JavaScript). */
async function backupMemory(db: string, endpoint: string): Promise<{ dbBytes: number; dumpBytes: number; peak: number; ms: number }> {
  await sql(db, `CREATE TABLE bulk (id int, a text, b text, c bytea)`);
  await sql(
    db,
    `INSERT INTO bulk SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text), md5(g::text) || md5(random()::text),
       decode(md5(random()::text), 'hex') FROM generate_series(1, 1100000) g`,
  );
  const dbBytes = Number((await sql(db, `SELECT pg_database_size(current_database()) AS s`)).rows[0].s);
  const s = performance.now();
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", PROBE, AGENT_DATA, url(db), endpoint], { maxBuffer: 1 << 20 });
  const r = JSON.parse(stdout.trim().split("\n").at(-1)!) as { bytes: number; peak: number };
  return { dbBytes, dumpBytes: r.bytes, peak: r.peak, ms: performance.now() - s };
}

export async function runDataBench(): Promise<{ markdown: string }> {
  const tag = Math.random().toString(16).slice(2, 8);
  const dbs = { src: `slipway_bench_${tag}_src`, target: `slipway_bench_${tag}_target`, big: `slipway_bench_${tag}_big` };
  const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-data-bench-"));
  let s3: { child: ChildProcess; endpoint: string } | undefined;
  try {
    s3 = await startS3rver(dir);
    const endpoint = s3.endpoint;
    const loc = (prefix: string): S3Location => ({ endpoint, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", bucket: "bench", prefix, forcePathStyle: true });

    progress("generating the source database and 1,000 media objects");
    await recreate(dbs.src);
    await sql(dbs.src, `CREATE TABLE bulk (id int PRIMARY KEY, a text, b text, c bytea)`);
    await sql(
      dbs.src,
      `INSERT INTO bulk SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text), repeat(md5(g::text), 2),
         decode(md5(random()::text) || md5(random()::text), 'hex') FROM generate_series(1, 220000) g`,
    );
    await sql(dbs.src, `CREATE INDEX bulk_a ON bulk (a)`);
    const srcBytes = Number((await sql(dbs.src, `SELECT pg_database_size(current_database()) AS s`)).rows[0].s);
    await putObjects(loc("src/"), MEDIA_OBJECTS);

    progress(`database copy: ${(srcBytes / 1048576).toFixed(0)} MB, ${RUNS} runs per side`);
    const db = await databaseCopy(dbs.src, dbs.target);
    progress(`media copy: ${MEDIA_OBJECTS} objects, ${MEDIA_RUNS} runs per side`);
    const media = await mediaCopy(loc, endpoint);
    progress("backup memory: generating a ≥ 200 MB database");
    await recreate(dbs.big);
    const mem = await backupMemory(dbs.big, endpoint);

    const dbRatio = median(db.sides.ours.ms) / median(db.sides.pipe.ms);
    const dbRatioCompressed = median(db.sides.oursCompressed.ms) / median(db.sides.pipe.ms);
    const mediaRatio = media ? median(media.ours.ms) / median(media.aws.ms) : NaN;
    const peakMb = mem.peak / 1048576;
    const s = (ms: number[]) => ms.map((m) => (m / 1000).toFixed(2)).join(", ");
    const rows = [
      [
        `database copy (${(srcBytes / 1048576).toFixed(0)} MB database) ÷ \`pg_dump -Fc | pg_restore\``,
        `${s(db.sides.ours.ms)} s vs ${s(db.sides.pipe.ms)} s`,
        fixed(dbRatio),
        `≤ ${TARGET_DB}`,
        verdict(dbRatio <= TARGET_DB, dbRatio, TARGET_DB),
      ],
      [
        "(for comparison) the same with pg_dump's default compression, as the plain pipe",
        `${s(db.sides.oursCompressed.ms)} s vs ${s(db.sides.pipe.ms)} s`,
        fixed(dbRatioCompressed),
        "",
        "",
      ],
      media
        ? [
            `media copy of ${MEDIA_OBJECTS} objects (~10 KB) ÷ \`aws s3 sync\``,
            `${s(media.ours.ms)} s vs ${s(media.aws.ms)} s`,
            fixed(mediaRatio),
            `≤ ${TARGET_MEDIA}`,
            verdict(mediaRatio <= TARGET_MEDIA, mediaRatio, TARGET_MEDIA),
          ]
        : [`media copy of ${MEDIA_OBJECTS} objects ÷ \`aws s3 sync\``, `${AWS} is not installed (apt-get install awscli)`, "n/a", `≤ ${TARGET_MEDIA}`, "n/a"],
      [
        `agent peak memory, backup of a ${(mem.dbBytes / 1048576).toFixed(0)} MB database (dump ${(mem.dumpBytes / 1048576).toFixed(0)} MB in ${(mem.ms / 1000).toFixed(1)} s)`,
        `${peakMb.toFixed(1)} MB peak RSS`,
        "",
        `< ${TARGET_RSS_MB} MB`,
        peakMb < TARGET_RSS_MB ? "PASS" : `MISS (+${(peakMb - TARGET_RSS_MB).toFixed(1)} MB)`,
      ],
    ];
    const markdown = [
      "### Data (backups and content copy)",
      "",
      mdTable(["what", "runs (ours vs reference)", "ratio (medians)", "target", "result"], rows),
      "",
      `copyDatabase pipes an uncompressed custom-format archive (\`pg_dump -Fc -Z0\`) into \`pg_restore --single-transaction\`; ` +
        `the reference pipe uses pg_dump's default compression. Both restore into a freshly created database each run, and both ` +
        `results are checked (row count and hash). copyPrefix lists source and target with the SDK and copies server-side with ` +
        `its own SigV4-signed CopyObject requests, 16 in flight; \`aws s3 sync\` (awscli ` +
        `${media ? "v2, 10 in flight by default" : "missing"}) also copies server-side. Each run copies into a fresh prefix and ` +
        `the copy is listed back (1,000 objects). Peak RSS: a node process running ` +
        `the compiled dumpToS3 (8 MiB parts, 3 in flight), sampled every 50 ms and the kernel's maxrss.`,
    ].join("\n");
    return { markdown };
  } finally {
    if (s3 && s3.child.exitCode === null) {
      process.kill(s3.child.pid!, "SIGTERM");
      await new Promise((r) => s3!.child.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
    for (const db of Object.values(dbs)) await sql("postgres", `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  }
}
