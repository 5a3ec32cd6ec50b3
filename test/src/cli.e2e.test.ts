import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, repoRoot, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { waitFor } from "./support/processes.js";
import { ShellFrameReader, hostInboxPrefix, shellSubject, signHostRequest } from "@slipway/core";
import pg from "pg";

const CLI = path.join(repoRoot, "bin/slipway");
/** busybox httpd that logs each request, so the runtime log has something to show. */
const app = (body: string) => helloApp(body, { cmd: '["httpd", "-f", "-vv", "-p", "8080", "-h", "/www"]' });

interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

// The `slipway` command line against the real platform: what admins and CI type.
describe("slipway CLI", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const config = path.join(mkdtempSync(path.join(tmpdir(), "slipway-cli-")), "config.json");
  const agentLog = () => readFileSync(path.join(platform.dir, "agent-0.log"), "utf8");

  /**
   * Runs the CLI as a user would, with its own config file and nothing else from this process's environment.
   * Commands that follow a stream (deploy, log -f, shell) are bounded: one still running after `timeoutMs`
   * is killed and the call fails with what it printed, well before the test's own timeout.
   */
  const cli = (args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}) =>
    new Promise<CliResult>((resolve, reject) => {
      const p = spawn(CLI, args, { env: { PATH: process.env.PATH!, HOME: path.dirname(config), SLIPWAY_CONFIG: config, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      // A deploy (or a backup) waits for a job on the agent; a shell command here takes a second or two.
      const timeoutMs = opts.timeoutMs ?? (args[0] === "shell" ? 30_000 : 90_000);
      const timer = setTimeout(() => {
        p.kill("SIGKILL");
        reject(new Error(`slipway ${args.join(" ")} did not exit within ${timeoutMs} ms; stdout ends ${JSON.stringify(out.slice(-500))}, stderr ${JSON.stringify(err.slice(-500))}`));
      }, timeoutMs);
      p.stdout.on("data", (d) => (out += d));
      p.stderr.on("data", (d) => (err += d));
      p.on("error", reject);
      p.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
      p.stdin.end(opts.input ?? "");
    });

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    repo.commit(app("cli-v1"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "web", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("logs in with the token on stdin, checks it, and keeps it readable by the user only", async () => {
    const bad = await cli(["login", "--url", platform.api.baseUrl], { input: "slw_not-a-token\n" });
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/401/);
    expect(() => statSync(config)).toThrow();
    const ok = await cli(["login", "--url", platform.api.baseUrl], { input: `${platform.api.token}\n` });
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/logged in to http:\/\/127\.0\.0\.1:\d+ \(1 app visible\)/);
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(config, "utf8"))).toEqual({ url: platform.api.baseUrl.replace(/\/+$/, ""), token: platform.api.token });
    const apps = await cli(["apps"]);
    expect(apps.out).toMatch(/^APP\s+REPOSITORY\s+ENVIRONMENTS\nweb\s+\S+\s+test, live\n$/);
  });

  it("deploys, following the log to the end, and exits 0 only when the deployment succeeded", async () => {
    const ok = await cli(["deploy", "web", "test"]);
    expect(ok.code, ok.err + ok.out).toBe(0);
    expect(ok.out).toContain("===== switch traffic =====");
    expect(ok.out).toMatch(/deployment [0-9a-f-]{36} of web\/test succeeded in [\d.]+ m?s\n$/);
    expect((await getVia(agent.ingressPort, "web-test.localhost")).body).toBe("cli-v1");
    const status = await cli(["status", "web", "test"]);
    expect(status.out).toMatch(/status\s+Last deployment succeeded at /);
    expect(status.out).toContain(`host             ${agent.hostId}`);

    // A release command that fails: exit 1 with the reason, and the site keeps serving.
    await platform.api.call("PATCH", "/v1/apps/web/settings", { releaseCommands: [{ label: "migrate", command: "echo migrating; exit 3" }] });
    repo.commit(app("cli-v2"), "v2");
    const failed = await cli(["deploy", "web", "test"]);
    expect(failed.code).toBe(1);
    expect(failed.out).toContain("migrating");
    expect(failed.out).toMatch(/deployment [0-9a-f-]{36} of web\/test failed in [\d.]+ m?s: .*exit/i);
    expect((await getVia(agent.ingressPort, "web-test.localhost")).body).toBe("cli-v1");
    await platform.api.call("PATCH", "/v1/apps/web/settings", { releaseCommands: [] });

    // --detach prints the id at once; `log -f` follows it to its end with the same exit status.
    const detached = await cli(["deploy", "web", "test", "--detach"]);
    expect(detached.code).toBe(0);
    const id = detached.out.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const followed = await cli(["log", id, "-f"]);
    expect(followed.code, followed.out).toBe(0);
    expect(followed.out).toContain("===== cleanup =====");
    expect((await getVia(agent.ingressPort, "web-test.localhost")).body).toBe("cli-v2");
    const list = await cli(["deployments", "web", "test", "--json"]);
    expect(JSON.parse(list.out).map((d: { state: string }) => d.state)).toEqual(["succeeded", "failed", "succeeded"]);
  });

  it("sets and removes variables, and manages domains", async () => {
    expect((await cli(["vars", "set", "web", "test", "GREETING=hello world", "LEVEL=3"])).code).toBe(0);
    expect((await cli(["vars", "list", "web", "test", "--reveal"])).out).toContain("GREETING=hello world\nLEVEL=3\n");
    expect((await cli(["status", "web", "test"])).out).toMatch(/status\s+All commits deployed, unapplied changes\n/);
    expect((await cli(["vars", "unset", "web", "test", "LEVEL"])).code).toBe(0);
    const vars = JSON.parse((await cli(["vars", "list", "web", "test", "--reveal", "--json"])).out);
    expect(vars.GREETING).toBe("hello world");
    expect(vars.LEVEL).toBeUndefined();

    expect((await cli(["domains", "add", "web", "test", "www.cli-example.test"])).code).toBe(0);
    expect((await cli(["domains", "list", "web", "test"])).out).toContain("www.cli-example.test\n");
    expect((await cli(["domains", "remove", "web", "test", "www.cli-example.test"])).code).toBe(0);
    expect((await cli(["domains", "list", "web", "test"])).out).not.toContain("www.cli-example.test");
  });

  it("prints the runtime log, backs up and restores", async () => {
    await getVia(agent.ingressPort, "web-test.localhost", "/from-the-cli-test");
    const logs = await cli(["logs", "web", "test", "--tail", "50"]);
    expect(logs.code, logs.err).toBe(0);
    expect(logs.out).toContain("/from-the-cli-test");

    const backup = await cli(["backups", "create", "web", "test", "--database"]);
    expect(backup.code, backup.err + backup.out).toBe(0);
    const id = /backup ([0-9a-f-]{36}) of web\/test succeeded/.exec(backup.out)?.[1];
    expect(id, backup.out).toBeDefined();
    expect((await cli(["backups", "list", "web", "test"])).out).toMatch(new RegExp(`${id}\\s+manual\\s+succeeded\\s+database`));
    const restore = await cli(["backups", "restore", id!, "--yes"]);
    expect(restore.code, restore.err + restore.out).toBe(0);
    expect(restore.out).toMatch(/succeeded/);
  });

  it("runs commands and an interactive shell in the running container, with their exit status", async () => {
    const cat = await cli(["shell", "web", "test", "--", "cat", "/www/index.html"]);
    expect(cat.code, cat.err).toBe(0);
    expect(cat.out).toBe("cli-v2");
    const both = await cli(["shell", "web", "test", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    expect(both.code).toBe(7);
    expect(both.out).toBe("out\n");
    expect(both.err).toBe("err\n");
    // No command: the container's /bin/sh, fed from stdin.
    const sh = await cli(["shell", "web", "test"], { input: "cd /www && ls\necho sum=$((40+2))\nexit 3\n" });
    expect(sh.code, sh.err).toBe(3);
    expect(sh.out).toBe("index.html\nsum=42\n");
    // A terminal on request: the command sees a pseudo-terminal.
    const tty = await cli(["shell", "-t", "web", "test", "--", "tty"]);
    expect(tty.code, tty.err).toBe(0);
    expect(tty.out).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
    const container = JSON.parse(agentLog().split("\n").filter((l) => l.includes('"shell session started"')).at(-1)!).container as string;
    const activity = await platform.api.call("GET", "/v1/activity?app=web&env=test");
    const opened = activity.filter((a: { action: string }) => a.action === "shell.opened");
    expect(opened).toHaveLength(4);
    expect(opened.map((a: { details: { command: string[] } }) => a.details.command[0]).sort()).toEqual(["/bin/sh", "cat", "sh", "tty"]);
    // A client that vanishes mid-session: the agent stops the command, even one that ignores its input.
    const sleeping = () => execFileSync("docker", ["top", container], { encoding: "utf8" }).includes("sleep 300");
    const vanishing = spawn(CLI, ["shell", "web", "test", "--", "sleep", "300"], { env: { PATH: process.env.PATH!, HOME: path.dirname(config), SLIPWAY_CONFIG: config }, stdio: ["pipe", "pipe", "pipe"] });
    await waitFor("the command to run in the container", async () => sleeping(), 10_000, 100);
    vanishing.kill("SIGKILL");
    // Without a terminal, closing its input does not end `sleep`: the agent signals it.
    await waitFor("the agent to stop the abandoned command", async () => !sleeping(), 15_000, 200);
    await waitFor("the agent's log of it", async () => agentLog().includes("stopped the command of an abandoned shell session"), 5_000, 100);
    // Bad requests at the REST edge: 400, no session, nothing recorded.
    const post = (query: string, contentType: string) =>
      fetch(`${platform.api.baseUrl}/v1/apps/web/environments/test/shell${query}`, { method: "POST", headers: { authorization: `Bearer ${platform.api.token}`, "content-type": contentType }, body: "" });
    expect((await post("?command=not-json", "application/vnd.slipway.shell-frames")).status).toBe(400);
    expect((await post(`?command=${encodeURIComponent("[]")}`, "application/vnd.slipway.shell-frames")).status).toBe(400);
    expect((await post("", "text/plain")).status).toBe(400);
    expect((await platform.api.call("GET", "/v1/activity?app=web&env=test")).filter((a: { action: string }) => a.action === "shell.opened")).toHaveLength(5);
    // live never ran: nothing to open a shell in.
    const notRunning = await cli(["shell", "web", "live", "--", "true"]);
    expect(notRunning.code).toBe(1);
    expect(notRunning.err).toMatch(/web\/live is not_deployed: a shell needs a running container \(409 conflict\)/);
  });

  it("the agent refuses shell requests the control plane did not sign, and replays of those it did", async () => {
    const nc = await platform.natsAsControlPlane();
    try {
      /**
       * Publishes a request as the control plane would, answers the agent's first frame as `type:payload`
       * ("no answer" after `waitMs`: 30 s for an answer that must come, as a session's first frame follows a
       * `docker exec` a busy machine may take seconds to start).
       */
      const ask = async (payload: { request: { inbox: string }; signature: string }, waitMs = 30_000): Promise<string> => {
        const sub = nc.subscribe(payload.request.inbox, { max: 1 });
        nc.publish(shellSubject(agent.hostId!), JSON.stringify(payload));
        const timeout = setTimeout(() => sub.unsubscribe(), waitMs);
        for await (const m of sub) {
          clearTimeout(timeout);
          const [frame] = new ShellFrameReader().push(m.data);
          return `${frame!.type}:${frame!.payload.toString("utf8")}`;
        }
        return "no answer";
      };
      let n = 0;
      const request = () => ({ app: "web", environment: "test", command: ["id"], tty: false, rows: 0, cols: 0, inbox: `${hostInboxPrefix(agent.hostId!)}.cli-test.${Date.now()}.${n++}`, issuedAt: Date.now() });
      // Unsigned, and signed with a wrong key (a guess of the credential hash).
      expect(await ask({ request: request(), signature: "0".repeat(64) })).toMatch(/^5:the agent refused the request/);
      expect(await ask(signHostRequest("shell", "f".repeat(64), request()))).toMatch(/^5:the agent refused the request/);
      // Signed with the host's key (as the control plane does) but stale.
      const db = new pg.Client({ connectionString: platform.databaseUrl });
      await db.connect();
      const host = (await db.query<{ credential_hash: string }>("SELECT credential_hash FROM hosts WHERE id = $1", [agent.hostId])).rows[0]!.credential_hash;
      await db.end();
      const stale = signHostRequest("shell", host, { ...request(), issuedAt: Date.now() - 60_000 });
      expect(await ask(stale)).toMatch(/^5:the agent refused the request/);
      // A valid one opens a session once; the same message again is refused.
      // Signed as a log request: the kind is part of what is signed.
      expect(await ask(signHostRequest("logs", host, request()))).toMatch(/^5:the agent refused the request/);
      // Signed, but answering on an inbox outside the host's prefix (where another party could listen): no answer at all.
      expect(await ask(signHostRequest("shell", host, { ...request(), inbox: `_INBOX.elsewhere.${n++}` }), 5000)).toBe("no answer");
      const fresh = signHostRequest("shell", host, request());
      expect(await ask(fresh)).toMatch(/^1:/);
      expect(await ask(fresh)).toMatch(/^5:the agent refused the request/);
      nc.publish(`${fresh.request.inbox}.close`, "");
    } finally {
      await nc.close();
    }
  });

  it("refuses wrong usage with exit 2 and sends nothing; API refusals exit 1 with the API's reason", async () => {
    const before = await platform.api.call("GET", "/v1/apps/web/environments/test/variables?reveal=true");
    const usage: Array<[string[], RegExp]> = [
      [["deploy", "web"], /missing <env>/],
      [["vars", "set", "web", "test", "NOEQUALS"], /'NOEQUALS' is not KEY=VALUE/],
      [["vars", "set", "web", "test", "1BAD=x"], /not a variable name/],
      [["deploy", "web", "test", "--build", "sometimes"], /--build must be auto, force or reuse/],
      [["copy", "web", "live", "--from", "test"], /add --yes/],
      [["backups", "restore", "some-id"], /add --yes/],
      [["vars"], /vars needs one of: list, set, unset/],
      [["launch", "web"], /unknown command 'launch'/],
      [["deploy", "web", "test", "--force"], /Unknown option '--force'/],
    ];
    for (const [args, message] of usage) {
      const r = await cli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err, args.join(" ")).toMatch(message);
    }
    expect(await platform.api.call("GET", "/v1/apps/web/environments/test/variables?reveal=true")).toEqual(before);
    const deployments = (await platform.api.call("GET", "/v1/apps/web/environments/test/deployments")).length;

    const missing = await cli(["deploy", "nope", "test"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/app 'nope' does not exist \(404 not_found\)/);
    const denied = await cli(["apps"], { env: { SLIPWAY_TOKEN: "slw_wrong" } });
    expect(denied.code).toBe(1);
    expect(denied.err).toMatch(/401/);
    const unreachable = await cli(["apps", "--url", "http://127.0.0.1:9"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.err).toMatch(/cannot reach the control plane at http:\/\/127\.0\.0\.1:9/);
    expect((await platform.api.call("GET", "/v1/apps/web/environments/test/deployments")).length).toBe(deployments);

    expect((await cli(["logout"])).out).toContain("removed");
    const loggedOut = await cli(["apps"]);
    expect(loggedOut.code).toBe(2);
    expect(loggedOut.err).toMatch(/not logged in/);
  });
});
