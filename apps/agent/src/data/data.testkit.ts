import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Location } from "@slipway/proto";
import pg from "pg";
import { listAll, makeS3Client, normalizePrefix } from "./s3.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";
export const dbUrl = (name: string) => `postgres://postgres@127.0.0.1:5432/${name}`;
export const rand = () => randomBytes(4).toString("hex");

// s3rver in its own node, with the legacy OpenSSL provider its ListObjectsV2 pagination needs on Node 20.
const S3RVER_MAIN = `
const [dir, buckets] = process.argv.slice(1);
import("s3rver").then(async ({ default: S3rver }) => {
  const server = new S3rver({ directory: dir, address: "127.0.0.1", port: 0, silent: true,
    configureBuckets: buckets.split(",").map((name) => ({ name, configs: [] })) });
  const info = await server.run();
  process.stdout.write("listening " + info.port + "\\n");
  const stop = () => server.close().then(() => process.exit(0), () => process.exit(1));
  process.on("SIGTERM", stop);
});
`;

export interface S3rverHandle {
  endpoint: string;
  pid: number;
  location(bucket: string, prefix: string): S3Location;
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once("exit", () => r()));
}

/** A real s3rver on a random loopback port, its data in a temp dir; stop() ends it by PID and removes the dir. */
export async function startS3rver(buckets: string[]): Promise<S3rverHandle> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-s3rver-"));
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "-e", S3RVER_MAIN, dir, buckets.join(",")], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let errText = "";
  child.stderr!.on("data", (d: Buffer) => (errText += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${errText}`)), 15_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited (${code}): ${errText}`));
    });
  }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    pid: child.pid!,
    location: (bucket, prefix) => ({
      endpoint,
      region: "us-east-1",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      bucket,
      prefix,
      forcePathStyle: true,
    }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, "SIGTERM");
        const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, "SIGKILL"), 5_000);
        await exited(child);
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function withDb<T>(name: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: dbUrl(name) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export const createDb = (name: string) => adminQuery(`CREATE DATABASE "${name}"`);
export const dropDb = (name: string) => adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);

/** The app table used by the tests: text, bytea and a sequence. */
export async function fillItems(name: string, rows: number, salt: string): Promise<void> {
  await withDb(name, (c) =>
    c.query(`
      CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, title text NOT NULL, body bytea, note text);
      CREATE INDEX IF NOT EXISTS items_title ON items (title);
      INSERT INTO items (title, body, note)
        SELECT '${salt} ' || g || ' ünïcødé ''quoted''', decode(md5('${salt}' || g) || md5(g::text), 'hex'), CASE WHEN g % 7 = 0 THEN NULL ELSE repeat(md5(g::text), 3) END
        FROM generate_series(1, ${rows}) g;`),
  );
}

/** An md5 over every row in order, and the row count: equal digests mean identical content. */
export async function itemsDigest(name: string): Promise<{ rows: number; md5: string; nextId: string }> {
  return withDb(name, async (c) => {
    const r = await c.query<{ rows: string; md5: string }>(
      `SELECT count(*) AS rows, md5(coalesce(string_agg(i::text, '|' ORDER BY id), '')) AS md5 FROM items i`,
    );
    const s = await c.query<{ last_value: string }>(`SELECT last_value FROM items_id_seq`);
    return { rows: Number(r.rows[0].rows), md5: r.rows[0].md5, nextId: s.rows[0].last_value };
  });
}

export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Puts `count` objects of pseudo-random bytes (sizes vary) under loc.prefix; returns relative key → sha256. */
export async function putObjects(loc: S3Location, count: number, size: (i: number) => number, keyOf = (i: number) => `file-${i}.bin`): Promise<Map<string, string>> {
  const client = makeS3Client(loc);
  const out = new Map<string, string>();
  try {
    const prefix = normalizePrefix(loc.prefix);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const body = randomBytes(size(i));
        const rel = keyOf(i);
        await client.send(new PutObjectCommand({ Bucket: loc.bucket, Key: prefix + rel, Body: body, ContentType: "application/octet-stream" }));
        out.set(rel, sha256(body));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return out;
  } finally {
    client.destroy();
  }
}

/** Reads every object under loc.prefix back: relative key → sha256 of its bytes. */
export async function readDigests(loc: S3Location): Promise<Map<string, string>> {
  const client = makeS3Client(loc);
  const prefix = normalizePrefix(loc.prefix);
  try {
    const out = new Map<string, string>();
    for (const o of await listAll(client, loc)) {
      const got = await client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: o.key }));
      out.set(o.key.slice(prefix.length), sha256(await got.Body!.transformToByteArray()));
    }
    return out;
  } finally {
    client.destroy();
  }
}

/** A reporter that records everything, for assertions. */
export function recordingReporter() {
  const events: { kind: string; value: unknown; at: number }[] = [];
  const push = (kind: string, value: unknown) => events.push({ kind, value, at: performance.now() });
  return {
    events,
    lines: () => events.filter((e) => e.kind === "log").map((e) => e.value as string),
    heading: (t: string) => push("log", `===== ${t} =====`),
    logLine: (t: string) => push("log", t),
    step: (name: string, state: string) => push("step", { name, state }),
    progress: (p: { phase: string; bytes: number; objects: number }) => push("progress", p),
    backup: (f: unknown) => push("backup", f),
    result: (state: string, info: { error?: unknown }) => push("result", { state, error: info.error }),
  };
}
