/**
 * Certificates served on the ingress's HTTPS bind, installed and replaced
 * through HAProxy's runtime API without a reload. Every change is written to
 * disk first (`<certs>/<name>.pem`, 0600, and the crt-list), so a reload or a
 * restart of HAProxy serves the same certificates.
 */
import { execFile } from "node:child_process";
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { pino, type Logger } from "pino";
import { StepFailure } from "@slipway/core";
import { isValidHostname } from "./haproxy.config.js";
import { readOrEmpty } from "./haproxy-process.js";
import type { CertificateInput, InstalledCertificate } from "./ingress.js";

const execFileAsync = promisify(execFile);

/** The part of the runtime API the store uses (HaproxyRuntime; a fake in unit tests). */
export interface TlsRuntime {
  command(cmd: string): Promise<string>;
  commandWithPayload(cmd: string, payload: string): Promise<string>;
}

// The certificate types are the Ingress interface's (ingress.ts), which this store implements.
export type { CertificateInput, InstalledCertificate } from "./ingress.js";

export interface TlsStoreOptions {
  certsDir: string;
  crtList: string;
  defaultCert: string;
  runtime: TlsRuntime;
  /** Runs one operation at a time together with the ingress's other changes (a reload must not meet a transaction). */
  serial?: <T>(fn: () => Promise<T>) => Promise<T>;
  logger?: Logger;
  now?: () => Date;
}

/** One line of the crt-list: a certificate file and the SNI names it answers. */
interface CrtListEntry {
  path: string;
  hostnames: string[];
}

const invalid = (msg: string) => new StepFailure("tls_invalid_certificate", msg, false);

/** Uppercase hex without leading zeros, the form HAProxy prints. */
export function normalizeSerial(serial: string): string {
  return serial.replace(/[^0-9a-fA-F]/g, "").toUpperCase().replace(/^0+(?=.)/, "");
}

/** A checked certificate, normalised to what HAProxy reads: the chain then a PKCS#8 key, no empty line. */
export interface ValidatedCertificate {
  hostnames: string[];
  pem: string;
  serial: string;
  notAfter: Date;
}

/** A certificate's name: a host name, or `*.` and a host name (a wildcard, matched by HAProxy's SNI filter for one label). */
export function isValidCertificateName(name: string): boolean {
  return isValidHostname(name.startsWith("*.") ? name.slice(2) : name);
}

/** The file of a certificate, after its first name: `*.` becomes `_wildcard.` ('_' starts no host name, so no clash). */
export function certificateFileName(firstName: string): string {
  return firstName.startsWith("*.") ? `_wildcard.${firstName.slice(2)}` : firstName;
}

/**
 * Checks an input before anything is touched: the PEM parses, the key is the certificate's,
 * every host name is valid and covered by the certificate's SANs (never its CN), and it has not expired.
 * Throws StepFailure("tls_invalid_certificate") with the reason.
 */
export function validateCertificate(input: CertificateInput, now: Date = new Date()): ValidatedCertificate {
  const hostnames = [...new Set((input.hostnames ?? []).map((h) => String(h).toLowerCase()))].sort();
  if (hostnames.length === 0) throw invalid("a certificate needs at least one host name");
  for (const h of hostnames) if (!isValidCertificateName(h)) throw invalid(`invalid host name '${h}'`);
  const blocks = String(input.certPem ?? "").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw invalid("the certificate is not PEM (no BEGIN CERTIFICATE block)");
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw invalid(`the certificate PEM does not parse: ${err instanceof Error ? err.message : String(err)}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: String(input.keyPem ?? ""), format: "pem" });
  } catch {
    throw invalid("the private key is not an unencrypted PEM private key");
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) throw invalid("the private key does not belong to the certificate");
  const notAfter = new Date(leaf.validTo);
  if (!(notAfter.getTime() > now.getTime())) throw invalid(`the certificate expired on ${leaf.validTo}`);
  const sans = (leaf.subjectAltName ?? "").split(",").map((s) => s.trim().toLowerCase());
  for (const h of hostnames) {
    // A wildcard name must be one of the certificate's own (checkHost matches host names, not patterns).
    const covered = h.startsWith("*.") ? sans.includes(`dns:${h}`) : leaf.checkHost(h, { subject: "never" }) !== undefined;
    if (!covered) throw invalid(`the certificate's names (${leaf.subjectAltName ?? "no subjectAltName"}) do not cover '${h}'`);
  }
  const keyPem = (key.export({ type: "pkcs8", format: "pem" }) as string).trim();
  const pem = [...chain.map((c) => c.toString().trim()), keyPem].join("\n") + "\n";
  return { hostnames, pem, serial: normalizeSerial(leaf.serialNumber), notAfter };
}

/** Parses a crt-list: `<file> [sni …]` per line; comments and blank lines skipped. */
export function parseCrtList(text: string): CrtListEntry[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const [file, ...snis] = l.split(/\s+/);
      return { path: file!, hostnames: snis };
    });
}

