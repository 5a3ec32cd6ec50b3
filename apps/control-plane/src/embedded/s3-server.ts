import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "@slipway/core";
import { stopChild } from "./child.js";

export interface EmbeddedS3 {
  /** The endpoint as seen from the host (loopback or the bind address). */
  endpoint: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** s3rver's fixed credentials: it verifies signatures against these only. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

/**
 * Starts an embedded S3 server (s3rver) as a child process with its data in
 * `<dataDir>/<name>`. It binds `address` (the media server binds all addresses
 * so containers reach it through the host gateway; the backup server binds
 * loopback only).
 */
export async function startEmbeddedS3(opts: { dataDir: string; name: string; address: string; port: number; buckets: string[]; log: Logger }): Promise<EmbeddedS3> {
  const dir = path.join(opts.dataDir, opts.name);
  mkdirSync(dir, { recursive: true });
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "s3-server.main.js");
  // stdin is a pipe only so that the child sees it close when the control plane dies, even by SIGKILL.
  const child = spawn(process.execPath, ["--openssl-legacy-provider", main, dir, opts.address, String(opts.port), opts.buckets.join(",")], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`embedded S3 server did not start within 20 s: ${stderr}`)), 20_000);
    child.stdout!.on("data", (b: Buffer) => {
      const m = /listening (\d+)/.exec(b.toString());
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`embedded S3 server exited with code ${code}: ${stderr}`));
    });
  });
  const host = opts.address === "0.0.0.0" || opts.address === "::" ? "127.0.0.1" : opts.address;
  opts.log.info({ port, pid: child.pid, dir, address: opts.address, buckets: opts.buckets }, opts.name === "s3" ? "embedded S3 server started" : `embedded S3 server started (${opts.name})`);
  return {
    endpoint: `http://${host}:${port}`,
    port,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}
