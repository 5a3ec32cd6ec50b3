/**
 * Applies the HTTPS part of a job's spec (issue 15) to this host's ingress: the ACME account
 * thumbprint and the certificates of the environment's host names, and removes the certificates
 * an environment no longer needs. Never throws: HTTPS trouble is written to the job's log and
 * the deployment or routes job goes on (the site stays on HTTP and its previous certificate).
 */
import { X509Certificate } from "node:crypto";
import type { TlsCertificate } from "@slipway/proto";
import { nameCovers, toFailure, type Logger } from "@slipway/core";
import type { Ingress, InstalledCertificate } from "../ingress/ingress.js";
import { normalizeSerial } from "../ingress/tls-store.js";

/** What a job's spec carries for HTTPS (DeploySpec and EnvironmentSpec alike). */
export interface TlsSpec {
  certificates: TlsCertificate[];
  /** "" = none yet. */
  acmeThumbprint: string;
  /** Redirect HTTP to HTTPS (308) for the host names whose certificate is served. */
  httpsRedirect?: boolean;
  /** With the redirect: Strict-Transport-Security max-age on HTTPS responses (0 = none). */
  hstsMaxAgeSeconds?: number;
}

/** The HTTPS part of a DeploySpec or EnvironmentSpec (empty from an older control plane). */
export function tlsSpecOf(spec: { certificates?: TlsCertificate[]; acmeThumbprint?: string; httpsRedirect?: boolean; hstsMaxAgeSeconds?: number }): TlsSpec {
  return { certificates: spec.certificates ?? [], acmeThumbprint: spec.acmeThumbprint ?? "", httpsRedirect: spec.httpsRedirect ?? false, hstsMaxAgeSeconds: spec.hstsMaxAgeSeconds ?? 0 };
}

/** The host names of a certificate as the ingress keys it: lowercase, unique, sorted. */
export function certificateKey(hostnames: string[]): string[] {
  return [...new Set(hostnames.map((h) => h.toLowerCase()))].sort();
}

export function sameKey(a: string[], b: string[]): boolean {
  const x = certificateKey(a);
  const y = certificateKey(b);
  return x.length === y.length && x.every((h, i) => h === y[i]);
}

export { nameCovers };

/** The leaf's serial as HAProxy prints it (uppercase hex, no leading zeros). */
export function serialOf(certPem: string): string {
  const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(certPem)?.[0];
  if (!leaf) throw new Error("the certificate is not PEM (no BEGIN CERTIFICATE block)");
  return normalizeSerial(new X509Certificate(leaf).serialNumber);
}

export interface ApplyTlsArgs {
  ingress: Pick<Ingress, "tls" | "setAcmeThumbprint" | "setHttpsHosts">;
  /** The environment's ingress backend (its host names' HTTPS redirect is set on it). */
  backend: string;
  tls: TlsSpec | undefined;
  /** The host names the environment serves now. */
  hostnames: string[];
  /** The certificates (by host names) this environment's specs installed or found served before. */
  owned: string[][];
  /** Whether another environment on this host recorded the certificate of these host names. */
  ownedElsewhere: (key: string[]) => boolean;
  logLine: (line: string) => void;
  log: Logger;
}

const reasonOf = (err: unknown) => toFailure(err).message;
const dateOf = (d: Date) => (Number.isNaN(d.getTime()) ? "unknown" : d.toISOString());
const describe = (c: Pick<InstalledCertificate, "serial" | "notAfter">) => `serial ${c.serial}, valid until ${dateOf(c.notAfter)}`;

/**
 * Sets the thumbprint (when given), installs each certificate of the spec the ingress does not
 * already serve with the same serial (replacing one of another serial), then removes the
 * certificates this environment owned whose host names it no longer serves, unless another
 * environment recorded them too. Resolves with what the environment owns from now on.
 */
