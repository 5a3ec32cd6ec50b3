import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import tar from "tar-stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { run, type Io } from "../cli.js";
import { CommandError, UsageError } from "../config.js";
import { extractTo, listFolder, packFolder } from "../media-folder.js";
import { pullMediaPlan, pushMediaPlan } from "./local-media.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const tmp = () => mkdtempSync(path.join(tmpdir(), "slipway-media-"));

function io(env: NodeJS.ProcessEnv = {}, extra: Partial<Io> = {}): Io & { stdout: string; stderr: string } {
  const o = {
    stdout: "",
    stderr: "",
    env: { SLIPWAY_CONFIG: "/nonexistent/slipway.json", SLIPWAY_URL: "http://cp.test:7700", SLIPWAY_TOKEN: "t", ...env },
    out: (t: string) => void (o.stdout += t),
    err: (t: string) => void (o.stderr += t),
    pollMs: 1,
    ...extra,
  };
  return o;
}

type Entry = { name: string; type?: "file" | "directory" | "symlink" | "link"; content?: Buffer; linkname?: string };

/** A tar made by tar-stream, as the control plane sends one. */
async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const read = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if ((e.type ?? "file") === "file") pack.entry({ name: e.name }, e.content ?? Buffer.alloc(0), done);
      else pack.entry({ name: e.name, type: e.type!, ...(e.linkname ? { linkname: e.linkname } : {}) }, done);
    });
  }
  pack.finalize();
  await read;
  return Buffer.concat(chunks);
}

/** Every file below `dir`: relative name → sha256. */
function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(name);
      else out[name] = sha256(readFileSync(path.join(dir, name)));
    }
  };
  walk("");
  return out;
}

