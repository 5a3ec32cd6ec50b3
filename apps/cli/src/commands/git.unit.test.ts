import { afterEach, describe, expect, it, vi } from "vitest";
import { run, type Io } from "../cli.js";
import { UsageError } from "../config.js";
import { deploymentsTable, type DeploymentItem } from "./deploy.js";
import { changeLines, deployKeyHint, formatHooks, formatPending, pollBody, rollbackTarget, type HookView, type PendingView } from "./git.js";

const NOW = Date.parse("2026-11-22T12:00:00Z");

function io(): Io & { stdout: string; stderr: string } {
  const o = { stdout: "", stderr: "", pollMs: 1, env: { SLIPWAY_CONFIG: "/nonexistent/slipway.json", SLIPWAY_URL: "http://cp.test:7700", SLIPWAY_TOKEN: "admin-token" }, out: (t: string) => void (o.stdout += t), err: (t: string) => void (o.stderr += t) };
  return o;
}

/** A fake of the one global the client uses: records each request and answers with `answer` (JSON, or text for a log). */
function fakeApi(answer: (method: string, url: string) => unknown) {
  const calls: Array<{ method: string; url: string; body: unknown }> = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    const method = init.method ?? "GET";
    calls.push({ method, url, body: init.body ? JSON.parse(init.body as string) : undefined });
    const a = answer(method, url);
    if (a instanceof Response) return a;
    if (typeof a === "string") return new Response(a, { status: 200, headers: { "content-type": "text/plain" } });
    return new Response(JSON.stringify(a), { status: method === "POST" ? 202 : 200, headers: { "content-type": "application/json" } });
  });
  return calls;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

function deployment(over: Partial<DeploymentItem> & { id: string }): DeploymentItem {
  return { state: "succeeded", kind: "deploy", commit: "0123456789abcdef0123", finishedAt: "2026-11-22T11:00:00Z", requestedBy: "alice", rollbackable: false, ...over };
}

// Newest first, as the API lists them: the running one, a failed one, two that can be rolled back to.
const LIST = [
  deployment({ id: "aaaa1111-0000-4000-8000-000000000001" }),
  deployment({ id: "bbbb2222-0000-4000-8000-000000000002", state: "failed" }),
  deployment({ id: "cccc3333-0000-4000-8000-000000000003", kind: "rollback", rollbackable: true, requestedBy: "bob" }),
  deployment({ id: "cccc4444-0000-4000-8000-000000000004", rollbackable: true }),
];

describe("slipway rollback: the target", () => {
  it("takes the newest deployment that can be rolled back to, or the one named by id or unique prefix", () => {
    expect(rollbackTarget(LIST, "shop/live")).toEqual({ id: LIST[2]!.id, picked: LIST[2] });
    expect(rollbackTarget(LIST, "shop/live", LIST[3]!.id)).toEqual({ id: LIST[3]!.id, picked: LIST[3] });
    expect(rollbackTarget(LIST, "shop/live", "cccc4")).toEqual({ id: LIST[3]!.id, picked: LIST[3] });
    // Not rollbackable by the list's account: still sent, the API says why it refuses.
    expect(rollbackTarget(LIST, "shop/live", "bbbb")).toEqual({ id: LIST[1]!.id, picked: LIST[1] });
    expect(rollbackTarget(LIST, "shop/live", "older-than-the-list")).toEqual({ id: "older-than-the-list" });
  });

  it("says so when nothing can be rolled back to, or a prefix names several", () => {
    expect(rollbackTarget([], "shop/live")).toEqual({ error: expect.stringMatching(/^nothing to roll back to in shop\/live: no earlier successful deployment/) });
    expect(rollbackTarget(LIST.slice(0, 2), "shop/live")).toHaveProperty("error");
    expect(rollbackTarget(LIST, "shop/live", "cccc")).toEqual({ error: expect.stringMatching(/'cccc' is the start of 2 deployments of shop\/live: cccc3333-.*, cccc4444-/) });
  });
});

