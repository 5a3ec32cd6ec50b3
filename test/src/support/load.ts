import http from "node:http";
import { StopWaiting, waitFor } from "./processes.js";

export interface LoadResult {
  ok: number;
  failed: number;
  errors: string[];
  bodies: Map<string, number>;
  /** When each body was first and last received (Date.now()), to tell whether two versions were served at once. */
  seen: Map<string, { first: number; last: number }>;
  lastBody: string;
}

/**
 * A bounded keep-alive HTTP load loop through the ingress: `concurrency`
 * clients on keep-alive connections, each sending requests back to back until
 * stop() or `maxMs`. A request fails on a connection error or a status ≥ 500.
 */
/** `address`: where to connect (default 127.0.0.1; e.g. a host's address in its network namespace). */
export function startLoad(opts: { port: number; host: string; path?: string; concurrency?: number; maxMs?: number; auth?: string; address?: string }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency ?? 10 });
  const result: LoadResult = { ok: 0, failed: 0, errors: [], bodies: new Map(), seen: new Map(), lastBody: "" };
  let stopped = false;
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const clients = opts.concurrency ?? 10;
  /** Requests each client finished (answered or failed). */
  const finished = new Array<number>(clients).fill(0);
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.request(
        { host: opts.address ?? "127.0.0.1", port: opts.port, path: opts.path ?? "/", agent, headers: { host: opts.host, ...(opts.auth ? { authorization: opts.auth } : {}) }, timeout: 10_000 },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => {
            if ((res.statusCode ?? 0) >= 500) {
              result.failed++;
              result.errors.push(`status ${res.statusCode}: ${body.slice(0, 100)}`);
            } else {
              result.ok++;
              const key = body.trim();
              result.bodies.set(key, (result.bodies.get(key) ?? 0) + 1);
              const now = Date.now();
              result.seen.set(key, { first: result.seen.get(key)?.first ?? now, last: now });
              result.lastBody = key;
            }
            resolve();
          });
          res.on("error", (e) => {
            result.failed++;
            result.errors.push(e.message);
            resolve();
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => {
        result.failed++;
        result.errors.push(e.message);
        resolve();
      });
      req.end();
    });
  const workers = Array.from({ length: clients }, async (_, i) => {
    while (!stopped && Date.now() < deadline) {
      await one();
      finished[i]!++;
    }
  });
  const done = Promise.all(workers).then(() => {
    agent.destroy();
    return result;
  });
  return {
    result,
    /**
     * Waits until `n` more requests have finished since the call, and every client
     * finished at least one of them: what the load sees now (after a switch, say)
     * is in the result. Instead of a fixed pause before stop().
     */
    more: async (n: number, timeoutMs = 30_000) => {
      const from = [...finished];
      const total = () => finished.reduce((a, c) => a + c, 0) - from.reduce((a, c) => a + c, 0);
      await waitFor(`${n} more requests of the load (every client at least one)`, async () => {
        if (stopped || Date.now() >= deadline) throw new StopWaiting("the load has stopped");
        return total() >= n && finished.every((c, i) => c > from[i]!);
      }, { timeoutMs, intervalMs: 20 });
    },
    stop: async () => {
      stopped = true;
      return done;
    },
  };
}

/** One GET through the ingress with a Host header. */
export function getVia(port: number, host: string, path = "/", headers: Record<string, string> = {}, address = "127.0.0.1"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: address, port, path, headers: { host, ...headers }, agent: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}
