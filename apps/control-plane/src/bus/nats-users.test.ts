import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { nkeyAuthenticator, nkeys, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, AckPolicy, RetentionPolicy } from "@nats-io/jetstream";
import { JOBS_STREAM, createLogger, jobsConsumer, jobsSubject, logsSubject, shellSubject } from "@slipway/core";
import { startEmbeddedNats, type EmbeddedNats } from "../embedded/nats-server.js";
import { NatsUserDirectory, accessWithSeed, isNatsUserKey, loadOrCreateSeed, publicKeyOf, renderNatsUsers, type NatsHostUser } from "./nats-users.js";

const HOST_A = "6f1c0d9e-0000-4000-8000-00000000000a";
const HOST_B = "6f1c0d9e-0000-4000-8000-00000000000b";

// The embedded nats-server with the users the control plane writes: a real server, reloaded for real.
describe("NATS users, one per host (embedded nats-server)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-nats-users-"));
  const usersFile = path.join(dir, "nats", "users.conf");
  const log = createLogger("t", "silent");
  const hosts: NatsHostUser[] = [];
  const keyA = nkeys.createUser();
  const keyB = nkeys.createUser();
  let server: EmbeddedNats;
  let users: NatsUserDirectory;
  let seed: Uint8Array;
  let reloads = 0;
  let failReload = false;
  const open: NatsConnection[] = [];
  const as = async (kp: { getSeed(): Uint8Array } | undefined, opts: { inboxPrefix?: string } = {}) => {
    const nc = await connect({ servers: server.url, reconnect: false, ...(kp ? { authenticator: nkeyAuthenticator(kp.getSeed()) } : {}), ...opts });
    open.push(nc);
    return nc;
  };

  beforeAll(async () => {
    seed = await loadOrCreateSeed(path.join(dir, "nats-control-plane.nk"));
    users = new NatsUserDirectory({
      file: usersFile,
      controlPlaneSeed: seed,
      hosts: async () => [...hosts],
      reload: async () => {
        reloads++;
        if (failReload) throw new Error("reload refused (test)");
        await server.reload();
      },
      url: () => server.url,
      log,
      confirmTimeoutMs: 3000,
    });
    await users.writeInitial();
    server = await startEmbeddedNats({ dataDir: dir, bin: "nats-server", usersFile, log });
    // The control plane's own identity manages JetStream, as the job bus does.
    const cp = await connect({ servers: server.url, ...accessWithSeed(server.url, seed) });
    open.push(cp);
    const jsm = await jetstreamManager(cp);
    await jsm.streams.add({ name: JOBS_STREAM, subjects: ["slipway.jobs.>"], retention: RetentionPolicy.Workqueue });
    for (const h of [HOST_A, HOST_B]) await jsm.consumers.add(JOBS_STREAM, { durable_name: jobsConsumer(h), filter_subject: jobsSubject(h), ack_policy: AckPolicy.Explicit });
  });
  afterAll(async () => {
    for (const nc of open) await nc.close().catch(() => undefined);
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps the control plane's seed in a file of mode 0600 and reads the same one back", async () => {
    const file = path.join(dir, "nats-control-plane.nk");
    expect(readFileSync(file, "utf8")).toMatch(/^SU[A-Z2-7]{56}\n$/);
    expect((await import("node:fs")).statSync(file).mode & 0o777).toBe(0o600);
    expect(publicKeyOf(await loadOrCreateSeed(file))).toBe(publicKeyOf(seed));
  });

  it("refuses everyone but the control plane while no host has a key", async () => {
    await expect(as(undefined)).rejects.toThrow(/Authorization Violation/);
    await expect(as(keyA)).rejects.toThrow(/Authorization Violation/);
  });

  it("adds a host's user with the reload it needs, and the host can then pull its own jobs (not B's)", async () => {
    hosts.push({ hostId: HOST_A, publicKey: keyA.getPublicKey() });
    const before = reloads;
    await users.sync();
    expect(reloads).toBe(before + 1);
    const a = await as(keyA, { inboxPrefix: `_INBOX_${HOST_A}` });
    const cp = open[0]!;
    await jetstream(cp).publish(jobsSubject(HOST_A), "job for a");
    const consumer = await jetstream(a).consumers.get(JOBS_STREAM, jobsConsumer(HOST_A));
    const m = await consumer.next({ expires: 2000 });
    expect(m?.string()).toBe("job for a");
    m?.ack();
    await expect(jetstream(a).consumers.get(JOBS_STREAM, jobsConsumer(HOST_B))).rejects.toThrow(/Permissions Violation/);
    // The shell and log requests of A reach A.
    const got = new Promise<string>((resolve) => a.subscribe(shellSubject(HOST_A), { max: 1, callback: (_e, msg) => resolve(msg.string()) }));
    await a.flush();
    cp.publish(shellSubject(HOST_A), "hello a");
    expect(await got).toBe("hello a");
  });

  it("writes and reloads nothing when the fleet did not change", async () => {
    const before = reloads;
    const text = readFileSync(usersFile, "utf8");
    await users.sync();
    await users.sync();
    expect(reloads).toBe(before);
    expect(readFileSync(usersFile, "utf8")).toBe(text);
  });

  it("answers calls made during a sync with one more sync that reads the hosts after them", async () => {
    const before = reloads;
    hosts.push({ hostId: HOST_B, publicKey: keyB.getPublicKey() });
    // Five at once: the first runs, the other four share one more run.
    await Promise.all([users.sync(), users.sync(), users.sync(), users.sync(), users.sync()]);
    expect(reloads - before).toBeGreaterThanOrEqual(1);
    expect(reloads - before).toBeLessThanOrEqual(2);
    const b = await as(keyB, { inboxPrefix: `_INBOX_${HOST_B}` });
    expect(b.isClosed()).toBe(false);
  });

  it("disconnects a removed host at once: when sync() resolves the server has closed its connection", async () => {
    const a = await as(keyA, { inboxPrefix: `_INBOX_${HOST_A}` });
    const sub = a.subscribe(logsSubject(HOST_A));
    await a.flush();
    const closed = a.closed();
    hosts.splice(hosts.findIndex((h) => h.hostId === HOST_A), 1);
    await users.sync();
    const outcome = await Promise.race([closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("open"), 5000))]);
    expect(outcome).toBe("closed");
    sub.unsubscribe();
    await expect(as(keyA)).rejects.toThrow(/Authorization Violation/);
    // B stays.
    await expect(as(keyB, { inboxPrefix: `_INBOX_${HOST_B}` })).resolves.toBeDefined();
  });

  it("fails a sync whose reload fails, and the next sync tries again", async () => {
    const c = nkeys.createUser();
    hosts.push({ hostId: "6f1c0d9e-0000-4000-8000-00000000000c", publicKey: c.getPublicKey() });
    failReload = true;
    await expect(users.sync()).rejects.toThrow(/reload refused/);
    failReload = false;
    await users.sync();
    await expect(as(c, { inboxPrefix: "_INBOX_6f1c0d9e-0000-4000-8000-00000000000c" })).resolves.toBeDefined();
  });
});

