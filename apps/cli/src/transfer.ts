// Backups' parts between this machine and the control plane, streamed (never held in memory)
// with a progress line: a backup's archive down into a file, a file or a stream up as a backup.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import http from "node:http";
import https from "node:https";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { apiErrorOf, UnreachableError, type Client } from "./client.js";
import { bytes } from "./format.js";
import type { Io } from "./io.js";

/**
 * A byte count on stderr: on a terminal one line rewritten in place (at most 10 times a
 * second), else a line every few seconds; always a last line with the total.
 */
export class ProgressLine {
  // The first line after an interval: a small transfer shows its total only.
  private last = Date.now();
  private shown = false;
  private files?: number;
  constructor(
    private readonly io: Io,
    private readonly label: string,
    private readonly total?: number,
    private readonly intervalMs = io.errIsTTY ? 100 : 3000,
    /** With a count of files (media): how many there are, when known. */
    private readonly totalFiles?: number,
  ) {}

  private text(n: number): string {
    const of = this.total ? ` of ${bytes(this.total)} (${Math.floor((n / this.total) * 100)}%)` : "";
    const files = this.files === undefined ? "" : `${this.files}${this.totalFiles !== undefined ? ` of ${this.totalFiles}` : ""} file${(this.totalFiles ?? this.files) === 1 ? "" : "s"}, `;
    return `${this.label}: ${files}${bytes(n)}${of}`;
  }

  /** `n` bytes so far (and `files` files, for media). */
  update(n: number, files?: number): void {
    if (files !== undefined) this.files = files;
    const now = Date.now();
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    this.shown = true;
    this.io.err(this.io.errIsTTY ? `\r\x1b[K${this.text(n)}` : `${this.text(n)}\n`);
  }

  done(n: number, note = "", files?: number): void {
    if (files !== undefined) this.files = files;
    this.io.err(`${this.io.errIsTTY && this.shown ? "\r\x1b[K" : ""}${this.text(n)}${note}\n`);
  }
}

function counter(onChunk: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onChunk(chunk);
      cb(null, chunk);
    },
  });
}

export interface Downloaded {
  bytes: number;
  sha256: string;
  /** What the server says the archive's sha256 is (`x-slipway-sha256`), if it says. */
  expectedSha256?: string;
  /** Content-Length, if sent. */
  expectedBytes?: number;
}

/** GET `path` into `file` (mode 0600: it holds the data), counting and hashing what arrives. */
export async function downloadTo(client: Client, path: string, file: string, io: Io, label: string): Promise<Downloaded> {
  const res = await client.open(path, io.signal);
  const length = res.headers.get("content-length");
  const expectedBytes = length !== null && /^\d+$/.test(length) ? Number(length) : undefined;
  const expectedSha256 = res.headers.get("x-slipway-sha256") ?? undefined;
  const progress = new ProgressLine(io, label, expectedBytes);
  const hash = createHash("sha256");
  let n = 0;
  if (!res.body) throw new Error("the control plane sent no body");
  await pipeline(
    Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>),
    counter((chunk) => {
      n += chunk.length;
      hash.update(chunk);
      progress.update(n);
    }),
    createWriteStream(file, { mode: 0o600 }),
    ...(io.signal ? [{ signal: io.signal }] : []),
  );
  progress.done(n);
  return { bytes: n, sha256: hash.digest("hex"), ...(expectedSha256 ? { expectedSha256 } : {}), ...(expectedBytes !== undefined ? { expectedBytes } : {}) };
}

/**
 * POSTs `file` (of `size` bytes) as application/octet-stream to `path` and answers the API's
 * JSON, with a progress line of the bytes sent.
 */
export async function uploadFrom<T>(client: Client, path: string, file: string, size: number, io: Io, label: string): Promise<T> {
  const progress = new ProgressLine(io, label, size);
  let sent = 0;
  const source = createReadStream(file);
  source.on("data", (chunk: Buffer | string) => {
    sent += chunk.length;
    progress.update(sent);
  });
  const answer = await postStream<T>(client, path, source, { contentType: "application/octet-stream", length: size, io });
  progress.done(sent);
  return answer;
}

/**
 * POSTs `source` to `path` and answers the API's JSON: with its length declared when `length`
 * is given, else chunked. A refusal that arrives while the body is still being sent stops the
 * sending (`source` is destroyed) and is thrown as the API's error; so is an error of `source`.
 */
export function postStream<T>(client: Client, path: string, source: Readable, opts: { contentType: string; length?: number; io: Io }): Promise<T> {
  const { io } = opts;
  const target = new URL(`${client.baseUrl.replace(/\/+$/, "")}/v1${path}`);
  const lib = target.protocol === "https:" ? https : http;
  return new Promise<T>((resolve, reject) => {
    let answered = false;
    const req = lib.request(target, {
      method: "POST",
      headers: { authorization: `Bearer ${client.token}`, "content-type": opts.contentType, ...(opts.length !== undefined ? { "content-length": String(opts.length) } : {}) },
      ...(io.signal ? { signal: io.signal } : {}),
    });
    req.on("error", (err) => {
      if (answered) return;
      source.destroy();
      if (err.name === "AbortError" || io.signal?.aborted) return reject(err);
      reject(new UnreachableError(client.baseUrl, { cause: err }));
    });
    req.on("response", (res) => {
      answered = true;
      // An early refusal: nothing more to send.
      if (res.statusCode !== undefined && res.statusCode >= 400) source.unpipe(req);
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("error", reject);
      res.on("end", () => {
        source.destroy();
        if ((res.statusCode ?? 0) >= 400) {
          // The body was not sent in full: this connection is of no further use.
          req.destroy();
          return reject(apiErrorOf(res.statusCode ?? 0, text));
        }
        try {
          resolve(JSON.parse(text) as T);
        } catch {
          reject(new Error(`the control plane answered ${res.statusCode} with something that is not JSON`));
        }
      });
    });
    source.on("error", (err) => {
      req.destroy(err);
      if (!answered) reject(err);
    });
    source.pipe(req);
  });
}