export function renderCrtList(entries: CrtListEntry[]): string {
  return entries.map((e) => [e.path, ...e.hostnames].join(" ")).join("\n") + "\n";
}

/** `show ssl cert <file>`: Serial and notAfter as HAProxy serves them. */
export function parseShowSslCert(text: string): { serial: string; notAfter: Date } | undefined {
  const serial = /^Serial:\s*([0-9A-Fa-f]+)\s*$/m.exec(text)?.[1];
  const notAfter = /^notAfter:\s*(.+?)\s*$/m.exec(text)?.[1];
  if (!serial || !notAfter) return undefined;
  return { serial: normalizeSerial(serial), notAfter: new Date(notAfter) };
}

async function writePrivate(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, content, { mode: 0o600 });
  await fs.chmod(tmp, 0o600);
  await fs.rename(tmp, file);
}

/**
 * Makes sure the files the HTTPS bind needs exist before HAProxy starts: a self-signed default
 * certificate (openssl, no shell; the key never leaves the 0700 directory) and a crt-list whose
 * first line is it (HAProxy refuses an empty crt-list). Lines whose certificate file is missing
 * are dropped (returned), since HAProxy would refuse the whole config. Idempotent.
 */
export async function ensureTlsFiles(opts: { certsDir: string; crtList: string; defaultCert: string }): Promise<{ dropped: string[] }> {
  const dropped: string[] = [];
  await fs.mkdir(opts.certsDir, { recursive: true, mode: 0o700 });
  await fs.chmod(opts.certsDir, 0o700);
  if ((await readOrEmpty(opts.defaultCert)) === "") {
    const keyFile = path.join(opts.certsDir, "_default.key.tmp");
    const crtFile = path.join(opts.certsDir, "_default.crt.tmp");
    try {
      await execFileAsync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650", "-subj", "/CN=slipway-default", "-keyout", keyFile, "-out", crtFile],
        { timeout: 30_000 },
      );
      const key = createPrivateKey(await fs.readFile(keyFile, "utf8")).export({ type: "pkcs8", format: "pem" }) as string;
      await writePrivate(opts.defaultCert, (await fs.readFile(crtFile, "utf8")).trim() + "\n" + key.trim() + "\n");
    } finally {
      await fs.rm(keyFile, { force: true });
      await fs.rm(crtFile, { force: true });
    }
  }
  const entries: CrtListEntry[] = [];
  for (const e of parseCrtList(await readOrEmpty(opts.crtList))) {
    if (e.path === opts.defaultCert) continue;
    // A line whose file is gone would keep HAProxy from starting at all (HTTP included).
    if ((await readOrEmpty(e.path)) === "") dropped.push(e.path);
    else entries.push(e);
  }
  const want = renderCrtList([{ path: opts.defaultCert, hostnames: [] }, ...entries]);
  if ((await readOrEmpty(opts.crtList)) !== want) await writePrivate(opts.crtList, want);
  return { dropped };
}

/**
 * The certificates of one ingress. install/remove are serialised (with the ingress's reloads
 * when `serial` is given) and idempotent; input is checked before anything is touched, and a
 * runtime failure leaves the previous certificate served (and restored on disk).
 */
export class TlsStore {
  private readonly o: TlsStoreOptions;
  private readonly log: Logger;
  private queue: Promise<unknown> = Promise.resolve();
  private changes = 0;

  /** Counts installs and removals: what is served may have changed when it moved. */
  get generation(): number {
    return this.changes;
  }

  constructor(opts: TlsStoreOptions) {
    this.o = opts;
    this.log = (opts.logger ?? pino({ level: "silent" })).child({ component: "tls-store" });
  }