describe("slipway deployments: the table", () => {
  it("shows short ids, kind, commit, who, and marks what a rollback can go to", () => {
    const text = deploymentsTable([...LIST, deployment({ id: "dddd5555-0000-4000-8000-000000000005", state: "running", kind: "promote", commit: null, finishedAt: null })], NOW);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^ID\s+KIND\s+STATE\s+COMMIT\s+FINISHED\s+BY\s+ROLLBACK$/);
    expect(lines[1]).toMatch(/^aaaa1111\s+deploy\s+succeeded\s+0123456789ab\s+1 h 00 m ago\s+alice$/);
    expect(lines[3]).toMatch(/^cccc3333\s+rollback\s+succeeded\s+0123456789ab\s+1 h 00 m ago\s+bob\s+✓$/);
    expect(lines[5]).toMatch(/^dddd5555\s+promote\s+running\s+-\s+-\s+alice$/);
  });
});

const PENDING: PendingView = {
  app: "shop",
  environment: "live",
  branch: "main",
  deployedCommit: "fedcba9876543210fedcba9876543210fedcba98",
  status: { message: "2 undeployed commits and unapplied changes", syncedAt: "2026-11-22T11:59:00Z", syncError: null },
  commits: [
    { sha: "1111111aaaaaaa", author: "Alice", at: "2026-11-22T11:58:50Z", message: "Fix the cart\n\nThe total was off by one." },
    { sha: "2222222bbbbbbb", author: "Bob", at: "2026-11-19T08:00:00Z", message: "Add a page" },
  ],
  changes: {
    branch: { from: "release", to: "main" },
    variables: { added: ["STRIPE_KEY"], changed: ["GREETING"], removed: [] },
    settings: ["buildCommand"],
    domains: { added: [], removed: ["old.example"] },
    replicas: { from: 1, to: 2 },
    limits: { from: { memoryMb: 512, cpus: 1, pids: 512 }, to: { memoryMb: 1024, cpus: 1, pids: 512 } },
  },
};

describe("slipway pending: the text", () => {
  it("prints the status line, the commits like git log --oneline, and the changes by name", () => {
    expect(formatPending(PENDING, NOW)).toBe(
      [
        "2 undeployed commits and unapplied changes",
        "shop/live: branch main, deployed fedcba9",
        "",
        "2 undeployed commits on main:",
        "1111111  Alice  1 m 10 s ago          Fix the cart",
        "2222222  Bob    2026-11-19T08:00:00Z  Add a page",
        "",
        "unapplied changes:",
        "  branch: release → main",
        "  variables: added STRIPE_KEY; changed GREETING",
        "  settings: buildCommand",
        "  domains: removed old.example",
        "  replicas: 1 → 2",
        "  limits: memoryMb 512 → 1024",
        "",
      ].join("\n"),
    );
  });

  it("says when the mirror cannot tell, and when there is nothing to deploy", () => {
    const unknown = formatPending({ ...PENDING, commits: null, status: { message: "Last deployment succeeded", syncedAt: null, syncError: "git ls-remote: Permission denied (publickey)" }, changes: {} }, NOW);
    expect(unknown).toContain("undeployed commits: (the mirror could not tell: last sync never, git ls-remote: Permission denied (publickey))\n");
    expect(unknown).toMatch(/\nno unapplied changes\n$/);
    const none = formatPending({ ...PENDING, deployedCommit: null, commits: [], changes: {} }, NOW);
    expect(none).toContain("shop/live: branch main, nothing deployed yet\n");
    expect(none).toContain("no undeployed commits on main\n");
  });

  it("never shows a variable's value (the API sends none; only names reach the text)", () => {
    expect(changeLines({ variables: { added: [], changed: [], removed: ["OLD"] } })).toEqual(["variables: removed OLD"]);
    expect(changeLines({})).toEqual([]);
  });
});

const HOOK: HookView = {
  url: "https://cp.example/v1/hooks/shop",
  secret: "s3cret",
  providers: ["github", "gitlab"],
  pollIntervalSeconds: 60,
  pollIntervalDefault: true,
  sync: { syncedAt: "2026-11-22T11:59:30Z", error: null },
  autoDeploy: { test: true, live: false, staging: true },
};

