import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { LineNumbering, LogFeed, agentRequestFor, lineEvent, parseCursor, parseLogLine } from "./log-events.js";

const line = (container: string, time: string, text: string) => `${container} ${time} ${text}`;

describe("runtime log events: ids and resumption", () => {
  it("splits a relayed line into container, time (in ns) and text", () => {
    expect(parseLogLine("web-1 2026-12-06T16:20:01.123456789Z GET / 200")).toEqual({ container: "web-1", time: "2026-12-06T16:20:01.123456789Z", ns: 1796574001123456789n, text: "GET / 200" });
    expect(parseLogLine("web-1 2026-12-06T16:20:01.5Z ")?.ns).toBe(1796574001500000000n);
    expect(parseLogLine("web-1 2026-12-06T16:20:01Z  two spaces kept")?.text).toBe(" two spaces kept");
    expect(parseLogLine("[3 lines dropped: the client reads too slowly]")).toBeUndefined();
    expect(parseLogLine("(no containers of a/test on this host)")).toBeUndefined();
  });

  it("numbers lines by time and index among the lines of the same nanosecond", () => {
    const n = new LineNumbering();
    expect([n.next(5n), n.next(7n), n.next(7n), n.next(6n), n.next(7n)]).toEqual(["5-0", "7-0", "7-1", "6-0", "7-2"]);
  });

  it("a resumed stream skips what the client has: earlier times, and that time up to the index", () => {
    const n = new LineNumbering(parseCursor("7-1"));
    // The agent replays the cursor's second: 5, 6, 7-0 and 7-1 were sent before.
    expect([n.next(5n), n.next(7n), n.next(7n), n.next(6n), n.next(7n), n.next(8n)]).toEqual([undefined, undefined, undefined, undefined, "7-2", "8-0"]);
  });

  it("a Last-Event-ID that is not <ns>-<index> is a 400", () => {
    expect(parseCursor(undefined)).toBeUndefined();
    expect(parseCursor("1796574001123456789-0")).toEqual({ ns: 1796574001123456789n, index: 0 });
    for (const bad of ["12", "a-1", "1-", "-1", "1-2-3", "1796574001123456789-0 "]) expect(() => parseCursor(bad)).toThrow(/not an id of this stream/);
  });

  it("asks the agent for the cursor's second with no tail limit when resuming; the query otherwise", () => {
    expect(agentRequestFor(undefined, { sinceSeconds: 0, tail: 200 })).toEqual({ since: 0, tail: 200 });
    expect(agentRequestFor({ ns: 1796574001999999999n, index: 3 }, { sinceSeconds: 5, tail: 200 })).toEqual({ since: 1796574001, tail: 100000 });
  });

  it("a note of the relay is an event without id (the client's Last-Event-ID stays)", () => {
    expect(lineEvent("[3 lines dropped: the client reads too slowly]", new LineNumbering())).toEqual({ event: "note", data: "[3 lines dropped: the client reads too slowly]" });
  });

  it("a stream broken anywhere and resumed from the last id received delivers every line exactly once", async () => {
    // 3 containers in time order (as the agent relays them), pairs of lines stamped the same nanosecond, over 3 seconds.
    const log: string[] = [];
    for (let i = 0; i < 60; i++) log.push(line(`web-${i % 3}`, `2026-12-06T16:20:0${Math.floor(i / 20)}.0000000${String(Math.floor((i % 20) / 2)).padStart(2, "0")}Z`, `n${i}`));
    const received: string[] = [];
    let last: string | undefined;
    for (const breakAfter of [7, 19, 33, 1000]) {
      const cursor = parseCursor(last);
      const from = agentRequestFor(cursor, { sinceSeconds: 0, tail: 1000 });
      const body = new PassThrough();
      // The agent gives the lines since `from.since` (whole seconds, inclusive).
      body.end(log.filter((l) => parseLogLine(l)!.ns / 1_000_000_000n >= BigInt(from.since)).join("\n") + "\n");
      const feed = new LogFeed(body, cursor);
      let got = 0;
      for (;;) {
        const { events, done } = await feed.poll();
        for (const e of events) {
          if (got++ >= breakAfter) break;
          received.push((JSON.parse(e.data) as { text: string }).text);
          last = String(e.id);
        }
        if (done || got > breakAfter) break;
      }
    }
    expect(received).toEqual(log.map((l) => l.split(" ").pop()));
  });
});
