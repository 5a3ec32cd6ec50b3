import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { startPebble, type Pebble } from "@slipway/control-plane/testing/pebble";

// What the HTTPS suites (test/src/https*.e2e.test.ts) share: checking the certificate an
// ingress serves for a name, and a GET over HTTPS with SNI through 127.0.0.1.

/** `openssl s_client` against 127.0.0.1:port with SNI, verifying against `caFile`: "" when it verifies, else why not. */
export function sClient(port: number, servername: string, caFile: string): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", servername, "-verify_return_error", "-verify_hostname", servername, "-CAfile", caFile, "-brief"], { timeout: 10_000 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`;
      resolve(!err && /Verification: OK/.test(out) ? "" : out.trim().split("\n").slice(-3).join(" | ") || String(err));
    });
    child.stdin?.end("");
  });
}

/** A GET over HTTPS to 127.0.0.1:port with SNI and Host `servername`, trusting `ca`: status, body and the served certificate's serial. */
export function httpsGet(port: number, servername: string, ca: string, agent: https.Agent | false = false, urlPath = "/", timeoutMs = 10_000): Promise<{ status: number; body: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, path: urlPath, servername, ca, headers: { host: servername }, agent, timeout: timeoutMs }, (res) => {
      let body = "";
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, serial }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** A leaf certificate of a TestCa: the leaf alone, the chain (leaf, then the intermediate) and its key. */
export interface TestCaLeaf {
  certPem: string;
  chainPem: string;
  keyPem: string;
  chainFile: string;
  keyFile: string;
}

/** A throw-away CA (root and intermediate, P-256) made with the `openssl` command line; `remove()` deletes its folder. */
export interface TestCa {
  dir: string;
  rootPem: string;
  /** The root alone: what `openssl s_client -CAfile` trusts. */
  rootFile: string;
  /** A leaf issued by the intermediate for `dns` (its subjectAltName), with a given hex serial, valid `days`. */
  issue(opts: { dns: string[]; serial: string; key?: "rsa" | "ec"; days?: number }): TestCaLeaf;
  remove(): void;
}

/**
 * A certificate authority for the uploaded-certificate suite (what an admin buys from a CA, made
 * here): nothing is checked in, every key is generated in a temporary folder.
 */
export function createTestCa(name = "Slipway e2e Test CA"): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-e2e-ca-"));
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const keyArgs = (k: "rsa" | "ec") => (k === "rsa" ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] : ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
  writeFileSync(path.join(dir, "ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n");
  run(["genpkey", ...keyArgs("ec"), "-out", "root.key"]);
  run(["req", "-x509", "-new", "-key", "root.key", "-subj", `/CN=${name} Root`, "-days", "3", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "root.pem"]);
  run(["genpkey", ...keyArgs("ec"), "-out", "int.key"]);
  run(["req", "-new", "-key", "int.key", "-subj", `/CN=${name} Intermediate`, "-out", "int.csr"]);
  run(["x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "0x1001", "-days", "3", "-extfile", "ca.ext", "-out", "int.pem"]);
  const intermediatePem = readFileSync(path.join(dir, "int.pem"), "utf8");
  return {
    dir,
    rootPem: readFileSync(path.join(dir, "root.pem"), "utf8"),
    rootFile: path.join(dir, "root.pem"),
    issue({ dns, serial, key = "ec", days = 2 }) {
      const id = `leaf-${serial}`;
      run(["genpkey", ...keyArgs(key), "-out", `${id}.key`]);
      run(["req", "-new", "-key", `${id}.key`, "-subj", `/CN=${dns[0]}`, "-out", `${id}.csr`]);
      writeFileSync(path.join(dir, `${id}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${dns.map((d) => `DNS:${d}`).join(",")}\n`);
      run(["x509", "-req", "-in", `${id}.csr`, "-CA", "int.pem", "-CAkey", "int.key", "-set_serial", `0x${serial}`, "-days", String(days), "-extfile", `${id}.ext`, "-out", `${id}.pem`]);
      const certPem = readFileSync(path.join(dir, `${id}.pem`), "utf8");
      const chainFile = path.join(dir, `${id}-chain.pem`);
      writeFileSync(chainFile, certPem + intermediatePem);
      return { certPem, chainPem: certPem + intermediatePem, keyPem: readFileSync(path.join(dir, `${id}.key`), "utf8"), chainFile, keyFile: path.join(dir, `${id}.key`) };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A real ACME server for an HTTPS suite: pebble validating HTTP-01 on `httpPort` (the agent's HTTP
 * ingress port; its DNS answers 127.0.0.1 for every name), pebble's issuing root in a file for
 * openssl, and the control plane's settings pointing ACME at it: the control plane is a child
 * process and trusts pebble's listener the way an operator's private CA is trusted
 * (NODE_EXTRA_CA_CERTS); the test's names do not resolve here, so the pre-check connects to the
 * ingress directly; a tick every 500 ms and a 2 s backoff floor keep the suites short.
 */
export async function startAcme(opts: { httpPort: number; certificateValiditySeconds?: number }): Promise<{ pebble: Pebble; rootFile: string; cpEnv: Record<string, string> }> {
  const pebble = await startPebble({ httpPort: opts.httpPort, ...(opts.certificateValiditySeconds ? { certificateValiditySeconds: opts.certificateValiditySeconds } : {}) });
  const listenerCa = path.join(pebble.dir, "listener-ca.pem");
  writeFileSync(listenerCa, pebble.listenerCaPem);
  const rootFile = path.join(pebble.dir, "issuing-root.pem");
  writeFileSync(rootFile, pebble.rootPem);
  return {
    pebble,
    rootFile,
    cpEnv: {
      SLIPWAY_ACME_DIRECTORY: pebble.directoryUrl,
      NODE_EXTRA_CA_CERTS: listenerCa,
      SLIPWAY_ACME_CHALLENGE_PORT: String(opts.httpPort),
      SLIPWAY_ACME_CHALLENGE_ADDRESS: "127.0.0.1",
      SLIPWAY_ACME_INTERVAL_MS: "500",
      SLIPWAY_ACME_RETRY_SECONDS: "2",
    },
  };
}
