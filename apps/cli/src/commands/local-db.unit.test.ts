import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { run, type Io } from "../cli.js";
import { CommandError, UsageError } from "../config.js";
import { LOCAL_RESTORE_FLAGS, requireTools } from "../pg-local.js";
import { confirms, pullPlan, pushPlan } from "./local-db.js";

function io(env: NodeJS.ProcessEnv = {}, extra: Partial<Io> = {}): Io & { stdout: string; stderr: string } {
  const o = {
    stdout: "",
    stderr: "",
    env: { SLIPWAY_CONFIG: "/nonexistent/slipway.json", SLIPWAY_URL: "http://cp.test:7700", SLIPWAY_TOKEN: "t", ...env },
    out: (t: string) => void (o.stdout += t),
    err: (t: string) => void (o.stderr += t),
    ...extra,
  };
  return o;
}

/** Records the requests the client makes; answers every one with `answer`. */
function fakeApi(answer: (method: string, url: string) => unknown = () => ({})) {
  const calls: string[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    calls.push(`${init.method ?? "GET"} ${url}`);
    return new Response(JSON.stringify(answer(init.method ?? "GET", url)), { status: 200, headers: { "content-type": "application/json" } });
  });
  return calls;
}

/** A directory with stand-ins for the PostgreSQL tools: pg_dump writes the start of a custom-format archive to --file. */
function fakeTools(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-fake-pg-"));
  const script = ['#!/bin/sh', 'for a in "$@"; do case "$a" in --file=*) printf "PGDMP\\001\\016\\000\\004\\010\\001rest of the archive" > "${a#--file=}";; esac; done', "exit 0", ""].join("\n");
  for (const tool of ["pg_dump", "pg_restore", "createdb", "dropdb"]) {
    writeFileSync(path.join(dir, tool), script);
    chmodSync(path.join(dir, tool), 0o755);
  }
  return dir;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("slipway pull db / push db: arguments", () => {
  it("pulls into a new local <app>_<env> by default, or into --to; pushes from <app>_<env> or --from", () => {
    const local = pullPlan(["shop", "live"], {});
    expect(local).toMatchObject({ app: "shop", env: "live", isDefault: true, tools: ["pg_restore", "createdb", "dropdb"] });
    expect(local.local).toMatchObject({ database: "shop_live", args: ["--no-password", "--dbname=shop_live"] });
    const to = pullPlan(["shop", "live"], { to: "postgres://me:pw@db.local:6000/scratch" });
    expect(to).toMatchObject({ isDefault: false, tools: ["pg_restore"] });
    expect(to.local.args).toEqual(["--host", "db.local", "--port", "6000", "--username", "me", "--no-password", "--dbname=scratch"]);
    expect(to.local.env.PGPASSWORD).toBe("pw");
    expect(() => pullPlan(["shop", "live"], { to: "mysql://x/y" })).toThrow(UsageError);
    expect(() => pullPlan(["shop", "live"], { to: "postgres://me:secret@h/" })).toThrow(/--to 'postgres:\/\/\*\*\*@h\/': the database URL names no database/);

    expect(() => pushPlan(["shop", "live"], {}, false)).toThrow(/push db replaces the database of shop\/live: run it in a terminal to confirm by typing shop\/live, or add --yes-i-am-sure/);
    expect(pushPlan(["shop", "live"], {}, true)).toMatchObject({ confirmed: false, isDefault: true, tools: ["pg_dump"], local: { database: "shop_live" } });
    expect(pushPlan(["shop", "live"], { "yes-i-am-sure": true, from: "postgres:///other" }, false)).toMatchObject({ confirmed: true, isDefault: false, local: { database: "other" } });
  });

  it("takes only the exact <app>/<env> as confirmation", () => {
    expect(confirms("shop/live", "shop", "live")).toBe(true);
    expect(confirms("  shop/live\n", "shop", "live")).toBe(true);
    for (const answer of ["", "y", "yes", "shop", "live", "shop/test", "SHOP/LIVE", "shop/live/x", undefined]) expect(confirms(answer, "shop", "live"), String(answer)).toBe(false);
  });

  it("restores without owners and privileges, dropping what it replaces, in one transaction", () => {
    expect(LOCAL_RESTORE_FLAGS).toEqual(expect.arrayContaining(["--no-owner", "--no-privileges", "--clean", "--if-exists", "--single-transaction"]));
  });

  it("names the tools that are missing from PATH", () => {
    expect(() => requireTools({ PATH: "/nonexistent:/also-not" }, ["pg_restore", "createdb"])).toThrow(CommandError);
    expect(() => requireTools({ PATH: "/nonexistent" }, ["pg_dump"])).toThrow(/^pg_dump is not on PATH: install the PostgreSQL client tools/);
    expect(() => requireTools({}, ["pg_restore", "createdb"])).toThrow(/^pg_restore, createdb are not on PATH/);
    expect(() => requireTools({ PATH: fakeTools() }, ["pg_dump", "pg_restore", "createdb", "dropdb"])).not.toThrow();
  });
});

describe("slipway pull db / push db: refusals before anything is sent", () => {
  it("exits 2 on wrong usage and 1 without the tools, with one line and no request", async () => {
    const calls = fakeApi();
    const cases: Array<[string[], NodeJS.ProcessEnv, number, RegExp]> = [
      [["pull", "db", "shop"], {}, 2, /^slipway: missing <env>: slipway pull db <app> <env>\n$/],
      [["pull"], {}, 2, /pull needs one of: db/],
      [["pull", "db", "shop", "live", "--to", "ftp://x/y"], {}, 2, /--to 'ftp:\/\/x\/y': unsupported database URL scheme/],
      [["push", "db", "shop", "live"], {}, 2, /^slipway: push db replaces the database of shop\/live: run it in a terminal to confirm by typing shop\/live, or add --yes-i-am-sure\n$/],
      [["pull", "db", "shop", "live"], { PATH: "/nonexistent" }, 1, /^slipway: pg_restore, createdb, dropdb are not on PATH: install the PostgreSQL client tools .*\n$/],
      [["push", "db", "shop", "live", "--yes-i-am-sure"], { PATH: "/nonexistent" }, 1, /^slipway: pg_dump is not on PATH/],
    ];
    for (const [args, env, code, message] of cases) {
      const o = io(env);
      expect(await run(args, o), args.join(" ")).toBe(code);
      expect(o.stderr, args.join(" ")).toMatch(message);
      expect(o.stderr.split("\n").filter(Boolean), args.join(" ")).toHaveLength(1);
      expect(o.stdout).toBe("");
    }
    expect(calls).toEqual([]);
  });

  it("push asks for <app>/<env> after the dump, and sends nothing unless it is typed", async () => {
    const calls = fakeApi(() => ({ name: "live" }));
    const questions: string[] = [];
    const o = io({ PATH: fakeTools() }, { prompt: async (q) => (questions.push(q), "yes") });
    expect(await run(["push", "db", "shop", "live"], o)).toBe(1);
    expect(questions).toEqual([expect.stringMatching(/replaces the database of shop\/live with the local database shop_live .*\nType shop\/live to confirm: $/s)]);
    expect(o.stderr).toMatch(/slipway: not confirmed \(the answer was not shop\/live\): nothing was sent\n$/);
    // Only the look-up of the environment, before the dump: no upload, no restore.
    expect(calls).toEqual(["GET http://cp.test:7700/v1/apps/shop/environments/live"]);
  });
});