const chunks = (b: Buffer, size = 1000): AsyncIterable<Uint8Array> => Readable.from((function* () {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
})());

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("slipway pull media / push media: arguments", () => {
  it("uses ./<app>-<env>-media unless --to / --from names a folder; --force only with --to", () => {
    expect(pullMediaPlan(["shop", "live"], {}, "/home/me")).toEqual({ app: "shop", env: "live", dir: "./shop-live-media", abs: "/home/me/shop-live-media", named: false, force: false });
    expect(pullMediaPlan(["shop", "live"], { to: "media", force: true }, "/home/me")).toMatchObject({ dir: "media", abs: "/home/me/media", named: true, force: true });
    expect(pullMediaPlan(["shop", "live"], { to: "/srv/x" }, "/home/me")).toMatchObject({ abs: "/srv/x", named: true, force: false });
    expect(() => pullMediaPlan(["shop", "live"], { force: true })).toThrow(UsageError);
    expect(() => pullMediaPlan(["shop", "live"], { force: true })).toThrow(/--force writes into a folder that is not empty only when --to names it: slipway pull media shop live --to <dir> --force/);
    expect(() => pullMediaPlan(["shop", "live"], { to: " " })).toThrow(/--to needs a folder/);

    expect(() => pushMediaPlan(["shop", "live"], {}, false)).toThrow(/^push media replaces the media of shop\/live: run it in a terminal to confirm by typing shop\/live, or add --yes-i-am-sure$/);
    expect(pushMediaPlan(["shop", "live"], {}, true, "/home/me")).toEqual({ app: "shop", env: "live", dir: "./shop-live-media", abs: "/home/me/shop-live-media", named: false, confirmed: false });
    expect(pushMediaPlan(["shop", "live"], { from: "up", "yes-i-am-sure": true }, false, "/w")).toMatchObject({ abs: "/w/up", named: true, confirmed: true });
  });

  it("refuses wrong usage, a folder in the way, a missing folder and links before anything is sent, in one line", async () => {
    const calls: string[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push(`${init.method ?? "GET"} ${url}`);
      return new Response(JSON.stringify({ name: "live" }), { status: 200, headers: { "content-type": "application/json" } });
    });
    const full = tmp();
    writeFileSync(path.join(full, "x"), "x");
    const file = path.join(full, "x");
    const linked = tmp();
    writeFileSync(path.join(linked, "a.txt"), "a");
    symlinkSync("/etc/passwd", path.join(linked, "passwd"));
    const cases: Array<[string[], number, RegExp, string[]]> = [
      [["pull", "media", "shop"], 2, /^slipway: missing <env>: slipway pull media <app> <env>\n$/, []],
      [["pull"], 2, /pull needs one of: db, media/, []],
      [["pull", "media", "shop", "live", "--force"], 2, /--force writes into a folder that is not empty only when --to names it/, []],
      [["push", "media", "shop", "live"], 2, /^slipway: push media replaces the media of shop\/live: run it in a terminal/, []],
      [["pull", "media", "shop", "live", "--to", full], 1, new RegExp(`^slipway: ${full} is not empty: add --force to write the media into it`), []],
      [["pull", "media", "shop", "live", "--to", file], 1, new RegExp(`^slipway: ${file} is not a folder\\n$`), []],
      [["push", "media", "shop", "live", "--from", path.join(full, "nope"), "--yes-i-am-sure"], 1, /does not exist\n$/, []],
      [["push", "media", "shop", "live", "--from", linked, "--yes-i-am-sure"], 1, new RegExp(`^slipway: ${linked}/passwd is a symbolic link: push media sends regular files and folders only`), ["GET http://cp.test:7700/v1/apps/shop/environments/live"]],
    ];
    for (const [args, code, message, requests] of cases) {
      calls.length = 0;
      const o = io();
      expect(await run(args, o), args.join(" ")).toBe(code);
      expect(o.stderr, args.join(" ")).toMatch(message);
      expect(o.stderr.split("\n").filter(Boolean), args.join(" ")).toHaveLength(1);
      expect(o.stdout).toBe("");
      expect(calls, args.join(" ")).toEqual(requests);
    }
  });

  it("push asks for <app>/<env> after reading the folder, and sends nothing unless it is typed", async () => {
    const calls: string[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push(`${init.method ?? "GET"} ${url}`);
      return new Response(JSON.stringify({ name: "live" }), { status: 200, headers: { "content-type": "application/json" } });
    });
    const dir = tmp();
    writeFileSync(path.join(dir, "a.txt"), "abc");
    const questions: string[] = [];
    const o = io({}, { prompt: async (q) => (questions.push(q), "live") });
    expect(await run(["push", "media", "shop", "live", "--from", dir], o)).toBe(1);
    expect(questions).toEqual([`This replaces the media of shop/live with the 1 file in ${dir} (objects that are not in the folder are removed); a safety backup of shop/live's media is taken first.\nType shop/live to confirm: `]);
    expect(o.stderr).toBe(`${dir}: 1 file, 3 B\nslipway: not confirmed (the answer was not shop/live): nothing was sent\n`);
    expect(calls).toEqual(["GET http://cp.test:7700/v1/apps/shop/environments/live"]);
  });
});

