import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "@slipway/core";
import type { TrafficLogLine } from "./traffic-log.js";
import { kernelDrops, TrafficLogReceiver } from "./traffic-log.receiver.js";

const warnings: unknown[] = [];
const logger = { info() {}, debug() {}, warn: (o: unknown) => warnings.push(o) } as unknown as Logger;

/** Real UDP on loopback: the receiver as HAProxy's log target sees it. */
describe("TrafficLogReceiver", () => {
  const open: TrafficLogReceiver[] = [];
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
  });

  async function send(port: number, datagrams: string[]): Promise<void> {
    const s = dgram.createSocket("udp4");
    for (const d of datagrams) await new Promise<void>((resolve, reject) => s.send(Buffer.from(d), port, "127.0.0.1", (err) => (err ? reject(err) : resolve())));
    s.close();
  }

  async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
  }

  /**
   * `n` datagrams from another process (as HAProxy sends them; a sender in this
   * process would starve the receiver of its event loop) at 50,000 a second,
   * more than this machine's ingress proxies (BENCHMARKS.md).
   */
  async function burst(port: number, n: number): Promise<void> {
    const script = `
      const s = require("dgram").createSocket("udp4");
      const lines = ["slipway1 shop--test s1 200 3", "slipway1 shop--test s2 404 12", "slipway1 shop--live s1 503 -1"].map((l) => Buffer.from(l));
      const t0 = performance.now();
      let sent = 0;
      const tick = () => {
        const due = Math.min(${n}, Math.floor((performance.now() - t0) * 50));
        while (sent < due) s.send(lines[sent++ % 3], ${port}, "127.0.0.1", sent === ${n} ? () => s.close() : undefined);
        if (sent < ${n}) setImmediate(tick);
      };
      tick();`;
    const child = spawn(process.execPath, ["-e", script], { stdio: "inherit" });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(0);
  }

  it.each([
    ["in batches (the default)", {}],
    ["datagram by datagram", { batchPauseMs: 0 }],
  ])("receives every line of a burst of 5,000 %s", async (_, opts) => {
    const n = 5_000;
    let statuses = 0;
    const r = new TrafficLogReceiver((l) => (statuses += l.status), logger, opts);
    open.push(r);
    const port = await r.listen(0);
    await burst(port, n);
    await until(() => r.received >= n);
    // Nothing more may arrive: every line once.
    await new Promise((res) => setTimeout(res, 200));
    expect(r.received).toBe(n);
    expect(statuses).toBe(Array.from({ length: n }, (_, i) => [200, 404, 503][i % 3]!).reduce((a, b) => a + b, 0));
    expect(r.malformed).toBe(0);
    // Batching needs a receive buffer the kernel may refuse (net.core.rmem_max ≥ ~2 MB); without it, datagram by datagram.
    const rmemMax = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
    expect(r.batched).toBe(opts.batchPauseMs !== 0 && rmemMax >= 2 * 1024 * 1024);
    if (r.batched) {
      expect(r.batches).toBeGreaterThan(0);
      expect(r.batches).toBeLessThan(n / 10);
    } else {
      expect(r.batches).toBe(0);
    }
    expect(await kernelDrops(port)).toBe(0);
  });

  it("reads the kernel's drop counter of its port only", async () => {
    const r = new TrafficLogReceiver(() => undefined, logger);
    open.push(r);
    const port = await r.listen(0);
    expect(await kernelDrops(port)).toBe(0);
    await r.close();
    expect(await kernelDrops(port)).toBeUndefined();
  });

  it("hands every well-formed line to onLine, also several per datagram, and counts the malformed ones", async () => {
    const seen: TrafficLogLine[] = [];
    // The line object is reused between calls: a consumer keeps a copy.
    const r = new TrafficLogReceiver((l) => seen.push({ ...l }), logger);
    open.push(r);
    const port = await r.listen(0);
    await send(port, ["slipway1 shop--test s1 200 3", "slipway1 shop--test s2 404 1\nslipway1 blog--live <NOSRV> 401 0\n", "GET / HTTP/1.1", "slipway1 shop--test s1 abc 3"]);
    const deadline = Date.now() + 5_000;
    while (r.received + r.malformed < 5 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(seen).toEqual([
      { backend: "shop--test", server: "s1", status: 200, activeMs: 3 },
      { backend: "shop--test", server: "s2", status: 404, activeMs: 1 },
      { backend: "blog--live", server: "<NOSRV>", status: 401, activeMs: 0 },
    ]);
    expect(r.received).toBe(3);
    expect(r.malformed).toBe(2);
    expect(warnings).toHaveLength(1);
  });
});
