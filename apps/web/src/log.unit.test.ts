import { describe, expect, it } from "vitest";
import { LogBook, headingOf, lineOfEvent } from "./log";

describe("deployment log sections", () => {
  it("reads ===== headings", () => {
    expect(headingOf("===== docker build =====")).toBe("docker build");
    expect(headingOf("===== docker release commands =====  ")).toBe("docker release commands");
    expect(headingOf("Step 1/4 : FROM x")).toBeUndefined();
    expect(headingOf("x ===== build =====")).toBeUndefined();
  });

  it("splits lines into sections; lines before the first heading have none", () => {
    const book = new LogBook();
    const texts = ["queued on host a", "===== source =====", "commit abc", "===== docker build =====", "Step 1/2", "Step 2/2"];
    texts.forEach((text, i) => book.add({ seq: i + 1, text }));
    expect(book.sections).toEqual([
      { index: 0, title: null, lines: ["queued on host a"] },
      { index: 1, title: "source", lines: ["commit abc"] },
      { index: 2, title: "docker build", lines: ["Step 1/2", "Step 2/2"] },
    ]);
    expect(book.lineCount).toBe(6);
    expect(book.lastSeq).toBe(6);
  });

  it("drops a line it already has: a resumed or repeated stream shows each line once", () => {
    const book = new LogBook();
    expect(book.add({ seq: 1, text: "===== source =====" })).toBe(true);
    expect(book.add({ seq: 2, text: "a" })).toBe(true);
    expect(book.add({ seq: 2, text: "a" })).toBe(false);
    expect(book.add({ seq: 1, text: "===== source =====" })).toBe(false);
    expect(book.add({ seq: 3, text: "b" })).toBe(true);
    expect(book.sections).toEqual([{ index: 0, title: "source", lines: ["a", "b"] }]);
  });

  it("takes a line event's id as its sequence number and its data as the text", () => {
    expect(lineOfEvent("Step 1/2 : FROM x", "17")).toEqual({ seq: 17, text: "Step 1/2 : FROM x" });
    expect(lineOfEvent('{"text":"json logs stay text"}', "3")).toEqual({ seq: 3, text: '{"text":"json logs stay text"}' });
    expect(lineOfEvent("no id", "")).toBeUndefined();
    expect(lineOfEvent("bad id", "x")).toBeUndefined();
  });
});
