import { afterEach, describe, expect, it, vi } from "vitest";
import { run, type Io } from "../cli.js";
import { UsageError } from "../config.js";
import { expiryTime, tokenCreateBody } from "./tokens.js";

function io(): Io & { stdout: string; stderr: string } {
  const o = { stdout: "", stderr: "", env: { SLIPWAY_CONFIG: "/nonexistent/slipway.json", SLIPWAY_URL: "http://cp.test:7700", SLIPWAY_TOKEN: "admin-token" }, out: (t: string) => void (o.stdout += t), err: (t: string) => void (o.stderr += t) };
  return o;
}

/** A fake of the one global the client uses: records each request and answers with `answer`. */
function fakeApi(answer: (method: string, url: string) => unknown) {
  const calls: Array<{ method: string; url: string; body: unknown; auth: string | null }> = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    const method = init.method ?? "GET";
    calls.push({ method, url, body: init.body ? JSON.parse(init.body as string) : undefined, auth: new Headers(init.headers).get("authorization") });
    return new Response(JSON.stringify(answer(method, url)), { status: method === "POST" ? 201 : 200, headers: { "content-type": "application/json" } });
  });
  return calls;
}

const view = { id: "5b8a8a4e-1c1e-4a4a-9c1e-3c2b1a0f9e8d", name: "ci", role: "deployer", apps: ["shop"], bootstrap: false, createdAt: "2026-11-22T10:00:00.000Z", expiresAt: null, lastUsedAt: null, revokedAt: null };

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("slipway tokens", () => {
  it("turns create's options into the API's body, and refuses what the API would refuse before sending anything", () => {
    const now = Date.parse("2026-11-22T12:00:00Z");
    expect(tokenCreateBody("ci", { role: "deployer", apps: "shop, blog" }, now)).toEqual({ name: "ci", role: "deployer", apps: ["shop", "blog"] });
    expect(tokenCreateBody("ops", { role: "admin" }, now)).toEqual({ name: "ops", role: "admin" });
    expect(tokenCreateBody("dash", { role: "viewer", apps: "shop", expires: "90d" }, now)).toEqual({ name: "dash", role: "viewer", apps: ["shop"], expiresAt: "2027-02-20T12:00:00.000Z" });
    expect(expiryTime("12h", now)).toBe("2026-11-23T00:00:00.000Z");
    expect(expiryTime("2w", now)).toBe("2026-12-06T12:00:00.000Z");
    expect(expiryTime("2030-01-31T12:00:00Z", now)).toBe("2030-01-31T12:00:00Z");
    const refused: Array<[Record<string, string>, RegExp]> = [
      [{}, /needs --role admin\|deployer\|viewer/],
      [{ role: "owner" }, /--role 'owner' is not one of admin, deployer, viewer/],
      [{ role: "deployer" }, /a deployer token needs --apps/],
      [{ role: "viewer", apps: " , " }, /a viewer token needs --apps/],
      [{ role: "admin", apps: "shop" }, /admin token reaches every app/],
      [{ role: "deployer", apps: "Shop_1" }, /not app names: Shop_1/],
      [{ role: "deployer", apps: "shop", expires: "tomorrow" }, /--expires 'tomorrow' is neither a time .* nor a duration/],
      [{ role: "deployer", apps: "shop", expires: "10" }, /--expires '10'/],
    ];
    for (const [opts, message] of refused) {
      expect(() => tokenCreateBody("ci", opts, now), JSON.stringify(opts)).toThrow(UsageError);
      expect(() => tokenCreateBody("ci", opts, now), JSON.stringify(opts)).toThrow(message);
    }
  });

  it("exits 2 on wrong usage without calling the API", async () => {
    const calls = fakeApi(() => ({}));
    for (const [args, message] of [
      [["tokens"], /tokens needs one of: list, create, revoke/],
      [["tokens", "create", "ci"], /needs --role/],
      [["tokens", "create", "--role", "deployer"], /missing <name>/],
      [["tokens", "revoke"], /missing <id>/],
      [["tokens", "list", "extra"], /too many arguments/],
    ] as Array<[string[], RegExp]>) {
      const o = io();
      expect(await run(args, o), args.join(" ")).toBe(2);
      expect(o.stderr).toMatch(message);
    }
    expect(calls).toEqual([]);
  });

  it("creates (the secret alone on stdout), lists and revokes through the API", async () => {
    const calls = fakeApi((method) => (method === "POST" ? { token: "slw_secret", ...view } : method === "DELETE" ? { ...view, revokedAt: "2026-11-22T11:00:00.000Z" } : [view, { ...view, id: "x", name: "old", revokedAt: "2026-11-01T00:00:00.000Z" }]));

    const created = io();
    expect(await run(["tokens", "create", "ci", "--role", "deployer", "--apps", "shop"], created)).toBe(0);
    expect(created.stdout).toBe("slw_secret\n");
    expect(created.stderr).toMatch(/token 'ci' \(deployer of shop\), id 5b8a8a4e-.*does not expire/);

    const listed = io();
    expect(await run(["tokens", "list"], listed)).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+ROLE\s+APPS\s+STATE/);
    expect(listed.stdout).toMatch(/ci\s+deployer\s+shop\s+active\s+never\s+never/);
    expect(listed.stdout).not.toMatch(/old/);
    const all = io();
    expect(await run(["tokens", "list", "--all"], all)).toBe(0);
    expect(all.stdout).toMatch(/old\s+deployer\s+shop\s+revoked/);

    const revoked = io();
    expect(await run(["tokens", "revoke", view.id], revoked)).toBe(0);
    expect(revoked.stdout).toBe(`revoked token 'ci' (${view.id}) at 2026-11-22T11:00:00.000Z\n`);

    expect(calls.map((c) => [c.method, c.url, c.body])).toEqual([
      ["POST", "http://cp.test:7700/v1/tokens", { name: "ci", role: "deployer", apps: ["shop"] }],
      ["GET", "http://cp.test:7700/v1/tokens", undefined],
      ["GET", "http://cp.test:7700/v1/tokens", undefined],
      ["DELETE", `http://cp.test:7700/v1/tokens/${view.id}`, undefined],
    ]);
    expect(calls.every((c) => c.auth === "Bearer admin-token")).toBe(true);
  });
});