describe("slipway pull media: the download", () => {
  /** A fake control plane: the backup succeeds at once, its media are `body` with the given headers. */
  function fakePlatform(body: Buffer, headers: Record<string, string>) {
    const calls: string[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      const method = init.method ?? "GET";
      calls.push(`${method} ${url.replace("http://cp.test:7700/v1", "")}${init.body ? ` ${String(init.body)}` : ""}`);
      if (url.endsWith("/media")) return new Response(Readable.toWeb(Readable.from([body])) as ReadableStream, { status: 200, headers: { "content-type": "application/x-tar", ...headers } });
      return new Response(JSON.stringify({ id: "b1", state: "succeeded" }), { status: method === "POST" ? 202 : 200, headers: { "content-type": "application/json" } });
    });
    return calls;
  }

  it("takes a media-only backup and extracts its media into a new folder, with a progress line", async () => {
    const files = { "a.txt": Buffer.from("a"), "empty": Buffer.alloc(0), "x/y/z.bin": randomBytes(5000) };
    const body = await tarOf(Object.entries(files).map(([name, content]) => ({ name, content })));
    const calls = fakePlatform(body, { "x-slipway-media-objects": "3", "x-slipway-media-bytes": "5001" });
    const dir = path.join(tmp(), "new");
    const o = io();
    expect(await run(["pull", "media", "shop", "live", "--to", dir], o)).toBe(0);
    expect(calls).toEqual(['POST /apps/shop/environments/live/backups {"database":false,"media":true}', "GET /backups/b1", "GET /backups/b1/media"]);
    expect(filesOf(dir)).toEqual(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])));
    expect(o.stdout).toBe(`pulled the media of shop/live into ${dir}: backup b1, 3 files, 4.9 KiB\n`);
    expect(o.stderr).toMatch(/downloading: 3 of 3 files, 4\.9 KiB of 4\.9 KiB \(100%\)\n$/);
  });

  it("removes what it wrote when the download is short, and says so in one line", async () => {
    const body = await tarOf([{ name: "a.txt", content: Buffer.from("a") }]);
    fakePlatform(body, { "x-slipway-media-objects": "2", "x-slipway-media-bytes": "2" });
    const parent = tmp();
    const dir = path.join(parent, "new");
    const o = io();
    expect(await run(["pull", "media", "shop", "live", "--to", dir], o)).toBe(1);
    expect(o.stderr).toMatch(/slipway: the download of backup b1 ended after 1 of 2 objects, 1 B of 2 B: try again\n$/);
    expect(existsSync(dir)).toBe(false);
    // Into an empty folder that was there: emptied again, kept.
    const empty = tmp();
    fakePlatform(body.subarray(0, 600), { "x-slipway-media-objects": "1", "x-slipway-media-bytes": "1" });
    const o2 = io();
    expect(await run(["pull", "media", "shop", "live", "--to", empty], o2)).toBe(1);
    expect(o2.stderr).toMatch(/slipway: the media download is not a complete tar \(Unexpected end of data\): try again\n$/);
    expect(readdirSync(empty)).toEqual([]);
  });
});

