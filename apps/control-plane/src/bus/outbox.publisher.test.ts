import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { JOBS_STREAM, createLogger, jobsSubject } from "@slipway/core";
import { openDatabase, type DatabaseHandle, type Db } from "../db/database.js";
import type { Database } from "../db/schema.js";
import { freePort } from "../embedded/nats-server.js";
import { insertApp, insertEnvironment } from "../repositories/apps.repository.js";
import { insertHost } from "../repositories/hosts.repository.js";
import { Lifecycle } from "../services/lifecycle.service.js";
import { PlacementService } from "../services/placement.service.js";
import { createDatabaseFromTemplate, dropDatabase } from "../testing/template-database.js";
import { testDatabase } from "../testing/harness.js";
import type { JobBus } from "./job-bus.js";
import { NatsJobBus } from "./nats.job-bus.js";
import { OutboxPublisher } from "./outbox.publisher.js";

const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";
const GiB = 1024 * 1024 * 1024;
const log = createLogger("test", "silent");
const lifecycle = new Lifecycle(log);
const placement = new PlacementService(() => 60_000);

/** A real nats-server with JetStream on a free port and a directory of its own. */
async function startNats(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-outbox-nats-"));
  const port = await freePort();
  const child: ChildProcess = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], { stdio: "ignore" });
  const url = `nats://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    try {
      const nc = await connect({ servers: url, reconnect: false });
      await nc.close();
      return { url, stop };
    } catch (err) {
      if (i > 100 || child.exitCode !== null) {
        await stop();
        throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** What the stream holds: every stored message's job id (its message id) and subject. */
async function storedMessages(jsm: JetStreamManager): Promise<Array<{ jobId: string; subject: string }>> {
  const info = await jsm.streams.info(JOBS_STREAM);
  const out: Array<{ jobId: string; subject: string }> = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(JOBS_STREAM, { seq }).catch(() => null);
    if (m) out.push({ jobId: m.header.get("Nats-Msg-Id"), subject: m.subject });
  }
  return out;
}

interface Fleet {
  hosts: string[];
  /** Environments placed on a host before the run, by host. */
  placed: Map<string, string[]>;
  /** Jobs queued with their host already chosen. */
  preset: string[];
  /** Deploy jobs of environments placed nowhere yet. */
  unplaced: string[];
  /** Jobs without a host of environments placed since they were queued. */
  followers: string[];
}

/**
 * Hosts with room for `perHost` environments at the default request (512 MiB), environments placed
 * on them, and jobs of three sorts: host chosen at queueing, deploy jobs of environments placed
 * nowhere (the publishers place them, where room remains), and jobs without a host of environments
 * that were placed since (they must follow their environment).
 */
async function makeFleet(db: Db, opts: { hosts: number; perHost: number; placedPerHost: number; presetPerEnv: number; unplaced: number; followersPerEnv: number }): Promise<Fleet> {
  const fleet: Fleet = { hosts: [], placed: new Map(), preset: [], unplaced: [], followers: [] };
  for (let i = 0; i < opts.hosts; i++) {
    const id = randomUUID();
    await insertHost(db, { id, name: `host-${i}`, labels: {}, credentialHash: randomBytes(16).toString("hex"), version: "test", capacity: { cpus: 64, memoryBytes: opts.perHost * 0.5 * GiB, diskBytes: 100 * GiB } });
    fleet.hosts.push(id);
    fleet.placed.set(id, []);
  }
  const appId = randomUUID();
  await insertApp(db, { id: appId, name: `app-${randomBytes(3).toString("hex")}`, repository: "https://example.test/repo.git", settings: {} });
  let n = 0;
  const env = async () => {
    const id = randomUUID();
    await insertEnvironment(db, { id, appId, name: `e${n++}`, branch: "main", replicas: 1, sleepAfterSeconds: null, hostLabel: `h${randomBytes(6).toString("hex")}`, mediaPrefix: id });
    return id;
  };
  const deployment = (trx: Db, environmentId: string, hostId: string | null, waiting = false) => {
    const id = randomUUID();
    const jobId = randomUUID();
    return lifecycle
      .createDeployment(trx, { id, appId, environmentId, buildMode: "auto", configRevision: 1, settingsRevision: 1, requestedBy: "test", waiting, hostId, movedFromHostId: null }, { id: jobId, hostId, spec: {}, environmentId })
      .then(() => ({ id, jobId }));
  };
  for (const hostId of fleet.hosts) {
    for (let i = 0; i < opts.placedPerHost; i++) {
      const e = await env();
      await db.transaction().execute(async (trx) => {
        await lifecycle.place(trx, [e], hostId, "test");
        fleet.preset.push((await deployment(trx, e, hostId)).jobId);
        for (let j = 1; j < opts.presetPerEnv; j++) {
          const id = randomUUID();
          await lifecycle.createJob(trx, { id, kind: "environment", deploymentId: null, hostId, spec: {}, environmentId: e });
          fleet.preset.push(id);
        }
        for (let j = 0; j < opts.followersPerEnv; j++) {
          const id = randomUUID();
          await lifecycle.createJob(trx, { id, kind: "data", deploymentId: null, hostId: null, spec: {}, environmentId: e });
          fleet.followers.push(id);
        }
      });
      fleet.placed.get(hostId)!.push(e);
    }
  }
  for (let i = 0; i < opts.unplaced; i++) {
    const e = await env();
    await db.transaction().execute(async (trx) => fleet.unplaced.push((await deployment(trx, e, null)).jobId));
  }
  return fleet;
}

/** A replica: its own pool on the shared database, its own NATS connection, its own publisher. */
interface Replica {
  handle: DatabaseHandle;
  bus: NatsJobBus;
  publisher: OutboxPublisher;
  published: number;
  placed: number;
  close(): Promise<void>;
}

async function replica(databaseUrl: string, natsUrl: string, name: string, wrap?: (bus: JobBus, handle: DatabaseHandle) => JobBus): Promise<Replica> {
  const url = new URL(databaseUrl);
  url.searchParams.set("application_name", name);
  // A pool of its own, as a replica's: a server connection ended under a checked-out client (the
  // replica "killed" below) is reported to the query using it, not thrown at the process.
  const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const handle: DatabaseHandle = { db, kind: "postgres", close: () => db.destroy() };
  const bus = new NatsJobBus({ url: natsUrl }, log);
  await bus.connect();
  const publisher = new OutboxPublisher(handle.db, lifecycle, wrap ? wrap(bus, handle) : bus, placement, log, 10);
  let closed = false;
  const r: Replica = {
    handle,
    bus,
    publisher,
    published: 0,
    placed: 0,
    close: async () => {
      if (closed) return;
      closed = true;
      await publisher.stop();
      await bus.close();
      await handle.close().catch(() => undefined);
    },
  };
  return r;
}

/** Runs the replicas' publishers side by side until a whole round of all of them changes nothing. */
async function race(replicas: Replica[]): Promise<number> {
  const started = performance.now();
  await Promise.all(
    replicas.map(async (r) => {
      let idle = 0;
      while (idle < 3) {
        const { placed } = await r.publisher.placeJobs();
        const published = await r.publisher.runOnce();
        r.published += published;
        r.placed += placed;
        idle = placed + published === 0 ? idle + 1 : 0;
      }
    }),
  );
  return performance.now() - started;
}

interface JobFacts {
  id: string;
  kind: string;
  deployment_id: string | null;
  host_id: string | null;
  environment_id: string | null;
  env_host: string | null;
  published_at: Date | null;
  publish_attempts: number;
  last_publish_error: string | null;
}

async function jobFacts(db: pg.Pool): Promise<Map<string, JobFacts>> {
  const r = await db.query<JobFacts>(
    "select j.id, j.kind, j.deployment_id, j.host_id, j.environment_id, e.host_id as env_host, j.published_at, j.publish_attempts, j.last_publish_error from jobs j left join environments e on e.id = j.environment_id",
  );
  return new Map(r.rows.map((row) => [row.id, row]));
}

describe("OutboxPublisher with several control planes (PostgreSQL, nats-server)", () => {
  let nats: { url: string; stop(): Promise<void> };
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const databases: string[] = [];
  const open: Replica[] = [];
  const pools: pg.Pool[] = [];
  const handles: DatabaseHandle[] = [];

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
  });
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
    for (const p of pools.splice(0)) await p.end();
    for (const h of handles.splice(0)) await h.close();
    // Each test reads the stream from empty.
    await jsm.streams.purge(JOBS_STREAM).catch(() => undefined);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    for (const name of databases) await dropDatabase(PG_ADMIN, name);
  });

  async function database(): Promise<{ url: string; inspect: pg.Pool; db: Db }> {
    const name = `slipway_outbox_${randomBytes(6).toString("hex")}`;
    databases.push(name);
    const url = await createDatabaseFromTemplate(PG_ADMIN, name);
    const inspect = new pg.Pool({ connectionString: url, max: 2 });
    pools.push(inspect);
    const setup = await openDatabase({ databaseUrl: url });
    handles.push(setup);
    return { url, inspect, db: setup.db };
  }

  async function replicas(url: string, n: number): Promise<Replica[]> {
    const out: Replica[] = [];
    for (let i = 0; i < n; i++) {
      const r = await replica(url, nats.url, `replica-${i}`);
      open.push(r);
      out.push(r);
    }
    return out;
  }

  it("two replicas racing over 200 queued jobs publish each once, to the host the database records, within every host's room", async () => {
    const { url, inspect, db } = await database();
    // 3 hosts with room for 8 environments each, 4 placed on each: 12 places left for 44 unplaced environments.
    const fleet = await makeFleet(db, { hosts: 3, perHost: 8, placedPerHost: 4, presetPerEnv: 5, unplaced: 44, followersPerEnv: 8 });
    expect(fleet.preset.length + fleet.unplaced.length + fleet.followers.length).toBe(200);
    const [a, b] = await replicas(url, 2);
    const ms = await race([a!, b!]);

    const jobs = await jobFacts(inspect);
    const stored = await storedMessages(jsm);
    const published = [...jobs.values()].filter((j) => j.published_at);
    // 60 chosen at queueing, 96 following their environments, 12 of the 40 placed where room was left.
    expect(published.length).toBe(60 + 96 + 12);
    expect(a!.published + b!.published).toBe(published.length);
    // However the two interleaved (the split is printed below), nothing was done twice.
    expect(stored.length).toBe(published.length);
    expect(new Set(stored.map((m) => m.jobId)).size).toBe(stored.length);
    for (const m of stored) {
      const job = jobs.get(m.jobId)!;
      expect(m.subject).toBe(jobsSubject(job.host_id!));
      expect(job.publish_attempts).toBe(1);
    }
    // Every job with an environment runs where its environment is placed.
    for (const j of published) expect(j.host_id).toBe(j.env_host);
    for (const id of fleet.preset) expect(jobs.get(id)!.published_at).not.toBeNull();
    for (const id of fleet.followers) expect(jobs.get(id)!.published_at).not.toBeNull();
    // Room: at most 8 environments on each host; the 32 that did not fit wait, unplaced, saying why.
    const perHost = await inspect.query<{ host_id: string; n: string }>("select host_id, count(*) as n from environments where host_id is not null group by host_id");
    expect(perHost.rows.map((r) => Number(r.n)).sort()).toEqual([8, 8, 8]);
    const waiting = fleet.unplaced.map((id) => jobs.get(id)!).filter((j) => !j.published_at);
    expect(waiting.length).toBe(32);
    for (const j of waiting) {
      expect(j.host_id).toBeNull();
      expect(j.env_host).toBeNull();
      expect(j.last_publish_error).toMatch(/no host has room for 512 MiB and 1 CPU .*: the job waits for room/);
    }
    console.log(`two replicas: ${published.length} jobs published in ${Math.round(ms)} ms (placeJobs passes placed a ${a!.placed}, b ${b!.placed}, the rest inside runOnce; published by a ${a!.published}, b ${b!.published})`);
  });

  it("a second deployment queued behind the first goes to the host the first placed the environment on", async () => {
    const { url, inspect, db } = await database();
    const fleet = await makeFleet(db, { hosts: 3, perHost: 8, placedPerHost: 0, presetPerEnv: 0, unplaced: 0, followersPerEnv: 0 });
    const appId = randomUUID();
    await insertApp(db, { id: appId, name: "queued", repository: "https://example.test/q.git", settings: {} });
    const envId = randomUUID();
    await insertEnvironment(db, { id: envId, appId, name: "test", branch: "main", replicas: 1, sleepAfterSeconds: null, hostLabel: "hqueued", mediaPrefix: envId });
    const ids = [randomUUID(), randomUUID()];
    const jobIds = [randomUUID(), randomUUID()];
    // Both queued while no host was chosen; the second waits behind the first.
    await db.transaction().execute(async (trx) => {
      for (const [i, id] of ids.entries()) {
        await lifecycle.createDeployment(trx, { id, appId, environmentId: envId, buildMode: "auto", configRevision: 1, settingsRevision: 1, requestedBy: "test", waiting: i === 1, hostId: null, movedFromHostId: null }, { id: jobIds[i]!, hostId: null, spec: {}, environmentId: envId });
      }
    });
    const [a, b] = await replicas(url, 2);
    await race([a!, b!]);
    let jobs = await jobFacts(inspect);
    const first = jobs.get(jobIds[0]!)!;
    expect(first.published_at).not.toBeNull();
    expect(fleet.hosts).toContain(first.host_id);
    expect(first.env_host).toBe(first.host_id);
    expect(jobs.get(jobIds[1]!)!.published_at).toBeNull();
    // The first ends; the second is released and must follow the environment, whatever the room elsewhere says.
    await db.transaction().execute(async (trx) => {
      const d = await trx.selectFrom("deployments").selectAll().where("id", "=", ids[0]!).executeTakeFirstOrThrow();
      const j = await trx.selectFrom("jobs").selectAll().where("id", "=", jobIds[0]!).executeTakeFirstOrThrow();
      await lifecycle.cancelQueuedDeployment(trx, d, j, "test");
    });
    await race([a!, b!]);
    jobs = await jobFacts(inspect);
    expect(jobs.get(jobIds[1]!)!.published_at).not.toBeNull();
    expect(jobs.get(jobIds[1]!)!.host_id).toBe(first.host_id);
    const stored = await storedMessages(jsm);
    expect(stored).toEqual([
      { jobId: jobIds[0], subject: jobsSubject(first.host_id!) },
      { jobId: jobIds[1], subject: jobsSubject(first.host_id!) },
    ]);
  });

  it("a replica whose database connections die between placing and publishing leaves its jobs to the other, each published once where it was placed", async () => {
    const { url, inspect, db } = await database();
    const fleet = await makeFleet(db, { hosts: 3, perHost: 20, placedPerHost: 0, presetPerEnv: 0, unplaced: 30, followersPerEnv: 0 });
    const [a, b] = await replicas(url, 2);
    // a places every job and commits; then its pool is gone before it publishes anything.
    expect((await a!.publisher.placeJobs()).placed).toBe(30);
    const placed = await jobFacts(inspect);
    await a!.handle.close();
    await expect(a!.publisher.runOnce()).rejects.toThrow();
    await race([b!]);
    const jobs = await jobFacts(inspect);
    const stored = await storedMessages(jsm);
    expect(stored.length).toBe(30);
    expect(new Set(stored.map((m) => m.jobId))).toEqual(new Set(fleet.unplaced));
    for (const m of stored) {
      // The host a chose stands: b published there and placed nothing again.
      expect(jobs.get(m.jobId)!.host_id).toBe(placed.get(m.jobId)!.host_id);
      expect(m.subject).toBe(jobsSubject(placed.get(m.jobId)!.host_id!));
      expect(jobs.get(m.jobId)!.publish_attempts).toBe(1);
    }
  });

  it("a replica killed after publishing and before marking: the other publishes again under the same id and subject, and JetStream stores each job once", async () => {
    const { url, inspect, db } = await database();
    const fleet = await makeFleet(db, { hosts: 2, perHost: 20, placedPerHost: 5, presetPerEnv: 4, unplaced: 0, followersPerEnv: 0 });
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    pools.push(admin);
    let sent = 0;
    // Replica "doomed" dies (its server connections terminated, as when its machine is lost) once it has published 15 messages.
    const doomed = await replica(url, nats.url, "doomed", (bus) => ({
      ensureStream: () => bus.ensureStream(),
      ensureConsumer: (h) => bus.ensureConsumer(h),
      deleteConsumer: (h) => bus.deleteConsumer(h),
      close: () => bus.close(),
      publish: async (h, id, data) => {
        await bus.publish(h, id, data);
        if (++sent === 15) await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'doomed'");
      },
    }));
    open.push(doomed);
    await expect(doomed.publisher.runOnce()).rejects.toThrow();
    expect(sent).toBeGreaterThanOrEqual(15);
    let jobs = await jobFacts(inspect);
    // Its transaction rolled back: nothing is marked, though JetStream holds what it sent.
    expect([...jobs.values()].filter((j) => j.published_at).length).toBe(0);
    expect((await storedMessages(jsm)).length).toBe(sent);
    const [b] = await replicas(url, 1);
    await race([b!]);
    jobs = await jobFacts(inspect);
    const stored = await storedMessages(jsm);
    expect(stored.length).toBe(40);
    expect(new Set(stored.map((m) => m.jobId))).toEqual(new Set(fleet.preset));
    for (const m of stored) {
      expect(m.subject).toBe(jobsSubject(jobs.get(m.jobId)!.host_id!));
      expect(jobs.get(m.jobId)!.published_at).not.toBeNull();
    }
  });

  it("deployment jobs published at once by their requests while another replica's runs publish them too: each stored once, marked once; a refused one waits for a run", async () => {
    const { url, inspect, db } = await database();
    const fleet = await makeFleet(db, { hosts: 2, perHost: 20, placedPerHost: 6, presetPerEnv: 1, unplaced: 0, followersPerEnv: 0 });
    const deploys = [...(await jobFacts(inspect)).values()].filter((j) => fleet.preset.includes(j.id));
    expect(deploys.length).toBe(12);
    const committed = (j: JobFacts) => ({ id: j.id, hostId: j.host_id!, kind: j.kind, deploymentId: j.deployment_id });
    // The first two: their requests' publication is refused (NATS unreachable from that replica).
    const refused = await replica(url, nats.url, "refused", (bus) => ({
      ensureStream: () => bus.ensureStream(),
      ensureConsumer: (h) => bus.ensureConsumer(h),
      deleteConsumer: (h) => bus.deleteConsumer(h),
      close: () => bus.close(),
      publish: () => Promise.reject(new Error("nats: connection refused")),
    }));
    open.push(refused);
    await refused.bus.ensureStream();
    for (const j of deploys.slice(0, 2)) refused.publisher.publishCommitted(committed(j));
    await refused.publisher.stop();
    let jobs = await jobFacts(inspect);
    for (const j of deploys.slice(0, 2)) expect(jobs.get(j.id)!.published_at).toBeNull();
    expect(await storedMessages(jsm)).toEqual([]);
    // Five published by their requests on replica a, whose outbox never runs (not started): sent and marked.
    const [a, b, c] = await replicas(url, 3);
    for (const j of deploys.slice(2, 7)) a!.publisher.publishCommitted(committed(j));
    await a!.publisher.stop();
    jobs = await jobFacts(inspect);
    expect(new Set((await storedMessages(jsm)).map((m) => m.jobId))).toEqual(new Set(deploys.slice(2, 7).map((j) => j.id)));
    for (const j of deploys.slice(2, 7)) expect(jobs.get(j.id)!.published_at).not.toBeNull();
    // The last five published by their requests on replica c while replica b runs its outbox over the rest.
    for (const j of deploys.slice(7)) c!.publisher.publishCommitted(committed(j));
    await race([b!]);
    await c!.publisher.stop();
    jobs = await jobFacts(inspect);
    const stored = await storedMessages(jsm);
    expect(stored.length).toBe(12);
    expect(new Set(stored.map((m) => m.jobId))).toEqual(new Set(fleet.preset));
    for (const m of stored) {
      const job = jobs.get(m.jobId)!;
      expect(m.subject).toBe(jobsSubject(job.host_id!));
      expect(job.published_at).not.toBeNull();
      expect(job.publish_attempts).toBe(1);
    }
    // The refused two went through b's runs.
    expect(b!.published).toBeGreaterThanOrEqual(2);
  });

  it("throughput: jobs placed and published per second by one replica and by two", async () => {
    const figures: string[] = [];
    for (const n of [1, 2]) {
      const { url, inspect, db } = await database();
      // 1,000 jobs: 500 with their host chosen, 500 deploy jobs to place (room for all).
      await makeFleet(db, { hosts: 2, perHost: 400, placedPerHost: 5, presetPerEnv: 50, unplaced: 500, followersPerEnv: 0 });
      const rs = await replicas(url, n);
      const ms = await race(rs);
      const published = Number((await inspect.query<{ n: string }>("select count(*) as n from jobs where published_at is not null")).rows[0]!.n);
      expect(published).toBe(1000);
      expect((await storedMessages(jsm)).length).toBe(1000);
      figures.push(`${n} replica(s): ${Math.round((published / ms) * 1000)} jobs/s (${published} jobs in ${Math.round(ms)} ms; ${rs.map((r) => r.published).join(" + ")})`);
      for (const r of rs) await r.close();
      await jsm.streams.purge(JOBS_STREAM);
    }
    console.log(`outbox throughput: ${figures.join("; ")}`);
  });
});

describe("OutboxPublisher on PGlite (embedded, one process)", () => {
  let nats: { url: string; stop(): Promise<void> };
  let handle: DatabaseHandle;
  let bus: NatsJobBus;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats();
    handle = await testDatabase("pglite");
    bus = new NatsJobBus({ url: nats.url }, log);
    await bus.connect();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await bus?.close();
    await handle?.close();
    await nats?.stop();
  });

  it("places and publishes under the same claims and lock (two publishers in one process), each job once within the room", async () => {
    const fleet = await makeFleet(handle.db, { hosts: 2, perHost: 6, placedPerHost: 2, presetPerEnv: 3, unplaced: 10, followersPerEnv: 2 });
    const mk = () => ({ handle, bus, publisher: new OutboxPublisher(handle.db, lifecycle, bus, placement, log, 10), published: 0, placed: 0, close: async () => undefined });
    const [a, b] = [mk(), mk()];
    await race([a, b]);
    const jsm = await jetstreamManager(nc);
    const stored = await storedMessages(jsm);
    const rows = await handle.db.selectFrom("jobs").leftJoin("environments", "environments.id", "jobs.environment_id").select(["jobs.id", "jobs.host_id", "jobs.published_at", "environments.host_id as env_host"]).execute();
    const published = rows.filter((r) => r.published_at);
    // 12 chosen, 8 following, 8 of the 10 placed (room for 6 a host, 2 taken on each).
    expect(published.length).toBe(12 + 8 + 8);
    expect(stored.length).toBe(published.length);
    expect(new Set(stored.map((m) => m.jobId)).size).toBe(stored.length);
    for (const m of stored) expect(m.subject).toBe(jobsSubject(rows.find((r) => r.id === m.jobId)!.host_id!));
    for (const r of published) expect(r.host_id).toBe(r.env_host);
    const perHost = new Map<string, number>();
    for (const e of await handle.db.selectFrom("environments").select("host_id").where("host_id", "is not", null).execute()) perHost.set(e.host_id!, (perHost.get(e.host_id!) ?? 0) + 1);
    expect([...perHost.values()].sort()).toEqual([6, 6]);
    expect(fleet.unplaced.length).toBe(10);
  });
});
