import { describe, expect, it } from "vitest";
import { Frame, FrameReader, LineBuffer, encodeFrame, parseRuntimeLine, runtimeLogUrl } from "./logs-terminal";

describe("the Logs page's lines", () => {
  it("keeps at most max lines, dropping the oldest and counting them", () => {
    const b = new LineBuffer<{ key: string }>(3);
    for (const k of ["a", "b", "c", "d", "e"]) b.add({ key: k });
    expect(b.lines.map((l) => l.key)).toEqual(["c", "d", "e"]);
    expect(b.dropped).toBe(2);
  });

  it("reads a line event and builds the stream's URL", () => {
    expect(parseRuntimeLine('{"container":"web-1","time":"2026-12-06T16:20:01.1Z","text":"hi"}')).toEqual({ container: "web-1", time: "2026-12-06T16:20:01.1Z", text: "hi" });
    expect(parseRuntimeLine("not json")).toBeUndefined();
    expect(runtimeLogUrl("a b", "test", { tail: 1000 })).toBe("/v1/apps/a%20b/environments/test/logs/events?tail=1000");
    expect(runtimeLogUrl("a", "test", { since: "2026-12-06T16:00:00.000Z", tail: 5000 })).toBe("/v1/apps/a/environments/test/logs/events?since=2026-12-06T16%3A00%3A00.000Z&tail=5000");
  });
});

describe("the terminal's frames", () => {
  it("encodes and cuts frames, also across messages", () => {
    const a = encodeFrame(Frame.Stdout, "hello");
    expect(Array.from(a.slice(0, 5))).toEqual([2, 0, 0, 0, 5]);
    const both = new Uint8Array([...a, ...encodeFrame(Frame.Exit, '{"code":0}')]);
    const r = new FrameReader();
    expect(r.push(both.slice(0, 7))).toEqual([]);
    const frames = r.push(both.slice(7));
    expect(frames.map((f) => [f.type, new TextDecoder().decode(f.payload)])).toEqual([
      [Frame.Stdout, "hello"],
      [Frame.Exit, '{"code":0}'],
    ]);
  });
});
