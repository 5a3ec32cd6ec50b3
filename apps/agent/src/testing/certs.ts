// Self-signed certificates for tests, made with openssl (no shell): a leaf for given SANs and serial.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { TlsCertificate } from "@slipway/proto";

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