describe("NATS user keys and the users file", () => {
  it("accepts only nkey user public keys", () => {
    const u = nkeys.createUser();
    expect(isNatsUserKey(u.getPublicKey())).toBe(true);
    for (const bad of ["", "U", nkeys.createAccount().getPublicKey(), nkeys.createServer().getPublicKey(), new TextDecoder().decode(u.getSeed()), u.getPublicKey().toLowerCase(), `${u.getPublicKey()}\n`, 42, null]) {
      expect(isNatsUserKey(bad), String(bad)).toBe(false);
    }
  });

  it("renders one user per host with only its own subjects, and a digest that ignores the reload marker", () => {
    const text = renderNatsUsers({ controlPlaneKey: "UCP", hosts: [{ hostId: HOST_A, publicKey: "UA" }], markerKey: "UMARK1" });
    const again = renderNatsUsers({ controlPlaneKey: "UCP", hosts: [{ hostId: HOST_A, publicKey: "UA" }], markerKey: "UMARK2" });
    const other = renderNatsUsers({ controlPlaneKey: "UCP", hosts: [{ hostId: HOST_B, publicKey: "UA" }] });
    expect(text.split("\n")[0]).toBe(again.split("\n")[0]);
    expect(text.split("\n")[0]).not.toBe(other.split("\n")[0]);
    const users = JSON.parse(text.slice(text.indexOf("users = ") + 8, text.lastIndexOf("}"))) as Array<{ nkey: string; permissions?: { publish: { allow?: string[]; deny?: string[] }; subscribe: { allow?: string[]; deny?: string[] } } }>;
    expect(users.map((u) => u.nkey)).toEqual(["UCP", "UA", "UMARK1"]);
    expect(users[0]!.permissions).toBeUndefined();
    const a = users[1]!.permissions!;
    for (const subject of [...a.publish.allow!, ...a.subscribe.allow!]) expect(subject).toContain(HOST_A);
    expect(users[2]!.permissions).toEqual({ publish: { deny: [">"] }, subscribe: { deny: [">"] } });
  });
});