export async function applyTls(a: ApplyTlsArgs): Promise<string[][]> {
  const { ingress, logLine, log } = a;
  const owned = a.owned.map(certificateKey);
  const add = (key: string[]) => {
    if (!owned.some((k) => sameKey(k, key))) owned.push(key);
  };
  const thumbprint = a.tls?.acmeThumbprint ?? "";
  if (thumbprint !== "") {
    try {
      await ingress.setAcmeThumbprint(thumbprint);
    } catch (err) {
      log.warn({ failure: toFailure(err) }, "ACME thumbprint not set");
      logLine(`ACME challenges not answered on this host: ${reasonOf(err)}`);
    }
  }
  const certs = a.tls?.certificates ?? [];
  const store = ingress.tls;
  if (certs.length > 0 && !store) {
    logLine(`HTTPS is off on this host (SLIPWAY_INGRESS_HTTPS_PORT not set): ${certs.length} certificate(s) not installed`);
  } else if (certs.length > 0 && store) {
    let served: InstalledCertificate[] | undefined;
    try {
      served = await store.list();
    } catch (err) {
      log.warn({ failure: toFailure(err) }, "cannot list the served certificates");
      logLine(`certificates not installed: cannot read what the ingress serves (${reasonOf(err)}); the site stays on HTTP and the previous certificate, if any`);
    }
    for (const cert of served ? certs : []) {
      const key = certificateKey(cert.hostnames);
      const names = key.join(", ") || "(no host names)";
      try {
        const serial = serialOf(cert.certPem);
        const current = served!.find((c) => sameKey(c.hostnames, key));
        if (current && current.serial === serial) {
          add(key);
          logLine(`certificate for ${names} already served (${describe(current)})`);
          continue;
        }
        const installed = await store.install({ hostnames: key, certPem: cert.certPem, keyPem: cert.keyPem });
        add(key);
        log.info({ hostnames: key, serial: installed.serial, notAfter: dateOf(installed.notAfter), replaced: current?.serial }, current ? "certificate replaced" : "certificate installed");
        logLine(current ? `certificate for ${names} replaced: serial ${current.serial} → ${describe(installed)}` : `certificate for ${names} installed (${describe(installed)})`);
      } catch (err) {
        log.warn({ hostnames: key, failure: toFailure(err) }, "certificate not installed");
        logLine(`certificate for ${names} not installed: ${reasonOf(err)}; the site stays on HTTP and the previous certificate, if any`);
      }
    }
  }
  // A spec lists every certificate the control plane holds for the names: one it no longer lists
  // (an uploaded certificate removed, an ACME one replaced by an upload or expired) goes too.
  const served = (key: string[]) => key.some((n) => a.hostnames.some((h) => nameCovers(n, h)));
  const listed = (key: string[]) => !a.tls || certs.some((c) => sameKey(c.hostnames, key));
  const left = await releaseTls({
    ...a,
    owned,
    keep: (key) => served(key) && listed(key),
    why: (key) => (served(key) ? "the control plane no longer holds it for these host names" : "this environment no longer serves these host names"),
  });
  if (a.tls) await applyHttpsRedirect(a, a.tls);
  return left;
}

/**
 * The spec's redirect and HSTS setting, for the host names whose certificate the ingress serves
 * now (a name without one stays on HTTP: redirecting it would send browsers to a certificate
 * error). Logged, never thrown.
 */
async function applyHttpsRedirect(a: ApplyTlsArgs, tls: TlsSpec): Promise<void> {
  const { ingress, logLine, log } = a;
  try {
    const served = tls.httpsRedirect && ingress.tls ? await ingress.tls.list() : [];
    const covered = a.hostnames.filter((h) => served.some((c) => c.hostnames.some((n) => nameCovers(n, h))));
    const hsts = tls.hstsMaxAgeSeconds ?? 0;
    await ingress.setHttpsHosts(a.backend, Object.fromEntries(covered.map((h) => [h.toLowerCase(), hsts])));
    if (!tls.httpsRedirect) return;
    const uncovered = a.hostnames.filter((h) => !covered.includes(h));
    if (!ingress.tls) logLine("HTTPS redirect not applied: HTTPS is off on this host (SLIPWAY_INGRESS_HTTPS_PORT not set)");
    else if (covered.length > 0) logLine(`HTTP → HTTPS (308) for ${covered.join(", ")}${hsts > 0 ? `; HSTS max-age ${hsts} s` : ""}`);
    if (ingress.tls && uncovered.length > 0) logLine(`no HTTPS redirect yet for ${uncovered.join(", ")}: no certificate served for ${uncovered.length === 1 ? "it" : "them"}`);
  } catch (err) {
    log.warn({ failure: toFailure(err) }, "HTTPS redirect not applied");
    logLine(`HTTPS redirect not applied: ${reasonOf(err)}`);
  }
}

/**
 * Removes from the ingress the owned certificates `keep` rejects (default: all), unless another
 * environment recorded them; resolves with what stays owned (a removal that failed stays, so the
 * next job tries again).
 */
export async function releaseTls(a: Omit<ApplyTlsArgs, "tls" | "hostnames" | "backend"> & { keep?: (key: string[]) => boolean; why?: (key: string[]) => string }): Promise<string[][]> {
  const { ingress, logLine, log } = a;
  const left: string[][] = [];
  for (const key of a.owned.map(certificateKey)) {
    if (a.keep?.(key)) {
      left.push(key);
      continue;
    }
    const names = key.join(", ");
    if (a.ownedElsewhere(key)) {
      logLine(`certificate for ${names} kept: another environment on this host uses it`);
      continue;
    }
    if (!ingress.tls) continue;
    try {
      const removed = await ingress.tls.remove(key);
      log.info({ hostnames: key, removed }, "certificate released");
      if (removed) logLine(`certificate for ${names} removed: ${a.why?.(key) ?? "this environment no longer serves these host names"}`);
    } catch (err) {
      left.push(key);
      log.warn({ hostnames: key, failure: toFailure(err) }, "certificate not removed");
      logLine(`certificate for ${names} not removed: ${reasonOf(err)}`);
    }
  }
  return left;
}
