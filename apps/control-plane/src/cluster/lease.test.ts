import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { openDatabase, type DatabaseHandle } from "../db/database.js";
import { createDatabaseFromTemplate, dropDatabase } from "../testing/template-database.js";
import { testDatabase } from "../testing/harness.js";
import { expireLease, findLease } from "../repositories/leases.repository.js";
import { Lease, databaseLeaseStore, every, type LeaseStore } from "./lease.js";

// Singletons under a lease in PostgreSQL (issue 16), against real PostgreSQL (each "replica" with
// its own connection pool to one database) and PGlite (one process, one handle).
const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";
const log = createLogger("test", "silent");
// Short enough for quick tests, long enough that a stalled second on a loaded machine (a GC pause, a
// slow query on the shared PGlite) does not cost the holder its lease: a renewal may be 2.5 s late.
const FAST = { ttlMs: 3000, renewEveryMs: 500, tryEveryMs: 500 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a replica's singleton did: when each run started, and when its work was started and stopped. */
class Replica {
  runs: number[] = [];
  starts: number[] = [];
  stops: number[] = [];
  readonly lease: Lease;
  constructor(
    readonly name: string,
    store: LeaseStore,
    timing: { ttlMs: number; renewEveryMs: number; tryEveryMs: number } = FAST,
    workEveryMs = 100,
  ) {
    const tick = every("tick", workEveryMs, () => void this.runs.push(Date.now()), { atStart: true });
    this.lease = new Lease(store, { name: "scheduler", holder: name, ...timing, log }).add({
      name: "tick",
      start: () => {
        this.starts.push(Date.now());
        tick.start();
      },
      stop: () => {
        this.stops.push(Date.now());
        tick.stop();
      },
    });
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
  return Date.now();
}

/** No moment at which both replicas' work was started and not yet stopped. */
function overlaps(a: Replica, b: Replica): boolean {
  const spans = (r: Replica) => r.starts.map((s, i) => [s, r.stops[i] ?? Infinity] as const);
  return spans(a).some(([s1, e1]) => spans(b).some(([s2, e2]) => s1 < e2 && s2 < e1));
}

/** Two handles on one database: two pools against PostgreSQL (as two replicas have), one shared PGlite. */
async function twoHandles(kind: "postgres" | "pglite"): Promise<{ a: DatabaseHandle; b: DatabaseHandle; close(): Promise<void> }> {
  if (kind === "pglite") {
    const h = await testDatabase("pglite");
    return { a: h, b: h, close: () => h.close() };
  }
  const name = `slipway_unit_${randomBytes(6).toString("hex")}`;
  const url = await createDatabaseFromTemplate(PG_ADMIN, name);
  const a = await openDatabase({ databaseUrl: url });
  const b = await openDatabase({ databaseUrl: url });
  let closedA = false;
  return {
    a: { ...a, close: async () => void (closedA || ((closedA = true), await a.db.destroy())) },
    b,
    close: async () => {
      if (!closedA) await a.close();
      await b.close();
      await dropDatabase(PG_ADMIN, name);
    },
  };
}

describe.each(["postgres", "pglite"] as const)("a lease on %s", (kind) => {
  let dbs: Awaited<ReturnType<typeof twoHandles>>;
  const replicas: Replica[] = [];
  const replica = (name: string, h: DatabaseHandle, ...rest: [timing?: typeof FAST, workEveryMs?: number]) => {
    const r = new Replica(name, databaseLeaseStore(h.db), ...rest);
    replicas.push(r);
    return r;
  };
  beforeAll(async () => {
    dbs = await twoHandles(kind);
  });
  // A test that failed half-way leaves no holder renewing behind it: its row runs out within the time to live.
  afterEach(() => {
    for (const r of replicas.splice(0)) r.lease.abandon();
  });
  afterAll(async () => {
    await dbs?.close();
  });

  it("two holders: exactly one runs the work; it stops gracefully and the other runs within one try", async () => {
    const a = replica(`a-${kind}-1`, dbs.a);
    const b = replica(`b-${kind}-1`, dbs.b);
    a.lease.start();
    await until("a to hold the lease", () => a.lease.held);
    b.lease.start();
    await sleep(2000);
    expect(a.runs.length).toBeGreaterThanOrEqual(15);
    expect(b.runs).toEqual([]);
    const row = await findLease(dbs.b.db, "scheduler");
    expect(row).toMatchObject({ holder: a.name, held: true });

    await a.lease.stop();
    const stoppedAt = Date.now();
    // Released: free, or already taken by b's next try (which may come before this read).
    const released = await findLease(dbs.b.db, "scheduler");
    expect(released?.held === false || released?.holder === b.name, JSON.stringify(released)).toBe(true);
    const took = (await until("b to run", () => b.runs.length > 0)) - stoppedAt;
    expect(took).toBeLessThanOrEqual(FAST.tryEveryMs + 1000);
    expect(a.runs.every((t) => t <= stoppedAt)).toBe(true);
    expect(overlaps(a, b)).toBe(false);
    expect(b.lease.token).toBe(row!.token + 1);
    await b.lease.stop();
  });

  it("a holder whose term the database ended (its row taken after expiry) stops its work before its next run", async () => {
    // The work runs every 2 s, the lease is renewed every 500 ms: the refusal comes first.
    const a = replica(`a-${kind}-2`, dbs.a, FAST, 2000);
    const b = replica(`b-${kind}-2`, dbs.b, FAST, 2000);
    a.lease.start();
    await until("a to run", () => a.runs.length === 1);
    b.lease.start();
    await expireLease(dbs.b.db, "scheduler"); // the database's clock says a's term is over
    await until("b to run", () => b.runs.length === 1, 3000);
    await until("a to notice", () => !a.lease.held, 3000);
    await sleep(2500);
    expect(a.runs).toHaveLength(1);
    expect(a.stops).toHaveLength(1);
    expect(b.lease.held).toBe(true);
    expect((await findLease(dbs.a.db, "scheduler"))?.holder).toBe(b.name);
    // a still tries every 500 ms: stopped first, or it takes the lease b releases and the next test's holder never gets it.
    await a.lease.stop();
    await b.lease.stop();
  });

  it("a holder cut off from the database stops its work before the other replica starts it", async () => {
    let cut = false;
    const real = databaseLeaseStore(dbs.a.db);
    // Every call hangs once cut (a network partition), as a stalled pool would.
    const gate = <T>(f: () => Promise<T>): Promise<T> => (cut ? new Promise<T>(() => undefined) : f());
    const partitioned: LeaseStore = {
      acquire: (...x) => gate(() => real.acquire(...x)),
      renew: (...x) => gate(() => real.renew(...x)),
      release: (...x) => gate(() => real.release(...x)),
    };
    const a = new Replica(`a-${kind}-3`, partitioned);
    replicas.push(a);
    const b = replica(`b-${kind}-3`, dbs.b);
    a.lease.start();
    await until("a to hold the lease", () => a.lease.held);
    b.lease.start();
    await sleep(500);
    cut = true;
    // b takes it once a's term has run out in the database (up to ttlMs after a's last renewal), at its next try.
    await until("b to run", () => b.runs.length > 0, FAST.ttlMs + FAST.tryEveryMs + 5000);
    expect(a.stops).toHaveLength(1);
    expect(a.stops[0]!).toBeLessThanOrEqual(b.starts[0]!);
    expect(overlaps(a, b)).toBe(false);
    a.lease.abandon();
    await b.lease.stop();
  });
});

describe("a lease's holder crashes (PostgreSQL, production timing: 6 s time to live, renewed and tried every 2 s)", () => {
  const PROD = { ttlMs: 6000, renewEveryMs: 2000, tryEveryMs: 2000 };
  let dbs: Awaited<ReturnType<typeof twoHandles>>;
  let a: Replica | undefined;
  let b: Replica | undefined;
  beforeAll(async () => {
    dbs = await twoHandles("postgres");
  });
  afterAll(async () => {
    a?.lease.abandon();
    b?.lease.abandon();
    await dbs?.close();
  });

  it("its connections gone and nothing released, another replica runs the work within the time to live and one try (under 10 s)", async () => {
    a = new Replica("a-crash", databaseLeaseStore(dbs.a.db), PROD);
    b = new Replica("b-crash", databaseLeaseStore(dbs.b.db), PROD);
    a.lease.start();
    await until("a to hold the lease", () => a!.lease.held);
    b.lease.start();
    await sleep(3000);
    expect(b.runs).toEqual([]);
    // As a SIGKILL leaves it: the pool closed under the lease, no release; its own watchdog stops its work.
    await dbs.a.close();
    const crashedAt = Date.now();
    const took = (await until("b to run", () => b!.runs.length > 0, 12_000)) - crashedAt;
    console.log(`takeover after the holder's connections were closed: ${took} ms`);
    expect(took).toBeLessThanOrEqual(PROD.ttlMs + PROD.tryEveryMs + 500);
    expect(overlaps(a, b)).toBe(false);
    await b.lease.stop();
  }, 30_000);
});