  /**
   * Serves a certificate for its host names. A certificate for exactly the same host names is
   * replaced (`set` + `commit`: connections made from then on get the new one, open ones keep
   * theirs); a new one is added to the crt-list. Host names already served by another
   * certificate are refused (remove that one first). Resolves with what HAProxy serves.
   */
  install(input: CertificateInput): Promise<InstalledCertificate> {
    const now = this.o.now?.() ?? new Date();
    // Checked outside the queue: bad input fails at once and touches nothing.
    let cert: ValidatedCertificate;
    try {
      cert = validateCertificate(input, now);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.serial(() => this.doInstall(cert)).finally(() => void this.changes++);
  }

  /** Stops serving the certificate of exactly these host names; false when there is none. */
  remove(hostnames: string[]): Promise<boolean> {
    const want = [...new Set(hostnames.map((h) => h.toLowerCase()))].sort();
    return this.serial(async () => {
      const entries = await this.entries();
      const entry = entries.find((e) => sameNames(e.hostnames, want));
      if (!entry) return false;
      await writePrivate(this.o.crtList, renderCrtList([{ path: this.o.defaultCert, hostnames: [] }, ...entries.filter((e) => e !== entry)]));
      await this.expect(`del ssl crt-list ${this.o.crtList} ${entry.path}`, /deleted in crtlist/i);
      await this.expect(`del ssl cert ${entry.path}`, /deleted/i);
      await fs.rm(entry.path, { force: true });
      this.log.info({ hostnames: want, file: entry.path }, "certificate removed");
      this.changes++;
      return true;
    });
  }

  /** The installed certificates (not the default one) with the serial and expiry HAProxy serves. */
  list(): Promise<InstalledCertificate[]> {
    return this.serial(async () => {
      const out: InstalledCertificate[] = [];
      for (const e of await this.entries()) out.push({ ...(await this.served(e.path)), name: path.basename(e.path, ".pem"), path: e.path, hostnames: e.hostnames });
      return out;
    });
  }

  private async doInstall(cert: ValidatedCertificate): Promise<InstalledCertificate> {
    await fs.mkdir(this.o.certsDir, { recursive: true, mode: 0o700 });
    const entries = await this.entries();
    const same = entries.find((e) => sameNames(e.hostnames, cert.hostnames));
    const clash = entries.find((e) => e !== same && e.hostnames.some((h) => cert.hostnames.includes(h)));
    if (clash) {
      throw new StepFailure("tls_hostname_conflict", `host names ${clash.hostnames.filter((h) => cert.hostnames.includes(h)).join(", ")} are served by the certificate for ${clash.hostnames.join(", ")}: remove it first`, false);
    }
    const file = same?.path ?? path.join(this.o.certsDir, `${certificateFileName(cert.hostnames[0]!)}.pem`);
    const previous = await readOrEmpty(file);
    const started = Date.now();
    // Disk first, so a reload or restart from here on serves the new certificate.
    await writePrivate(file, cert.pem);
    if (!same) await writePrivate(this.o.crtList, renderCrtList([{ path: this.o.defaultCert, hostnames: [] }, ...entries, { path: file, hostnames: cert.hostnames }]));
    try {
      if (!same) await this.expect(`new ssl cert ${file}`, /new empty certificate store/i);
      await this.payload(`set ssl cert ${file}`, cert.pem, /transaction (created|updated)/i);
      await this.expect(`commit ssl cert ${file}`, /success/i);
      // Only after the commit: an empty certificate cannot be added to a crt-list.
      if (!same) await this.payload(`add ssl crt-list ${this.o.crtList}`, [file, ...cert.hostnames].join(" "), /success/i);
    } catch (err) {
      await this.rollback(file, previous, same ? undefined : entries);
      throw err;
    }
    const served = await this.served(file);
    if (served.serial !== cert.serial) {
      throw new StepFailure("tls_not_served", `HAProxy serves serial ${served.serial} for ${file}, not the installed ${cert.serial}`, true);
    }
    this.log.info({ hostnames: cert.hostnames, serial: served.serial, notAfter: served.notAfter.toISOString(), replaced: Boolean(same), ms: Date.now() - started }, same ? "certificate replaced" : "certificate installed");
    return { name: path.basename(file, ".pem"), path: file, hostnames: cert.hostnames, ...served };
  }

  /** Undoes a failed install: aborts the transaction, drops a certificate that was new, puts the files back. */
  private async rollback(file: string, previous: string, entriesBefore: CrtListEntry[] | undefined): Promise<void> {
    await this.o.runtime.command(`abort ssl cert ${file}`).catch(() => undefined);
    if (entriesBefore) {
      await this.o.runtime.command(`del ssl crt-list ${this.o.crtList} ${file}`).catch(() => undefined);
      await this.o.runtime.command(`del ssl cert ${file}`).catch(() => undefined);
      await writePrivate(this.o.crtList, renderCrtList([{ path: this.o.defaultCert, hostnames: [] }, ...entriesBefore]));
    }
    if (previous === "") await fs.rm(file, { force: true });
    else await writePrivate(file, previous);
  }

  private async served(file: string): Promise<{ serial: string; notAfter: Date }> {
    const out = await this.o.runtime.command(`show ssl cert ${file}`);
    const parsed = parseShowSslCert(out);
    if (!parsed) throw new StepFailure("tls_not_served", `HAProxy does not serve ${file}: ${out.trim().slice(0, 200)}`, true);
    return parsed;
  }

  private async entries(): Promise<CrtListEntry[]> {
    return parseCrtList(await readOrEmpty(this.o.crtList)).filter((e) => e.path !== this.o.defaultCert);
  }

  private async expect(cmd: string, ok: RegExp): Promise<void> {
    const out = await this.o.runtime.command(cmd);
    if (!ok.test(out)) throw new StepFailure("tls_runtime_refused", `HAProxy refused '${cmd}': ${out.trim().slice(0, 300)}`, true);
  }

  private async payload(cmd: string, payload: string, ok: RegExp): Promise<void> {
    const out = await this.o.runtime.commandWithPayload(cmd, payload);
    if (!ok.test(out)) throw new StepFailure("tls_runtime_refused", `HAProxy refused '${cmd} <<': ${out.trim().slice(0, 300)}`, true);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    if (this.o.serial) return this.o.serial(fn);
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function sameNames(a: string[], b: string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((h, i) => h === y[i]);
}
