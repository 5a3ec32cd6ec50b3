import { describe, expect, it } from "vitest";
import { parseDotenvLines, parseLabelLines } from "./dotenv-lines";

describe("parseDotenvLines", () => {
  it("reads KEY=value lines with comments, blank lines, quotes and export", () => {
    const text = ["# the app's settings", "", "GREETING=hello world", "export API_URL=https://api.example/v1?a=b", "QUOTED=\"two\\nlines \\\"x\\\"\"", "SINGLE='kept $as \\n is'", "EMPTY=", "  SPACED  =  padded  ", "WITH_COMMENT=value # why", "HASH=a#b", "DUP=1", "DUP=2"].join("\n");
    expect(parseDotenvLines(text)).toEqual({
      variables: {
        GREETING: "hello world",
        API_URL: "https://api.example/v1?a=b",
        QUOTED: 'two\nlines "x"',
        SINGLE: "kept $as \\n is",
        EMPTY: "",
        SPACED: "padded",
        WITH_COMMENT: "value",
        HASH: "a#b",
        DUP: "2",
      },
      errors: [],
    });
  });

  it("takes Windows line ends and a value with an equals sign", () => {
    expect(parseDotenvLines("A=1\r\nB=x=y\r\n").variables).toEqual({ A: "1", B: "x=y" });
  });

  it("names every line that is not a variable, by its number", () => {
    const { errors } = parseDotenvLines(["GOOD=1", "no equals here", "BAD KEY=2", "1ST=3", 'OPEN="never closed', "X='a' trailing", "export=5"].join("\n"));
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6]);
    expect(errors[0]!.message).toMatch(/^line 2: no '='/);
    expect(errors[1]!.message).toMatch(/^line 3: 'BAD KEY' is not a variable name/);
    expect(errors[3]!.message).toMatch(/^line 5: the quote/);
  });

  it("reads nothing from an empty paste", () => {
    expect(parseDotenvLines("\n  \n# only a comment\n")).toEqual({ variables: {}, errors: [] });
  });
});

describe("parseLabelLines", () => {
  it("reads key=value lines, trimmed, skipping blank ones", () => {
    expect(parseLabelLines(" zone = a \n\ndisk=ssd\r\n")).toEqual({ zone: "a", disk: "ssd" });
    expect(parseLabelLines("")).toEqual({});
  });
  it("names the first line without '='", () => {
    expect(parseLabelLines("zone=a\nssd")).toBe("line 2: write key=value");
  });
});
