import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, nkeyAuthenticator, nkeys, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { JOBS_STREAM, hostInboxPrefix, jobsConsumer, jobsSubject, logsSubject, shellSubject } from "@slipway/core";
import { Platform, repoRoot, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { waitFor } from "./support/processes.js";

/** What the server answers a subscription: "ok" when it stands for 300 ms, else the refusal. */
async function trySubscribe(nc: NatsConnection, subject: string): Promise<string> {
  const sub = nc.subscribe(subject);
  const closed = sub.closed.then((err) => (err ? String((err as Error).message) : "closed"));
  await nc.flush();
  return Promise.race([closed, new Promise<string>((r) => setTimeout(() => r("ok"), 300))]).finally(() => sub.unsubscribe());
}

/** What the server answers a publish: a request (an answer or "no responders" means the publish was let through). */
async function tryPublish(nc: NatsConnection, subject: string): Promise<string> {
  try {
    await nc.request(subject, "x", { timeout: 1000 });
    return "ok";
  } catch (err) {
    const m = (err as Error).message;
    return /permission/i.test(m) ? m : "ok";
  }
}

// Issue 11, must show 3: each host has its own NATS user (the agent's nkey; the seed never leaves
// it) allowed only its own subjects and inbox prefix. The NATS server is configured as an operator
// would configure an external one: its configuration includes the users file the control plane
// writes (SLIPWAY_NATS_USERS_FILE) and reloads (SLIPWAY_NATS_RELOAD_COMMAND); the embedded default
// runs the same file (up.e2e). Real nats-server, control plane, two agents, dockerd.
describe("NATS identities per host", () => {
  const platform = new Platform({ database: "pglite" });
  const repo = new TestRepo();
  let a: AgentHandle;
  let b: AgentHandle;
  let asA: NatsConnection | undefined;

  beforeAll(async () => {
    await platform.start();
    a = await platform.addAgent({ SLIPWAY_AGENT_LABELS: "zone=a" });
    b = await platform.addAgent({ SLIPWAY_AGENT_LABELS: "zone=b" });
    repo.commit(helloApp("on host b"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "bee", repository: repo.url });
    await platform.api.call("PATCH", "/v1/apps/bee/environments/test", { hostLabels: { zone: "b" } });
    const d = await platform.api.deploy("bee", "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
  });
  afterAll(async () => {
    await asA?.close().catch(() => undefined);
    await platform.stop();
  });

  it("refuses a client without credentials, and one with a key the control plane never accepted", async () => {
    await expect(connect({ servers: platform.nats.url, reconnect: false })).rejects.toThrow(/Authorization Violation/i);
    const stranger = nkeys.createUser().getSeed();
    await expect(connect({ servers: platform.nats.url, reconnect: false, authenticator: nkeyAuthenticator(stranger) })).rejects.toThrow(/Authorization Violation/i);
  });

  it("lets host A's identity use its own subjects and nothing of host B's: jobs, log and shell requests, inboxes", async () => {
    asA = await platform.natsAsAgent(0);
    const A = a.hostId!;
    const B = b.hostId!;
    // Its own: the log and shell requests addressed to it, its inboxes, its jobs consumer.
    expect(await trySubscribe(asA, logsSubject(A))).toBe("ok");
    expect(await trySubscribe(asA, shellSubject(A))).toBe("ok");
    expect(await trySubscribe(asA, `${hostInboxPrefix(A)}.anything`)).toBe("ok");
    const own = await jetstream(asA).consumers.get(JOBS_STREAM, jobsConsumer(A));
    expect((await own.info(true)).config.filter_subject).toBe(jobsSubject(A));

    // B's subjects, other inboxes and wildcards: each refused by the server.
    for (const subject of [logsSubject(B), shellSubject(B), `${hostInboxPrefix(B)}.>`, `${hostInboxPrefix(B)}.shell.*`, "_INBOX.>", "slipway.>", jobsSubject(B), ">"]) {
      expect(await trySubscribe(asA, subject), `subscribe ${subject}`).toMatch(/Permissions Violation for Subscription/);
    }
    // Publishing as the control plane would (a request to B, a job), or into B's inboxes.
    for (const subject of [logsSubject(B), shellSubject(B), `${hostInboxPrefix(B)}.shell.abc.in`, jobsSubject(B), jobsSubject(A), `$JS.API.CONSUMER.MSG.NEXT.${JOBS_STREAM}.${jobsConsumer(B)}`, `$JS.API.STREAM.DELETE.${JOBS_STREAM}`]) {
      expect(await tryPublish(asA, subject), `publish ${subject}`).toMatch(/Permissions Violation for Publish/);
    }
    // Pulling B's jobs through the JetStream API.
    await expect(jetstream(asA).consumers.get(JOBS_STREAM, jobsConsumer(B))).rejects.toThrow(/Permissions Violation/);
    expect(asA.isClosed()).toBe(false);
  });

  it("keeps a shell session on host B between B and the control plane: host A can neither read nor write it", async () => {
    const B = b.hostId!;
    // A session on B that prints for a few seconds, started the way an admin does.
    const cli = spawn(path.join(repoRoot, "bin/slipway"), ["shell", "bee", "test", "--", "sh", "-c", "for i in 1 2 3 4 5 6; do echo secret-$i; sleep 0.5; done"], {
      env: { PATH: process.env.PATH!, HOME: platform.dir, SLIPWAY_URL: platform.api.baseUrl, SLIPWAY_TOKEN: platform.adminToken },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    cli.stdout.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => cli.on("close", r));
    try {
      await waitFor("the session to print", async () => out.includes("secret-1"), { timeoutMs: 20_000, intervalMs: 50 });
      // While it runs: every way to its frames or its input is refused.
      expect(await trySubscribe(asA!, `${hostInboxPrefix(B)}.shell.>`)).toMatch(/Permissions Violation for Subscription/);
      expect(await trySubscribe(asA!, `${hostInboxPrefix(B)}.>`)).toMatch(/Permissions Violation for Subscription/);
      expect(await tryPublish(asA!, `${hostInboxPrefix(B)}.shell.x.in`)).toMatch(/Permissions Violation for Publish/);
      // What A may subscribe to (its own prefix) carries nothing of B's session.
      const seen: string[] = [];
      const own = asA!.subscribe(`${hostInboxPrefix(a.hostId!)}.>`, { callback: (_e, m) => void seen.push(m.subject) });
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 20_000))])).toBe(0);
      own.unsubscribe();
      expect(seen).toEqual([]);
      expect(out).toContain("secret-6");
    } finally {
      cli.kill("SIGKILL");
    }
  });

  it("removes a revoked host's NATS user at once: its open connection is closed and it cannot connect again", async () => {
    const conn = asA!;
    const closed = conn.closed();
    await platform.api.call("POST", `/v1/hosts/${a.hostId}/revoke`);
    // The revocation answers once the server runs the new users (the control plane checks): the
    // connection is closed by the server right then, not at some later reload.
    const outcome = await Promise.race([closed.then((err) => `closed: ${err ? (err as Error).message : "no error"}`), new Promise<string>((r) => setTimeout(() => r("still open after 2 s"), 2000))]);
    expect(outcome).toMatch(/^closed/);
    await expect(platform.natsAsAgent(0)).rejects.toThrow(/Authorization Violation/i);
    // Host B is untouched.
    const stillB = await platform.natsAsAgent(1);
    expect(await trySubscribe(stillB, shellSubject(b.hostId!))).toBe("ok");
    await stillB.close();
  });
});
