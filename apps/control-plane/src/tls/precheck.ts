import http from "node:http";
import type { LookupFunction } from "node:net";

/**
 * Asks `name` for a challenge answer the way the CA will, before any order: GET
 * `http://<name>:<port>/.well-known/acme-challenge/<probe>`. Slipway's ingress answers every
 * token statelessly with `<token>.<thumbprint>`, so an exact answer proves the name reaches an
 * ingress of this installation. Resolves to undefined when it does, else to the reason in users'
 * words. Never throws.
 */
export async function precheckChallengePath(name: string, opts: { port: number; probe: string; thumbprint: string; timeoutMs: number; lookup?: LookupFunction }): Promise<string | undefined> {
  const expected = `${opts.probe}.${opts.thumbprint}`;
  const where = opts.port === 80 ? "" : ` on port ${opts.port}`;
  const advice = "check its DNS record points at a host of this installation";
  return new Promise((resolve) => {
    const req = http.request(
      { host: name, port: opts.port, path: `/.well-known/acme-challenge/${opts.probe}`, method: "GET", agent: false, timeout: opts.timeoutMs, headers: { host: opts.port === 80 ? name : `${name}:${opts.port}`, accept: "*/*" }, ...(opts.lookup ? { lookup: opts.lookup } : {}) },
      (res) => {
        const from = res.socket.remoteAddress ? ` from ${res.socket.remoteAddress}` : "";
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (body.length < 1024) body += chunk;
        });
        res.on("error", () => resolve(`${name} stopped answering mid-response${where}: ${advice}`));
        res.on("end", () => {
          const answer = body.trim();
          if (res.statusCode === 200 && answer === expected) return resolve(undefined);
          const notUs = `${name} does not answer the challenge path through Slipway's ingress${where}: ${advice}`;
          if (res.statusCode !== 200) return resolve(`${notUs} (got ${res.statusCode ?? "no status"}${from})`);
          if (answer.startsWith(`${opts.probe}.`)) return resolve(`${notUs} (got the answer of another ACME account${from}: is another installation or proxy in front of it?)`);
          return resolve(`${notUs} (got 200 with another page${from})`);
        });
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
    req.on("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.message;
      if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ENODATA") return resolve(`${name} has no DNS record (${code}): point it at a host of this installation`);
      resolve(`${name} does not answer on HTTP${where}: ${advice} and that the host's port ${opts.port} is reachable (${code})`);
    });
    req.end();
  });
}
