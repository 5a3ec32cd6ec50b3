import { execFile } from "node:child_process";
import https from "node:https";
import type { TLSSocket } from "node:tls";

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