describe("slipway hooks and keys: the text", () => {
  it("shows what the git host's webhook form asks for, the poll interval, the last sync and where a push deploys", () => {
    const text = formatHooks(HOOK, NOW);
    expect(text).toMatch(/^url\s+https:\/\/cp\.example\/v1\/hooks\/shop$/m);
    expect(text).toMatch(/^secret\s+s3cret \(GitLab: the secret token\)$/m);
    expect(text).toMatch(/^content type\s+application\/json$/m);
    expect(text).toMatch(/^poll\s+every 60 s \(the platform's default\)$/m);
    expect(text).toMatch(/^last sync\s+30 s ago$/m);
    expect(text).toMatch(/^deploy on push\s+staging, test \(not live\)$/m);
    const other = formatHooks({ ...HOOK, pollIntervalSeconds: 0, pollIntervalDefault: false, sync: { syncedAt: null, error: "host key changed" }, autoDeploy: { live: false } }, NOW);
    expect(other).toMatch(/^poll\s+never \(webhooks only\) \(set for this app\)$/m);
    expect(other).toMatch(/^last sync\s+failed: host key changed \(last success: never\)$/m);
    expect(other).toMatch(/^deploy on push\s+none/m);
  });

  it("reads --poll as seconds or default", () => {
    expect(pollBody("300")).toEqual({ pollIntervalSeconds: 300 });
    expect(pollBody("0")).toEqual({ pollIntervalSeconds: 0 });
    expect(pollBody("default")).toEqual({ pollIntervalSeconds: null });
    for (const bad of ["-1", "5m", "86401", ""]) expect(() => pollBody(bad), bad).toThrow(UsageError);
  });

  it("hints where the deploy key goes, and says when it is not used", () => {
    const k = { publicKey: "ssh-ed25519 AAAA slipway-shop", fingerprint: "SHA256:abc", repository: "git@github.com:acme/shop.git", used: true };
    expect(deployKeyHint(k, false)).toBe("add it to git@github.com:acme/shop.git as a read-only deploy key (SHA256:abc)\n");
    expect(deployKeyHint({ ...k, repository: "https://github.com/acme/shop.git", used: false }, true)).toMatch(/and remove the old one .*\nnote: https:\/\/github\.com\/acme\/shop\.git is not an ssh URL, so this key is not used/);
  });
});

describe("the commands against a fake API", () => {
  it("keys: the key alone on stdout, the hint on stderr; --rotate posts", async () => {
    const calls = fakeApi(() => ({ publicKey: "ssh-ed25519 AAAA slipway-shop\n", fingerprint: "SHA256:abc", repository: "git@github.com:acme/shop.git", used: true }));
    const o = io();
    expect(await run(["keys", "shop"], o)).toBe(0);
    expect(o.stdout).toBe("ssh-ed25519 AAAA slipway-shop\n");
    expect(o.stderr).toMatch(/^add it to git@github\.com:acme\/shop\.git as a read-only deploy key/);
    expect(await run(["keys", "shop", "--rotate"], io())).toBe(0);
    expect(calls.map((c) => [c.method, c.url])).toEqual([
      ["GET", "http://cp.test:7700/v1/apps/shop/deploy-key"],
      ["POST", "http://cp.test:7700/v1/apps/shop/deploy-key/rotate"],
    ]);
  });

  it("hooks: --poll patches, --rotate posts, both at once is a usage error", async () => {
    const calls = fakeApi(() => HOOK);
    expect(await run(["hooks", "shop", "--poll", "default"], io())).toBe(0);
    expect(await run(["hooks", "shop", "--rotate"], io())).toBe(0);
    const both = io();
    expect(await run(["hooks", "shop", "--rotate", "--poll", "5"], both)).toBe(2);
    expect(both.stderr).toMatch(/one at a time/);
    expect(calls.map((c) => [c.method, c.url, c.body])).toEqual([
      ["PATCH", "http://cp.test:7700/v1/apps/shop/hooks", { pollIntervalSeconds: null }],
      ["POST", "http://cp.test:7700/v1/apps/shop/hooks/rotate", undefined],
    ]);
  });

  it("promote: --content needs --yes; it posts promoteFrom (and the content) and follows the deployment to its end", async () => {
    const refused = io();
    expect(await run(["promote", "shop", "test", "live", "--content"], refused)).toBe(2);
    expect(refused.stderr).toMatch(/replaces the database and media of shop\/live with test's: add --yes/);

    const d = { id: "eeee", app: "shop", environment: "live", state: "failed", queuedAt: "2026-11-22T11:00:00Z", finishedAt: "2026-11-22T11:00:05Z", error: { message: "probe failed" } };
    const calls = fakeApi((method, url) => (url.endsWith("/log?follow=true") ? "step 1\n" : method === "POST" ? { ...d, state: "queued" } : d));
    const o = io();
    expect(await run(["promote", "shop", "test", "live", "--content", "--yes"], o)).toBe(1);
    expect(calls[0]).toEqual({ method: "POST", url: "http://cp.test:7700/v1/apps/shop/environments/live/deployments", body: { promoteFrom: "test", content: { from: "test", confirm: true } } });
    expect(o.stdout).toMatch(/^step 1\n\ndeployment eeee of shop\/live failed in 5\.0 s: probe failed\n$/);
  });

  it("rollback: says which deployment it picked and posts rollbackTo; nothing to go back to exits 1 without posting", async () => {
    const d = { id: "ffff", app: "shop", environment: "live", state: "succeeded", queuedAt: "2026-11-22T11:00:00Z", finishedAt: "2026-11-22T11:00:02Z" };
    let list = LIST;
    const calls = fakeApi((method, url) => (url.endsWith("/deployments") && method === "GET" ? list : url.endsWith("/log?follow=true") ? "" : d));
    const o = io();
    expect(await run(["rollback", "shop", "live", "--run-release-commands"], o)).toBe(0);
    expect(o.stderr).toMatch(/^rolling shop\/live back to cccc3333-0000-4000-8000-000000000003 \(rollback of 0123456789ab, finished .* by bob\)\n/);
    expect(calls[1]).toMatchObject({ method: "POST", body: { rollbackTo: LIST[2]!.id, runReleaseCommands: true } });

    list = LIST.slice(0, 2);
    calls.length = 0;
    const none = io();
    expect(await run(["rollback", "shop", "live"], none)).toBe(1);
    expect(none.stderr).toMatch(/^slipway: nothing to roll back to in shop\/live/);
    expect(calls.map((c) => c.method)).toEqual(["GET"]);

    const extra = io();
    expect(await run(["rollback", "shop", "live", "a", "b"], extra)).toBe(2);
    expect(extra.stderr).toMatch(/too many arguments: slipway rollback <app> <env> \[<deployment-id>\]/);
  });

  it("prints an unknown environment as the other commands do: one line, exit 1", async () => {
    fakeApi(() => new Response(JSON.stringify({ error: { code: "not_found", message: "environment 'nope' of shop does not exist" } }), { status: 404, headers: { "content-type": "application/json" } }));
    const o = io();
    expect(await run(["pending", "shop", "nope"], o)).toBe(1);
    expect(o.stderr).toBe("slipway: environment 'nope' of shop does not exist (404 not_found)\n");
  });
});

describe("slipway repository", () => {
  it("sends the token read from stdin, never from the command line, and says it is sealed", async () => {
    const calls = fakeApi(() => ({ name: "shop", repository: "https://git.example/acme/shop.git", repositoryCredentials: true }));
    const o = io();
    o.readStdin = async () => "glpat-secret\n";
    expect(await run(["repository", "shop", "https://git.example/acme/shop.git", "--token-stdin", "--username", "oauth2"], o)).toBe(0);
    expect(calls).toEqual([{ method: "PUT", url: "http://cp.test:7700/v1/apps/shop/repository", body: { url: "https://git.example/acme/shop.git", token: "glpat-secret", username: "oauth2" } }]);
    expect(o.stdout).toBe("shop: https://git.example/acme/shop.git (with its access token, sealed)\n");
    expect(o.stdout + o.stderr).not.toContain("glpat-secret");
  });

  it("refuses an empty stdin and contradictory options before sending anything", async () => {
    const calls = fakeApi(() => ({}));
    expect(await run(["repository", "shop", "https://x/y.git", "--token-stdin"], { ...io(), readStdin: async () => "" })).toBe(2);
    expect(await run(["repository", "shop", "https://x/y.git", "--token-stdin", "--remove-token"], io())).toBe(2);
    expect(await run(["repository", "shop", "https://x/y.git", "--username", "u"], io())).toBe(2);
    expect(calls).toEqual([]);
    fakeApi(() => ({ name: "shop", repository: "https://x/y.git", repositoryCredentials: false }));
    expect(await run(["repository", "shop", "https://x/y.git", "--remove-token"], io())).toBe(0);
  });
});
