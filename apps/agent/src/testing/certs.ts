// Self-signed certificates for tests, made with openssl (no shell): a leaf for given SANs and serial.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import type { TlsCertificate } from "@slipway/proto";
import { normalizeSerial } from "../ingress/tls-store.js";

const run = promisify(execFile);

/** A directory for test certificates; remove it with `fs.rm(dir, { recursive: true })`. */
export function certDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), "slw-certs-"));
}

/** A self-signed EC leaf for `sans` with serial 0x`serial` (hex), valid `days` days, as a spec carries it. */
export async function testCertificate(dir: string, sans: string[], serial: string, days = 2): Promise<TlsCertificate> {
  const base = path.join(dir, `leaf-${serial}`);
  await run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", String(days), "-set_serial", `0x${serial}`,
    "-subj", `/CN=${sans[0]!.replace(/^\*\./, "wild.")}`, "-addext", `subjectAltName=${sans.map((s) => `DNS:${s}`).join(",")}`, "-keyout", `${base}.key`, "-out", `${base}.crt`,
  ]);
  return { hostnames: sans, certPem: await fs.readFile(`${base}.crt`, "utf8"), keyPem: await fs.readFile(`${base}.key`, "utf8") };
}

/** The certificate served for `servername` on a new connection to 127.0.0.1:port (verified against `ca` when given). */
export function served(port: number, servername: string, ca?: Buffer): Promise<{ serial: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: "127.0.0.1", port, servername, ...(ca ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: false }) }, () => {
      const cert = sock.getPeerCertificate();
      sock.destroy();
      resolve({ serial: normalizeSerial(cert.serialNumber), cn: String(cert.subject?.CN ?? "") });
    });
    sock.setTimeout(5000, () => sock.destroy(new Error("TLS handshake timed out")));
    sock.on("error", reject);
  });
}

/** A plain HTTP GET through the ingress's HTTP port with a Host header: its status and body. */
export function httpGet(port: number, host: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, agent: false, headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
  });
}
