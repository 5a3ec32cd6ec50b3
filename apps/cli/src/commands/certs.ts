// `slipway certs` (every stored certificate), `slipway certs upload --cert <file> --key <file>`
// and `slipway certs remove <id>`: certificates an admin uploads (issue 15).
import { readFile } from "node:fs/promises";
import { CommandError, UsageError } from "../config.js";
import { table } from "../format.js";
import { enc, print, type Command } from "./command.js";

/** A certificate as GET /v1/certificates shows it (never its key). */
export interface CertificateView {
  id: string;
  hostnames: string[];
  source: "acme" | "uploaded";
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  status: "pending" | "valid" | "failed" | "expired";
  lastError: string | null;
  uploadedBy: string | null;
}

const isoSeconds = (iso: string | null): string => (iso ? new Date(iso).toISOString().replace(/\.\d+Z$/, "Z") : "-");

/** The STATUS column: the state, with the reason of a failure. */
export function statusText(c: Pick<CertificateView, "status" | "lastError">): string {
  return c.lastError ? `${c.status}: ${c.lastError}` : c.status;
}

/** Reads a PEM file the user named; an unreadable one is a clear error, and nothing is sent. */
export async function readPemFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file" : e.code === "EACCES" ? "permission denied" : e.code === "EISDIR" ? "it is a folder" : e.message;
    throw new CommandError(`cannot read the ${what} file ${file}: ${why}; nothing was uploaded`);
  }
}

export const certsCommands: Command[] = [
  {
    name: "certs",
    args: [],
    summary: "Every stored certificate: names, source (uploaded or acme), status, validity, serial (never a key)",
    async run(ctx) {
      const list = await ctx.client().call<CertificateView[]>("GET", "/certificates");
      print(ctx, list, () =>
        table([["ID", "NAMES", "SOURCE", "STATUS", "VALID UNTIL", "SERIAL"], ...list.map((c) => [c.id, c.hostnames.join(","), c.source, statusText(c), isoSeconds(c.notAfter), c.serial ?? "-"])]),
      );
      return 0;
    },
  },
  {
    name: "certs upload",
    args: [],
    summary: "Upload a certificate and its key (admins): served for the DNS names it holds, a wildcard for one label; the same names again replace it",
    options: {
      cert: { type: "string", description: "PEM file with the certificate chain, the site's certificate first" },
      key: { type: "string", description: "PEM file with its private key (RSA or ECDSA, without a passphrase)" },
    },
    async run(ctx) {
      const { cert, key } = ctx.opts;
      if (typeof cert !== "string" || typeof key !== "string") throw new UsageError(`certs upload needs --cert <file> and --key <file> (missing: ${[typeof cert !== "string" ? "--cert" : "", typeof key !== "string" ? "--key" : ""].filter(Boolean).join(", ")})`);
      const body = { certificate: await readPemFile(cert, "certificate"), privateKey: await readPemFile(key, "key") };
      const r = await ctx.client().call("POST", "/certificates", body);
      print(ctx, r, () => {
        const c = r.certificate as CertificateView;
        const lines = [`${r.replaced ? "replaced" : "uploaded"} certificate ${c.id} for ${c.hostnames.join(", ")}: serial ${c.serial}, valid until ${isoSeconds(c.notAfter)}${r.replaced ? ` (it replaces serial ${r.replacedSerial})` : ""}`];
        if (typeof r.jobsQueued === "number") lines.push(r.jobsQueued > 0 ? `${r.jobsQueued} host update(s) queued: served without a redeploy` : "no environment serves these names yet: the next deployment of one that does serves it");
        return lines.map((l) => `${l}\n`).join("");
      });
      return 0;
    },
  },
  {
    name: "certs remove",
    args: ["id"],
    summary: "Remove an uploaded certificate (admins); certificates issued by ACME go with their domain",
    async run(ctx) {
      const c = await ctx.client().call<CertificateView>("DELETE", `/certificates/${enc(ctx.args[0]!)}`);
      print(ctx, c, () => `removed certificate ${c.id} for ${c.hostnames.join(", ")} (serial ${c.serial}): the hosts serving it take it off, or serve the names' ACME certificate instead\n`);
      return 0;
    },
  },
];
