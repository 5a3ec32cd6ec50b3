import { describe, expect, it } from "vitest";
import { MEDIA_KEY_MAX_BYTES, mediaEntryKey, mediaEntryTypeProblem } from "./media-archive.js";

describe("mediaEntryKey", () => {
  it("takes relative names of plain parts, without a leading ./ or a folder's trailing /", () => {
    const cases: Array<[string, "file" | "directory", string]> = [
      ["a.txt", "file", "a.txt"],
      ["./a.txt", "file", "a.txt"],
      ["././a/b/c.bin", "file", "a/b/c.bin"],
      ["uploads/2026/11/photo 1.jpg", "file", "uploads/2026/11/photo 1.jpg"],
      ["ünïcödé/файл.txt", "file", "ünïcödé/файл.txt"],
      ["..hidden/...x", "file", "..hidden/...x"],
      ["a/b/", "directory", "a/b"],
      ["./", "directory", ""],
      [".", "directory", ""],
      ["x".repeat(MEDIA_KEY_MAX_BYTES), "file", "x".repeat(MEDIA_KEY_MAX_BYTES)],
    ];
    for (const [name, type, key] of cases) expect(mediaEntryKey(name, type), name).toEqual({ key });
  });

  it("refuses names that lead out of the folder or that another spelling would name too", () => {
    const cases: Array<[string, "file" | "directory", RegExp]> = [
      ["/etc/passwd", "file", /is an absolute path/],
      ["./", "file", /has no name/],
      ["", "file", /has no name/],
      ["..", "file", /leads out of the folder/],
      ["../x", "file", /leads out of the folder/],
      ["a/../../x", "file", /leads out of the folder/],
      ["./../x", "directory", /leads out of the folder/],
      ["a//b", "file", /empty or '.' part/],
      ["a/./b", "file", /empty or '.' part/],
      ["a/", "file", /empty or '.' part/],
      ["a\\..\\b", "file", /backslash/],
      ["a\0b", "file", /NUL/],
      ["x".repeat(MEDIA_KEY_MAX_BYTES + 1), "file", /longer than 900 bytes/],
      ["é".repeat(MEDIA_KEY_MAX_BYTES / 2 + 1), "file", /longer than 900 bytes/],
    ];
    for (const [name, type, problem] of cases) {
      const r = mediaEntryKey(name, type);
      expect("problem" in r ? r.problem : r, name.slice(0, 20)).toMatch(problem);
    }
  });
});

describe("mediaEntryTypeProblem", () => {
  it("takes regular files and folders only", () => {
    expect(mediaEntryTypeProblem("a", "file")).toBeUndefined();
    expect(mediaEntryTypeProblem("a", "directory")).toBeUndefined();
    expect(mediaEntryTypeProblem("a", "symlink")).toMatch(/"a" is a symbolic link: a media archive holds regular files and folders only/);
    expect(mediaEntryTypeProblem("a", "link")).toMatch(/a hard link/);
    expect(mediaEntryTypeProblem("a", "character-device")).toMatch(/a device/);
    expect(mediaEntryTypeProblem("a", "block-device")).toMatch(/a device/);
    expect(mediaEntryTypeProblem("a", "fifo")).toMatch(/a fifo/);
    expect(mediaEntryTypeProblem("a", null)).toMatch(/of type unknown/);
  });
});
