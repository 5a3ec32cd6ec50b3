/**
 * Certificates an admin uploads (issue 15): checking what was uploaded, and which stored
 * certificate serves each host name. Pure functions, no I/O.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { InvalidRequestError, nameCovers } from "@slipway/core";
import { invalidHostname, normalizeHostnames } from "./renewal-policy.js";

/** An uploaded certificate that passed every check, in the form it is stored. */
export interface CheckedCertificate {
  /** The leaf's DNS names (subjectAltName), lower-case, sorted; wildcards kept (`*.example.com`). */
  hostnames: string[];
  /** The chain re-encoded as PEM, leaf first (text around the blocks dropped). */
  chainPem: string;
  /** The key as unencrypted PKCS#8 PEM. */
  keyPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  keyType: "rsa" | "ec";
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/;

function refuse(field: "certificate" | "privateKey", problem: string): never {
  throw new InvalidRequestError(`${field}: ${problem}`, { details: { [field]: problem } });
}

/**
 * Checks an upload and returns what to store; throws InvalidRequestError (400, `details` naming
 * the field) for: no PEM certificate or key, a block that does not parse, an encrypted key, a key
 * that is neither RSA nor ECDSA, a chain out of order, a key that does not match the leaf, a leaf
 * expired or not valid yet at `now`, no DNS name in its subjectAltName, a name that is not one.
 */
export function checkUpload(certificatePem: string, privateKeyPem: string, now: Date): CheckedCertificate {
  const blocks = certificatePem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) refuse("certificate", "not a PEM certificate: expected the chain as -----BEGIN CERTIFICATE----- blocks, the leaf first");
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      return refuse("certificate", `block ${i + 1} of ${blocks.length} is not a valid X.509 certificate`);
    }
  });
  const leaf = chain[0]!;

  const keyBlock = KEY_BLOCK.exec(privateKeyPem);
  if (!keyBlock) refuse("privateKey", "not a PEM private key: expected a -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY) block");
  if (keyBlock[1] === "ENCRYPTED PRIVATE KEY") refuse("privateKey", "the key is encrypted: upload it without a passphrase (openssl pkey -in key.pem -out key-plain.pem)");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyBlock[0], format: "pem" });
  } catch {
    refuse("privateKey", "the PEM block is not a private key that can be read");
  }
  const keyType = key.asymmetricKeyType;
  if (keyType !== "rsa" && keyType !== "ec") refuse("privateKey", `a ${keyType ?? "unknown"} key: only RSA and ECDSA keys are accepted`);

  if (!leaf.checkPrivateKey(key)) {
    const other = chain.findIndex((c, i) => i > 0 && c.checkPrivateKey(key));
    refuse("privateKey", other > 0 ? `the key belongs to certificate ${other + 1} of the chain, not the first: put the leaf (the site's certificate) first` : "the key does not match the certificate (the first one of the chain)");
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!)) refuse("certificate", `the chain is out of order: certificate ${i + 2} did not issue certificate ${i + 1} (the leaf first, then the certificate that issued it, and so on)`);
  }

  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now.getTime() < notBefore.getTime()) refuse("certificate", `not valid yet: valid from ${notBefore.toISOString()}`);
  if (now.getTime() >= notAfter.getTime()) refuse("certificate", `expired on ${notAfter.toISOString()}`);

  const dnsNames = dnsNamesOf(leaf);
  if (dnsNames.length === 0) refuse("certificate", "the certificate names no DNS name in its subjectAltName (a common name alone is not used by browsers)");
  const hostnames = normalizeHostnames(dnsNames);
  const bad = invalidHostname(hostnames);
  if (bad !== undefined) refuse("certificate", `'${bad}' in its subjectAltName is not a host name this platform serves (a DNS name, or *. and a DNS name)`);

  return {
    hostnames,
    chainPem: chain.map((c) => c.toString().trim()).join("\n") + "\n",
    keyPem: key.export({ type: "pkcs8", format: "pem" }).toString(),
    serial: leaf.serialNumber,
    notBefore,
    notAfter,
    keyType,
  };
}

/** The DNS names of a certificate's subjectAltName ("DNS:a, DNS:b, IP Address:…"; quoted when unusual). */
export function dnsNamesOf(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  const out: string[] = [];
  for (const m of san.matchAll(/(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = m[1]!;
    out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return out;
}

export { nameCovers };

/** What the choice reads of a stored certificate row. */
export interface Candidate {
  id: string;
  source: "acme" | "uploaded";
  hostnames: string[];
  status: "pending" | "valid" | "failed";
  hasChain: boolean;
  notAfter: Date | null;
}

/** Valid at `now`: a stored chain, status valid and not expired. */
export function servable(c: Candidate, now: Date): boolean {
  return c.status === "valid" && c.hasChain && c.notAfter !== null && c.notAfter.getTime() > now.getTime();
}

/**
 * Which certificate serves each of `hostnames`, so an agent gets one certificate per name:
 * a valid uploaded certificate covering the name wins over the name's ACME certificate (the
 * admin uploaded it on purpose); among uploaded ones, those covering more of the names, then the
 * one valid longest; a certificate already chosen for one name serves every name it covers.
 * Names no valid certificate covers are absent from the map.
 */
export function chooseCertificates<T extends Candidate>(hostnames: readonly string[], candidates: readonly T[], now: Date): Map<string, T> {
  const names = normalizeHostnames(hostnames);
  const chosen = new Map<string, T>();
  const covers = (c: T, n: string) => c.hostnames.some((h) => nameCovers(h, n));
  const uploaded = candidates
    .filter((c) => c.source === "uploaded" && servable(c, now))
    .map((c) => ({ c, count: names.filter((n) => covers(c, n)).length }))
    .filter((x) => x.count > 0)
    .sort((a, b) => b.count - a.count || b.c.notAfter!.getTime() - a.c.notAfter!.getTime() || a.c.id.localeCompare(b.c.id));
  for (const { c } of uploaded) {
    const open = names.filter((n) => !chosen.has(n) && covers(c, n));
    for (const n of open) chosen.set(n, c);
  }
  // ACME: the name's own certificate, else a wildcard one covering it (DNS-01), the one valid longest.
  const acme = candidates.filter((c) => c.source === "acme" && servable(c, now));
  for (const n of names) {
    if (chosen.has(n)) continue;
    const best = acme
      .filter((c) => covers(c, n))
      .sort((a, b) => Number(b.hostnames.includes(n)) - Number(a.hostnames.includes(n)) || b.notAfter!.getTime() - a.notAfter!.getTime())[0];
    if (best) chosen.set(n, best);
  }
  return chosen;
}

/**
 * Each host name kept on one row only (/metrics: one expiry series per name): a valid uploaded
 * certificate first, then the one valid longest.
 */
export function servedOnce<T extends { hostnames: string[]; not_after: Date | null; source: "acme" | "uploaded" }>(rows: readonly T[], now: Date): T[] {
  const rank = (r: T) => [r.source === "uploaded" && (r.not_after?.getTime() ?? 0) > now.getTime() ? 1 : 0, r.not_after?.getTime() ?? 0] as const;
  const winner = new Map<string, T>();
  for (const r of rows) {
    for (const h of r.hostnames) {
      const w = winner.get(h);
      if (!w) winner.set(h, r);
      else {
        const [a, b] = [rank(r), rank(w)];
        if (a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])) winner.set(h, r);
      }
    }
  }
  return rows.map((r) => ({ ...r, hostnames: r.hostnames.filter((h) => winner.get(h) === r) })).filter((r) => r.hostnames.length > 0);
}
