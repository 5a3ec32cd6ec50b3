import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { run, sinceTime, type Io } from "./cli.js";
import { normalizeUrl, resolveCredentials, saveCredentials, UsageError } from "./config.js";
import { ago, duration, table } from "./format.js";

function io(env: NodeJS.ProcessEnv = {}): Io & { stdout: string; stderr: string } {
  const o = { stdout: "", stderr: "", env, out: (t: string) => void (o.stdout += t), err: (t: string) => void (o.stderr += t) };
  return o;
}

describe("command line parsing", () => {
  it("finds two-word commands and options wherever they are, and explains usage mistakes with exit 2", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["vars", "set", "shop", "test"], /missing <KEY=VALUE\.\.\.>: slipway vars set <app> <env> <KEY=VALUE\.\.\.>/],
      [["status", "shop", "test", "extra"], /too many arguments: slipway status <app> <env>/],
      [["domains"], /missing <app> <env>: slipway domains <app> <env>/],
      [["vars"], /vars needs one of: /],
      [["deploy", "shop", "test", "--content-from", "live"], /replaces the database and\/or media of shop\/test: add --yes/],
      [["deploy", "shop", "test", "--media"], /--database and --media go with --content-from/],
      [["logs", "shop", "test", "--tail", "many"], /--tail must be a number/],
      [["login"], /login needs --url/],
      [["login", "--url", "ftp://x"], /not an http\(s\) URL/],
      [["apps"], /not logged in/],
    ];
    for (const [args, message] of cases) {
      const o = io({ SLIPWAY_CONFIG: "/nonexistent/slipway.json" });
      expect(await run(args, o), args.join(" ")).toBe(2);
      expect(o.stderr, args.join(" ")).toMatch(message);
      expect(o.stdout).toBe("");
    }
    // Global options before the command; the (unusable) port proves the request was attempted with them.
    const o = io();
    expect(await run(["--url", "http://127.0.0.1:9", "--token", "t", "envs", "shop"], o)).toBe(1);
    expect(o.stderr).toMatch(/cannot reach the control plane at http:\/\/127\.0\.0\.1:9/);
  });

  it("prints help for all commands and for one", async () => {
    const all = io();
    expect(await run([], all)).toBe(0);
    expect(all.stdout).toMatch(/deploy <app> <env>\s+Deploy an environment and follow its log/);
    const one = io();
    expect(await run(["backups", "restore", "--help"], one)).toBe(0);
    expect(one.stdout).toMatch(/^slipway backups restore <backup-id>\n/);
    expect(one.stdout).toMatch(/--into <value>/);
  });
});

describe("credentials", () => {
  it("takes flags over SLIPWAY_URL/SLIPWAY_TOKEN over the saved login, and saves it for the user only", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "slipway-cfg-")), "nested", "config.json");
    saveCredentials(file, { url: "http://saved:7700", token: "saved" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const env = { SLIPWAY_CONFIG: file };
    expect(resolveCredentials(env, {})).toEqual({ url: "http://saved:7700", token: "saved" });
    expect(resolveCredentials({ ...env, SLIPWAY_URL: "https://ci.example/", SLIPWAY_TOKEN: "ci" }, {})).toEqual({ url: "https://ci.example", token: "ci" });
    expect(resolveCredentials({ ...env, SLIPWAY_TOKEN: "ci" }, { url: "http://flag:1", token: "flag" })).toEqual({ url: "http://flag:1", token: "flag" });
    writeFileSync(file, "{not json");
    expect(() => resolveCredentials(env, {})).toThrow(/not logged in/);
    expect(() => normalizeUrl("127.0.0.1:7700")).toThrow(UsageError);
    expect(normalizeUrl("http://cp.example:7700/")).toBe("http://cp.example:7700");
  });
});

describe("--since", () => {
  it("takes a time as given or a duration back from now, and refuses anything else", () => {
    const now = Date.parse("2026-11-22T12:00:00Z");
    expect(sinceTime("10m", now)).toBe("2026-11-22T11:50:00.000Z");
    expect(sinceTime("2h", now)).toBe("2026-11-22T10:00:00.000Z");
    expect(sinceTime("2026-11-22T09:00:00Z", now)).toBe("2026-11-22T09:00:00Z");
    expect(() => sinceTime("yesterday", now)).toThrow(/neither a time .* nor a duration/);
  });
});

describe("formatting", () => {
  it("aligns columns, and says how long things took and how long ago", () => {
    expect(table([["A", "LONGER"], ["xyz", "1"]])).toBe("A    LONGER\nxyz  1\n");
    expect(table([["ONLY", "HEADER"]])).toBe("(none)\n");
    expect(duration(815)).toBe("815 ms");
    expect(duration(12_340)).toBe("12.3 s");
    expect(duration(245_000)).toBe("4 m 05 s");
    expect(duration(7_380_000)).toBe("2 h 03 m");
    const now = Date.parse("2026-11-22T12:00:00Z");
    expect(ago("2026-11-22T11:59:48Z", now)).toBe("12 s ago");
    expect(ago("2026-11-20T11:00:00Z", now)).toBe("2026-11-20T11:00:00Z");
    expect(ago(null, now)).toBe("-");
  });
});
