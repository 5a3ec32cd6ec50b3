import dgram from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "@slipway/core";
import type { TrafficLogLine } from "./traffic-log.js";
import { TrafficLogReceiver } from "./traffic-log.receiver.js";

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
