import { cpSync, existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./platform.js";

/** The pure-JS `pg` driver and its dependencies, copied into a test app's repository. */
const PG_MODULES = ["pg", "pg-connection-string", "pg-pool", "pg-protocol", "pg-types", "pgpass", "split2", "pg-int8", "postgres-array", "postgres-bytea", "postgres-date", "postgres-interval", "xtend", "pg-cloudflare"];

export function vendorPg(dir: string): void {
  for (const m of PG_MODULES) {
    const src = path.join(repoRoot, "node_modules", m);
    if (existsSync(src)) cpSync(src, path.join(dir, "node_modules", m), { recursive: true, dereference: true });
  }
}

/**
 * A Node app that reads and writes its own database and media only through
 * DATABASE_URL and DEFAULT_STORAGE_DSN, as a user's app would:
 *   GET /write?rows=N&objects=M&tag=T  inserts N rows and uploads M objects
 *   GET /checksum                      {count, rows: md5 of all rows, objects: {key: sha256}}
 */
export const dataAppFiles: Record<string, string> = {
  Dockerfile: ["FROM slipway/node:20", "WORKDIR /app", "COPY . /app", "EXPOSE 3000", 'CMD ["node", "server.js"]', ""].join("\n"),
  "server.js": String.raw`
const http = require("http");
const crypto = require("crypto");
const { Client } = require("pg");

const dsn = new URL(process.env.DEFAULT_STORAGE_DSN);
const s3 = {
  key: decodeURIComponent(dsn.username),
  secret: decodeURIComponent(dsn.password),
  bucket: dsn.hostname,
  prefix: dsn.pathname.slice(1),
  endpoint: new URL(dsn.searchParams.get("endpoint")),
  region: dsn.searchParams.get("region"),
};
const sha = (d) => crypto.createHash("sha256").update(d).digest("hex");
const hmac = (k, d) => crypto.createHmac("sha256", k).update(d).digest();

// AWS Signature V4, path-style, enough for PUT/GET/LIST.
function s3request(method, key, query, body) {
  const now = new Date().toISOString().replace(/[:-]|\.\d{3}/g, "");
  const date = now.slice(0, 8);
  const pathname = "/" + s3.bucket + "/" + key.split("/").map(encodeURIComponent).join("/");
  const qs = Object.keys(query).sort().map((k) => encodeURIComponent(k) + "=" + encodeURIComponent(query[k])).join("&");
  const payloadHash = sha(body || "");
  const host = s3.endpoint.host;
  const headers = { host, "x-amz-content-sha256": payloadHash, "x-amz-date": now };
  const signed = Object.keys(headers).sort();
  const canonical = [method, pathname, qs, signed.map((h) => h + ":" + headers[h] + "\n").join(""), signed.join(";"), payloadHash].join("\n");
  const scope = date + "/" + s3.region + "/s3/aws4_request";
  const toSign = ["AWS4-HMAC-SHA256", now, scope, sha(canonical)].join("\n");
  const kSigning = hmac(hmac(hmac(hmac("AWS4" + s3.secret, date), s3.region), "s3"), "aws4_request");
  headers.authorization = "AWS4-HMAC-SHA256 Credential=" + s3.key + "/" + scope + ", SignedHeaders=" + signed.join(";") + ", Signature=" + crypto.createHmac("sha256", kSigning).update(toSign).digest("hex");
  if (body) headers["content-length"] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: s3.endpoint.hostname, port: s3.endpoint.port, method, path: pathname + (qs ? "?" + qs : ""), headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => (res.statusCode >= 300 ? reject(new Error("S3 " + method + " " + key + ": " + res.statusCode + " " + Buffer.concat(chunks))) : resolve(Buffer.concat(chunks))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function listKeys() {
  const keys = [];
  let token;
  do {
    const q = { "list-type": "2", prefix: s3.prefix };
    if (token) q["continuation-token"] = token;
    const xml = (await s3request("GET", "", q)).toString();
    for (const m of xml.matchAll(/<Key>([^<]+)<\/Key>/g)) keys.push(m[1]);
    const t = /<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(xml);
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml) && t ? t[1] : undefined;
  } while (token);
  return keys;
}

async function db(fn) {
  const c = new Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  try {
    if (url.pathname === "/write") {
      const rows = Number(url.searchParams.get("rows") || 0), objects = Number(url.searchParams.get("objects") || 0), tag = url.searchParams.get("tag") || "x";
      await db(async (c) => {
        await c.query("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, tag text NOT NULL, payload bytea NOT NULL)");
        for (let i = 0; i < rows; i++) await c.query("INSERT INTO items (tag, payload) VALUES ($1, $2)", [tag + "-" + i, crypto.randomBytes(64)]);
      });
      for (let i = 0; i < objects; i++) await s3request("PUT", s3.prefix + "media/" + tag + "-" + i + ".bin", {}, crypto.randomBytes(512 + i));
      res.end(JSON.stringify({ rows, objects }));
    } else if (url.pathname === "/checksum") {
      const rows = await db(async (c) => {
        const t = await c.query("SELECT to_regclass('items') AS t");
        if (!t.rows[0].t) return { count: 0, md5: "" };
        const r = await c.query("SELECT count(*)::int AS n, coalesce(md5(string_agg(id || ':' || tag || ':' || encode(payload, 'hex'), ',' ORDER BY id)), '') AS h FROM items");
        return { count: r.rows[0].n, md5: r.rows[0].h };
      });
      const objects = {};
      for (const k of await listKeys()) objects[k.slice(s3.prefix.length)] = sha(await s3request("GET", k, {}));
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ count: rows.count, rows: rows.md5, objects }));
    } else {
      res.end("data app " + process.env.STAGE);
    }
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err && err.stack || err));
  }
}).listen(3000);
`,
};
