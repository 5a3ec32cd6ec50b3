/**
 * Tests only: a throw-away certificate authority made with the `openssl` command line (a root,
 * an intermediate, and leaves it issues), for the tests of uploaded certificates. Nothing is
 * checked in: every key is generated in a temporary folder that `remove()` deletes.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface IssuedLeaf {
  /** The leaf alone. */
  certPem: string;
  /** Leaf, then the intermediate that issued it. */
  chainPem: string;
  keyPem: string;
}

export interface TestCa {
  dir: string;
  /** The root (what a client trusts). */
  rootPem: string;
  rootFile: string;
  intermediatePem: string;
  /**
   * A leaf issued by the intermediate: `dns` become its subjectAltName (none: no extension),
   * `key` rsa (2048) or ec (P-256), `serial` in hex, valid for `days` from now.
   */
  issue(opts: { dns?: string[]; key?: "rsa" | "ec"; serial?: string; days?: number; cn?: string }): IssuedLeaf;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function keyArgs(kind: "rsa" | "ec"): string[] {
  return kind === "rsa" ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] : ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
}

export function createTestCa(name = "Slipway Test CA"): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-test-ca-"));
  const caExt = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n";
  writeFileSync(path.join(dir, "ca.ext"), caExt);
  openssl(["genpkey", ...keyArgs("ec"), "-out", "root.key"], dir);
  openssl(["req", "-x509", "-new", "-key", "root.key", "-subj", `/CN=${name} Root`, "-days", "3", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "root.pem"], dir);
  openssl(["genpkey", ...keyArgs("ec"), "-out", "int.key"], dir);
  openssl(["req", "-new", "-key", "int.key", "-subj", `/CN=${name} Intermediate`, "-out", "int.csr"], dir);
  openssl(["x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "0x1001", "-days", "3", "-extfile", "ca.ext", "-out", "int.pem"], dir);
  const rootPem = readFileSync(path.join(dir, "root.pem"), "utf8");
  const intermediatePem = readFileSync(path.join(dir, "int.pem"), "utf8");
  let n = 0;
  return {
    dir,
    rootPem,
    rootFile: path.join(dir, "root.pem"),
    intermediatePem,
    issue({ dns, key = "ec", serial, days = 2, cn }) {
      const id = `leaf${++n}`;
      openssl(["genpkey", ...keyArgs(key), "-out", `${id}.key`], dir);
      openssl(["req", "-new", "-key", `${id}.key`, "-subj", `/CN=${cn ?? dns?.[0] ?? "no-names.example"}`, "-out", `${id}.csr`], dir);
      const ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth", ...(dns && dns.length > 0 ? [`subjectAltName=${dns.map((d) => `DNS:${d}`).join(",")}`] : [])].join("\n");
      writeFileSync(path.join(dir, `${id}.ext`), `${ext}\n`);
      const serialHex = serial ?? `${Date.now().toString(16)}${String(n).padStart(4, "0")}`;
      openssl(["x509", "-req", "-in", `${id}.csr`, "-CA", "int.pem", "-CAkey", "int.key", "-set_serial", `0x${serialHex}`, "-days", String(days), "-extfile", `${id}.ext`, "-out", `${id}.pem`], dir);
      const certPem = readFileSync(path.join(dir, `${id}.pem`), "utf8");
      return { certPem, chainPem: certPem + intermediatePem, keyPem: readFileSync(path.join(dir, `${id}.key`), "utf8") };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
