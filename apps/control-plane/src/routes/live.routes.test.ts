import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testControlPlane, type DbKind, type TestControlPlane } from "../testing/harness.js";
import { SseConnection } from "../testing/sse-client.js";
import { insertHost } from "../repositories/hosts.repository.js";
import { appendLogs, findJobByDeployment } from "../repositories/deployments.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";

// The dashboard's live streams (issue 14) over a real HTTP listener (inject does not stream),
// on both databases. Every wait is on a condition; streams are short-polled (50 ms) for speed.
describe.each<DbKind>(["pglite", "postgres"])("live streams on %s", (kind) => {
  let cp: TestControlPlane;
  let base: string;
  const hostId = "00000000-0000-4000-8000-00000000bbbb";
  const open: SseConnection[] = [];
  const tokens: Record<string, string> = {};
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const admin = () => bearer(cp.adminToken);
  const call = (method: "GET" | "POST" | "PATCH" | "DELETE", url: string, payload?: unknown, headers = admin()) =>
    cp.app.inject({ method, url, headers, ...(payload !== undefined ? { payload } : {}) });
  const connect = async (path: string, headers: Record<string, string> = admin()) => {
    const c = await SseConnection.open(base + path, headers);
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    cp = await testControlPlane(kind, { streams: { pollIntervalMs: 50, heartbeatMs: 300, retryMs: 500, maxPerToken: 4 } });
    await cp.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(cp.app.server.address() as AddressInfo).port}`;
    await insertHost(cp.database.db, { id: hostId, name: "h1", labels: {}, credentialHash: "h1-hash", version: "1", capacity: { cpus: 4, memoryBytes: 8e9, diskBytes: 1e11 } });
    for (const name of ["alpha", "beta"]) expect((await call("POST", "/v1/apps", { name, repository: `https://x.test/${name}.git` })).statusCode).toBe(201);
    for (const [name, role, app] of [["deployer-alpha", "deployer", "alpha"], ["viewer-alpha", "viewer", "alpha"], ["deployer-beta", "deployer", "beta"]] as const) {
      const res = await call("POST", "/v1/tokens", { name, role, apps: [app] });
      expect(res.statusCode, res.body).toBe(201);
      tokens[name] = (res.json() as { token: string }).token;
    }
  });
  afterAll(async () => {
    for (const c of open) c.disconnect();
    await cp?.close();
  });

  describe("a deployment's log", () => {
    let seq = 0;
    /** Every event of the job takes the next seq, as the agent numbers them; lines go in as job reports store them. */
    const appendLines = (id: string, texts: string[]) => appendLogs(cp.database.db, id, texts.map((text) => ({ seq: ++seq, at: new Date(), text })));
    const report = async (deploymentId: string, events: Array<Record<string, unknown>>) => {
      const job = (await findJobByDeployment(cp.database.db, deploymentId))!;
      await cp.services.reports.apply(hostId, events.map((e) => ({ jobId: job.id, seq: ++seq, at: new Date(), ...e }) as never));
    };
    const text = (n: number) => (n % 10 === 3 ? `line ${n}\n  with a second line` : n % 10 === 7 ? "" : n % 10 === 9 ? `  progress ${n}: 50%` : `line ${n}`);

    it("streams every line exactly once and in order across a disconnection, then ends with the final state", async () => {
      const d = (await call("POST", "/v1/apps/alpha/environments/test/deployments", {})).json() as { id: string };
      const first = await connect(`/v1/deployments/${d.id}/log/events`);
      expect(first.status).toBe(200);
      expect(first.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
      expect(first.headers["cache-control"]).toBe("no-cache");
      expect(first.headers["x-accel-buffering"]).toBe("no");
      await first.waitFor(() => first.of("state").length > 0, "the deployment's state");
      expect(JSON.parse(first.of("state")[0]!.data)).toEqual({ state: "queued" });
      expect(first.parser.retry).toBe(500);

      await report(d.id, [{ kind: "step", name: "source", state: "running" }]);
      const texts: string[] = [];
      for (let batch = 0; batch < 4; batch++) {
        const lines = Array.from({ length: 10 }, (_, i) => text(texts.length + i + 1));
        texts.push(...lines);
        await appendLines(d.id, lines);
      }
      await first.waitFor(() => first.lastEventId === String(seq), `line ${seq}`);
      const step = first.of("step").map((e) => JSON.parse(e.data) as { name: string; state: string });
      expect(step).toEqual([expect.objectContaining({ name: "source", state: "running" })]);

      // The network goes away (a background tab, a train tunnel) while the deployment goes on.
      first.disconnect();
      await report(d.id, [
        { kind: "step", name: "source", state: "succeeded" },
        { kind: "step", name: "build", state: "running" },
      ]);
      for (let batch = 0; batch < 20; batch++) {
        const lines = Array.from({ length: 30 }, (_, i) => text(texts.length + i + 1));
        texts.push(...lines);
        await appendLines(d.id, lines);
      }
      // 600 lines missed: more than a page, read a page at a time.
      const second = await connect(`/v1/deployments/${d.id}/log/events`, { ...admin(), "last-event-id": first.lastEventId });
      expect(second.status).toBe(200);
      // Lines keep coming while the client catches up, then the deployment ends.
      const more = Array.from({ length: 25 }, (_, i) => text(texts.length + i + 1));
      texts.push(...more);
      await appendLines(d.id, more);
      await report(d.id, [
        { kind: "step", name: "build", state: "succeeded" },
        { kind: "step", name: "switch", state: "running" },
        { kind: "step", name: "switch", state: "succeeded" },
        { kind: "result", state: "succeeded", commit: "c0ffee1", image: "slipway/alpha:c0ffee1" },
      ]);
      const tail = ["cleanup: removed the old containers"];
      texts.push(...tail);
      await appendLines(d.id, tail);
      await report(d.id, [{ kind: "step", name: "cleanup", state: "succeeded" }]);

      await second.waitFor(() => second.of("end").length === 1, "the end");
      expect(JSON.parse(second.of("end")[0]!.data)).toEqual({ state: "succeeded", error: null, finishedAt: expect.any(String) });
      await second.waitFor(() => second.ended, "the stream to close after its end");
      const received = [...first.of("line"), ...second.of("line")];
      const lineSeqs = received.map((e) => Number(e.lastEventId));
      expect(lineSeqs).toEqual([...lineSeqs].sort((a, b) => a - b));
      expect(new Set(lineSeqs).size).toBe(lineSeqs.length);
      expect(received.map((e) => e.data)).toEqual(texts);
      // Steps are states: a resumed stream sends each once, then its changes.
      const steps = second.of("step").map((e) => JSON.parse(e.data) as { name: string; state: string });
      expect(steps.filter((s) => s.state === "succeeded").map((s) => s.name)).toEqual(["source", "build", "switch", "cleanup"]);
      expect(second.events[second.events.length - 1]!.type).toBe("end");

      // A client that cannot send headers resumes with ?lastEventId=; a finished log ends at once.
      const cut = Number(second.of("line")[10]!.lastEventId);
      const third = await connect(`/v1/deployments/${d.id}/log/events?lastEventId=${cut}`);
      await third.waitFor(() => third.ended, "the stream of a finished deployment to end");
      expect(third.of("line").map((e) => e.data)).toEqual(received.filter((e) => Number(e.lastEventId) > cut).map((e) => e.data));
      expect(third.of("end")).toHaveLength(1);
    });

    it("refuses an unknown deployment, a foreign one and a bad id before any stream starts; a viewer may read", async () => {
      const unknown = await connect(`/v1/deployments/${randomUUID()}/log/events`);
      await unknown.waitFor(() => unknown.ended, "the answer");
      expect(unknown.status).toBe(404);
      expect(unknown.headers["content-type"]).toMatch(/^application\/json/);
      expect(JSON.parse(unknown.body).error.code).toBe("not_found");

      const d = (await call("GET", "/v1/apps/alpha/environments/test/deployments")).json()[0] as { id: string };
      const foreign = await connect(`/v1/deployments/${d.id}/log/events`, bearer(tokens["deployer-beta"]!));
      await foreign.waitFor(() => foreign.ended, "the answer");
      expect(foreign.status).toBe(403);
      const bad = await connect(`/v1/deployments/${d.id}/log/events`, { ...admin(), "last-event-id": "seven" });
      await bad.waitFor(() => bad.ended, "the answer");
      expect(bad.status).toBe(400);
      const anonymous = await connect(`/v1/deployments/${d.id}/log/events`, {});
      await anonymous.waitFor(() => anonymous.ended, "the answer");
      expect(anonymous.status).toBe(401);

      const viewer = await connect(`/v1/deployments/${d.id}/log/events`, bearer(tokens["viewer-alpha"]!));
      expect(viewer.status).toBe(200);
      await viewer.waitFor(() => viewer.of("end").length === 1, "the whole log");
      expect(viewer.of("line").length).toBeGreaterThan(600);
    });
  });

  describe("the activity feed", () => {
    const record = (app: string, action: string, environment?: string) => recordActivity(cp.database.db, { actor: "test", app, action, ...(environment ? { environment } : {}) });
    const actions = (c: SseConnection) => c.of("activity").map((e) => (JSON.parse(e.data) as { action: string }).action);

    it("streams an app's entries to its deployer, never another app's, and resumes after Last-Event-ID", async () => {
      const deployer = bearer(tokens["deployer-alpha"]!);
      const first = await connect("/v1/activity/events?app=alpha", deployer);
      expect(first.status).toBe(200);
      // Without Last-Event-ID the stream starts after the newest entry: the apps' creation is not sent.
      await record("beta", "b.1");
      await record("alpha", "a.1");
      await record("beta", "b.2");
      await record("alpha", "a.2");
      await first.waitFor(() => actions(first).includes("a.2"), "a.2");
      expect(actions(first)).toEqual(["a.1", "a.2"]);
      const entry = JSON.parse(first.of("activity")[1]!.data) as Record<string, unknown>;
      expect(entry).toEqual({ id: Number(first.lastEventId), at: expect.any(String), actor: "test", app: "alpha", environment: null, action: "a.2", details: {} });
      // GET /v1/activity shows the same entries with the same ids: a page can resume from its newest.
      const listed = (await call("GET", "/v1/activity?app=alpha&limit=1")).json() as Array<{ id: number; action: string }>;
      expect(listed[0]).toMatchObject({ id: Number(first.lastEventId), action: "a.2" });

      first.disconnect();
      for (const a of ["a.3", "a.4"]) {
        await record("beta", a.replace("a", "b"));
        await record("alpha", a);
      }
      const second = await connect("/v1/activity/events?app=alpha", { ...deployer, "last-event-id": first.lastEventId });
      await record("alpha", "a.5");
      await second.waitFor(() => actions(second).includes("a.5"), "a.5");
      expect(actions(second)).toEqual(["a.3", "a.4", "a.5"]);

      // Filtered by environment too, as GET /v1/activity filters (env= or environment=).
      const onlyTest = await connect("/v1/activity/events?app=alpha&environment=test", deployer);
      const onlyTestToo = await connect("/v1/activity/events?app=alpha&env=test", bearer(tokens["viewer-alpha"]!));
      await record("alpha", "a.live", "live");
      await record("alpha", "a.test", "test");
      await onlyTest.waitFor(() => actions(onlyTest).includes("a.test"), "a.test");
      await onlyTestToo.waitFor(() => actions(onlyTestToo).includes("a.test"), "a.test (viewer)");
      expect([actions(onlyTest), actions(onlyTestToo)]).toEqual([["a.test"], ["a.test"]]);
      for (const c of [second, onlyTest, onlyTestToo]) c.disconnect();
    });

    it("refuses what GET /v1/activity refuses, before any stream starts", async () => {
      for (const [path, token, status] of [
        ["/v1/activity/events?app=beta", tokens["deployer-alpha"], 403],
        ["/v1/activity/events", tokens["deployer-alpha"], 403],
        ["/v1/activity/events?app=beta", tokens["viewer-alpha"], 403],
        ["/v1/activity/events?app=alpha&env=test&environment=live", cp.adminToken, 400],
        ["/v1/activity/events?app=Not_A_Name", cp.adminToken, 400],
        // Past the database's integer ids: bad input, not a query the database refuses (a 500).
        ["/v1/activity/events?app=alpha&lastEventId=99999999999", cp.adminToken, 400],
      ] as const) {
        const c = await connect(path, bearer(token!));
        await c.waitFor(() => c.ended, `the answer to ${path}`);
        expect([path, c.status]).toEqual([path, status]);
      }
    });

    it.runIf(kind === "postgres")("waits for an entry whose transaction commits after a later one", async () => {
      const c = await connect("/v1/activity/events?app=alpha");
      let commit!: () => void;
      const held = new Promise<void>((r) => (commit = r));
      let recorded!: () => void;
      const inserted = new Promise<void>((r) => (recorded = r));
      // An open transaction takes an id, then a later entry commits first.
      const slow = cp.database.db.transaction().execute(async (trx) => {
        await recordActivity(trx, { actor: "test", app: "alpha", action: "slow" });
        recorded();
        await held;
      });
      await inserted;
      await record("alpha", "fast");
      // Long enough for several polls to see "fast" without "slow" (a stream that did not wait would skip "slow").
      await new Promise((r) => setTimeout(r, 400));
      commit();
      await slow;
      await c.waitFor(() => actions(c).includes("fast") && actions(c).includes("slow"), "both entries");
      expect(actions(c)).toEqual(["slow", "fast"]);
      c.disconnect();
    });
  });

  describe("an app's environments", () => {
    type View = { name: string; state: string; branch: string };
    const views = (c: SseConnection) => c.of("environment").map((e) => JSON.parse(e.data) as View);

    it("sends every environment at (re)connection and each change, as GET …/environments/{env} answers it", async () => {
      const first = await connect("/v1/apps/beta/events");
      expect(first.status).toBe(200);
      await first.waitFor(() => views(first).length === 2, "test and live");
      expect(views(first).map((v) => v.name)).toEqual(["test", "live"]);
      expect(views(first)[0]).toEqual((await call("GET", "/v1/apps/beta/environments/test")).json());

      expect((await call("PATCH", "/v1/apps/beta/environments/test", { branch: "develop" })).statusCode).toBe(200);
      await first.waitFor(() => views(first).length === 3, "the change of test");
      expect(views(first)[2]).toEqual((await call("GET", "/v1/apps/beta/environments/test")).json());
      expect(views(first)[2]!.branch).toBe("develop");

      // A state change: live is deployed (placed on the host, which is online).
      const before = views(first)[1]!.state;
      await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date() }).where("id", "=", hostId).execute();
      const deploy = await call("POST", "/v1/apps/beta/environments/live/deployments", {});
      expect(deploy.statusCode, deploy.body).toBe(202);
      const live = (await call("GET", "/v1/apps/beta/environments/live")).json() as View;
      expect(live.state).not.toBe(before);
      await first.waitFor(() => views(first).some((v) => v.name === "live" && v.state === live.state), `live ${live.state}`);
      expect(views(first)[views(first).length - 1]).toEqual(live);

      expect((await call("POST", "/v1/apps/beta/environments", { name: "qa" })).statusCode).toBe(201);
      await first.waitFor(() => views(first).some((v) => v.name === "qa"), "qa");
      expect((await call("DELETE", "/v1/apps/beta/environments/qa?confirm=qa")).statusCode).toBeLessThan(300);
      await first.waitFor(() => first.of("removed").length === 1, "qa removed");
      expect(JSON.parse(first.of("removed")[0]!.data)).toEqual({ name: "qa" });
      const ids = first.events.map((e) => Number(e.lastEventId));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(new Set(ids).size).toBe(ids.length);

      // Resumed: the state of every environment again, with ids that go on counting.
      first.disconnect();
      const second = await connect("/v1/apps/beta/events", { ...bearer(tokens["deployer-beta"]!), "last-event-id": first.lastEventId });
      await second.waitFor(() => views(second).length === 2, "test and live again");
      expect(views(second).map((v) => [v.name, v.branch])).toEqual([["test", "develop"], ["live", "main"]]);
      expect(Number(second.events[0]!.lastEventId)).toBeGreaterThan(Number(first.lastEventId));
      second.disconnect();
    });

    it("lets a viewer read its app, and refuses others and unknown apps before any stream starts", async () => {
      const viewer = await connect("/v1/apps/alpha/events", bearer(tokens["viewer-alpha"]!));
      expect(viewer.status).toBe(200);
      await viewer.waitFor(() => views(viewer).length === 2, "test and live");
      viewer.disconnect();
      for (const [path, token, status] of [
        ["/v1/apps/beta/events", tokens["viewer-alpha"], 403],
        ["/v1/apps/nosuchapp/events", cp.adminToken, 404],
      ] as const) {
        const c = await connect(path, bearer(token!));
        await c.waitFor(() => c.ended, `the answer to ${path}`);
        expect([path, c.status, JSON.parse(c.body).error.code]).toEqual([path, status, status === 404 ? "not_found" : "forbidden"]);
      }
    });
  });

  describe("the streams themselves", () => {
    it("send heartbeats, limit the streams a token has open, and free them when clients go away", async () => {
      const token = bearer(tokens["viewer-alpha"]!);
      const streams = await Promise.all([1, 2, 3, 4].map(() => connect("/v1/apps/alpha/events", token)));
      expect(streams.map((s) => s.status)).toEqual([200, 200, 200, 200]);
      await streams[0]!.waitFor(() => streams[0]!.parser.comments.includes("ping"), "a heartbeat");
      const refused = await connect("/v1/activity/events?app=alpha", token);
      await refused.waitFor(() => refused.ended, "the answer");
      expect([refused.status, JSON.parse(refused.body).error.code]).toEqual([429, "too_many_requests"]);
      // Another token is not counted with this one.
      expect((await connect("/v1/apps/alpha/events", bearer(tokens["deployer-alpha"]!))).status).toBe(200);

      // A client that goes away frees its place (the server notices the closed connection).
      streams[0]!.disconnect();
      let again: SseConnection | undefined;
      const deadline = Date.now() + 10_000;
      while (!again && Date.now() < deadline) {
        const c = await connect("/v1/apps/alpha/events", token);
        if (c.status === 200) again = c;
        else await c.waitFor(() => c.ended, "the refusal");
      }
      expect(again?.status).toBe(200);
      for (const s of [...streams, again!]) s.disconnect();
    });
  });
});

describe("live streams at shutdown", () => {
  it("end when the server closes instead of holding it open", async () => {
    const cp = await testControlPlane("pglite", { streams: { pollIntervalMs: 50 } });
    try {
      await cp.app.listen({ host: "127.0.0.1", port: 0 });
      const base = `http://127.0.0.1:${(cp.app.server.address() as AddressInfo).port}`;
      const c = await SseConnection.open(`${base}/v1/activity/events`, { authorization: `Bearer ${cp.adminToken}` });
      expect(c.status).toBe(200);
      const started = Date.now();
      await cp.app.close();
      await c.waitFor(() => c.ended, "the stream to end");
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await cp.close();
    }
  });
});
