import { describe, expect, it } from "vitest";
import { SseParser, type ReceivedEvent } from "../testing/sse-client.js";
import { encodeComment, encodeEvent, encodeRetry, lastEventIdOf } from "./sse.js";

function parse(text: string, chunkSize = text.length): { events: ReceivedEvent[]; parser: SseParser } {
  const events: ReceivedEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  for (let i = 0; i < text.length; i += chunkSize) parser.push(text.slice(i, i + chunkSize));
  return { events, parser };
}

describe("SSE encoding", () => {
  it("writes id, type and data, and a blank line that dispatches", () => {
    expect(encodeEvent({ id: 42, event: "line", data: "Step 3/7 : RUN npm ci" })).toBe("id: 42\nevent: line\ndata: Step 3/7 : RUN npm ci\n\n");
    expect(encodeEvent({ data: "x" })).toBe("data: x\n\n");
  });

  it.each([
    ["LF", "one\ntwo\nthree", "data: one\ndata: two\ndata: three\n"],
    ["CRLF", "one\r\ntwo", "data: one\ndata: two\n"],
    ["a lone CR (progress output)", "10%\r20%", "data: 10%\ndata: 20%\n"],
    ["an empty line", "", "data: \n"],
    ["a trailing newline", "end\n", "data: end\ndata: \n"],
    ["leading spaces and colons", "  indented: yes", "data:   indented: yes\n"],
  ])("splits data with %s into data lines", (_what, data, lines) => {
    expect(encodeEvent({ event: "line", data })).toBe(`event: line\n${lines}\n`);
  });

  it.each([
    ["plain text", "hello"],
    ["lines", "a\nb\n\nc"],
    ["an empty string", ""],
    ["a trailing newline", "x\n"],
    ["leading spaces", "   three spaces"],
    ["colons and field names", "data: id: 7\nevent: end"],
    ["unicode", "✓ done — 100 %"],
    ["JSON", JSON.stringify({ name: "build", state: "running", note: "a\nb" })],
  ])("round-trips %s through a spec parser, also split into any chunks", (_what, data) => {
    const wire = encodeEvent({ id: 7, event: "line", data }) + encodeEvent({ id: 8, event: "line", data: "next" });
    for (const size of [wire.length, 1, 2, 3, 5]) {
      const { events } = parse(wire, size);
      expect(events).toEqual([
        { type: "line", data, lastEventId: "7" },
        { type: "line", data: "next", lastEventId: "8" },
      ]);
    }
  });

  it("turns CR and CRLF into LF, which is all the format carries", () => {
    expect(parse(encodeEvent({ data: "a\r\nb\rc" })).events[0]!.data).toBe("a\nb\nc");
  });

  it("keeps the last event id across events without one", () => {
    const { events, parser } = parse(encodeEvent({ id: 3, event: "line", data: "a" }) + encodeEvent({ event: "step", data: "{}" }) + encodeComment("ping"));
    expect(events.map((e) => [e.type, e.lastEventId])).toEqual([["line", "3"], ["step", "3"]]);
    expect(parser.lastEventId).toBe("3");
    expect(parser.comments).toEqual(["ping"]);
  });

  it("writes comments and the retry hint, which dispatch nothing", () => {
    expect(encodeComment("ping")).toBe(": ping\n\n");
    expect(encodeRetry(2000)).toBe("retry: 2000\n\n");
    const { events, parser } = parse(encodeRetry(2000) + encodeComment("ping\nsecond line"));
    expect(events).toEqual([]);
    expect(parser.retry).toBe(2000);
    expect(parser.comments).toEqual(["ping", "second line"]);
  });

  it("refuses ids and types that would break the stream", () => {
    expect(() => encodeEvent({ id: "1\n2", data: "x" })).toThrow(/line break/);
    expect(() => encodeEvent({ id: "1\0", data: "x" })).toThrow(/U\+0000/);
    expect(() => encodeEvent({ event: "a\rb", data: "x" })).toThrow(/event type/);
    expect(() => encodeEvent({ event: "", data: "x" })).toThrow(/event type/);
    expect(() => encodeRetry(1.5)).toThrow(/whole number/);
  });
});

describe("Last-Event-ID", () => {
  it("takes the header before the query (a reconnection sends the header to the first URL)", () => {
    expect(lastEventIdOf({ "last-event-id": "12" }, { lastEventId: "5" })).toBe("12");
    expect(lastEventIdOf({}, { lastEventId: "5" })).toBe("5");
    expect(lastEventIdOf({ "last-event-id": " " }, { lastEventId: "5" })).toBe("5");
    expect(lastEventIdOf({}, {})).toBeUndefined();
    expect(lastEventIdOf({}, { lastEventId: "" })).toBeUndefined();
  });
});