describe("safe extraction", () => {
  it("writes files and folders below the folder, byte for byte", async () => {
    const dir = tmp();
    const files = { "a.txt": Buffer.from("hello"), "zero": Buffer.alloc(0), "n/e/s/t/e/d.bin": randomBytes(100_000), "ünï/файл": randomBytes(7) };
    const body = await tarOf([{ name: "n/", type: "directory" }, { name: "empty-folder/", type: "directory" }, ...Object.entries(files).map(([name, content]) => ({ name, content }))]);
    const seen: Array<[number, number]> = [];
    const r = await extractTo(dir, chunks(body), (b, f) => seen.push([b, f]));
    expect(r).toEqual({ files: 4, entries: 6, bytes: 100_012 });
    expect(filesOf(dir)).toEqual(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])));
    expect(readdirSync(path.join(dir, "empty-folder"))).toEqual([]);
    expect(seen.at(-1)).toEqual([100_012, 4]);
  });

  it("refuses names that lead out of the folder, links, and ways through a link or a file; nothing is written outside", async () => {
    const outside = tmp();
    writeFileSync(path.join(outside, "victim"), "original");
    const cases: Array<[Entry[], RegExp, (dir: string) => void]> = [
      [[{ name: "../escape.txt", content: Buffer.from("x") }], /no safe file name here: "..\/escape.txt" leads out of the folder/, () => undefined],
      [[{ name: "a/../../escape.txt", content: Buffer.from("x") }], /leads out of the folder/, () => undefined],
      [[{ name: `${outside}/victim`, content: Buffer.from("x") }], /is an absolute path/, () => undefined],
      [[{ name: "link", type: "symlink", linkname: `${outside}/victim` }], /"link" is a symbolic link: a media archive holds regular files and folders only/, () => undefined],
      [[{ name: "hard", type: "link", linkname: `${outside}/victim` }], /is a hard link/, () => undefined],
      // A folder that is there already (pull --force): a link in it is not followed, to a folder or a file.
      [[{ name: "out/victim", content: Buffer.from("x") }], /^out is a symbolic link in the folder: not written through/, (dir) => symlinkSync(outside, path.join(dir, "out"))],
      [[{ name: "v", content: Buffer.from("x") }], /^v is a symbolic link in the folder: not written through/, (dir) => symlinkSync(path.join(outside, "victim"), path.join(dir, "v"))],
      [[{ name: "f/x", content: Buffer.from("x") }], /^f is a file in the folder, and the media have a folder of that name/, (dir) => writeFileSync(path.join(dir, "f"), "f")],
    ];
    for (const [entries, message, prepare] of cases) {
      const dir = tmp();
      prepare(dir);
      const before = readdirSync(dir);
      const err = await extractTo(dir, chunks(await tarOf(entries)), () => undefined).then(() => undefined, (e: unknown) => e);
      expect(err, entries[0]!.name).toBeInstanceOf(CommandError);
      expect((err as Error).message, entries[0]!.name).toMatch(message);
      expect(readdirSync(dir), entries[0]!.name).toEqual(before);
    }
    expect(readdirSync(outside)).toEqual(["victim"]);
    expect(readFileSync(path.join(outside, "victim"), "utf8")).toBe("original");
    expect(existsSync(path.join(tmpdir(), "escape.txt"))).toBe(false);
  });

  it("stops at a body that is no complete tar", async () => {
    const whole = await tarOf([{ name: "a", content: randomBytes(3000) }]);
    for (const body of [whole.subarray(0, 2000), Buffer.from("{\"error\":\"not a tar\"}".padEnd(600, " "))]) {
      const err = await extractTo(tmp(), chunks(body), () => undefined).then(() => undefined, (e: unknown) => e);
      expect((err as Error).message).toMatch(/^the media download is not a complete tar \((Unexpected end of data|Invalid tar header.*)\): try again$/);
    }
  });
});

describe("packing a folder", () => {
  it("lists regular files by name and packs them into a tar that extracts to the same files", async () => {
    const src = tmp();
    mkdirSync(path.join(src, "b/c"), { recursive: true });
    mkdirSync(path.join(src, "empty"));
    const files = { "a.txt": Buffer.from("a"), "b/c/d.bin": randomBytes(200_000), "b/zero": Buffer.alloc(0), ".hidden": Buffer.from("h") };
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(src, name), content);
    const listed = await listFolder(src, "src");
    expect(listed.files.map((f) => [f.name, f.size])).toEqual([[".hidden", 1], ["a.txt", 1], ["b/c/d.bin", 200_000], ["b/zero", 0]]);
    expect(listed.bytes).toBe(200_002);
    let last: [number, number] = [0, 0];
    const tarStream = packFolder(listed.files, (b, f) => (last = [b, f]));
    const dst = tmp();
    const r = await extractTo(dst, tarStream, () => undefined);
    expect(r).toEqual({ files: 4, entries: 4, bytes: 200_002 });
    expect(last).toEqual([200_002, 4]);
    expect(filesOf(dst)).toEqual(filesOf(src));
  });

  it("refuses links and names the platform takes no object by", async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, "sub"));
    symlinkSync("/etc", path.join(dir, "sub", "etc"));
    await expect(listFolder(dir, "./f")).rejects.toThrow(/^\.\/f\/sub\/etc is a symbolic link: push media sends regular files and folders only/);
    const odd = tmp();
    writeFileSync(path.join(odd, "back\\slash"), "x");
    await expect(listFolder(odd, "./f")).rejects.toThrow(/^\.\/f\/back\\slash: the name "back\\\\slash" has a backslash in its name, which the platform takes no object by$/);
  });
});
