import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { sleep } from "./support/processes.js";

/** The ingress's answer for a host name no environment is served at. */
const NO_ENVIRONMENT = "no environment is served at this host name";

interface Reply {
  status: number;
  body: string;
  /** Sent on a connection that had carried an earlier request. */
  reused: boolean;
}

/** One GET through the ingress on a keep-alive agent (its open connection when it has one). */
function getOn(agent: http.Agent, port: number, host: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent, headers: { host }, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/**
 * Issue 10: a newly created environment's first deployment must not read
 * `succeeded` while its host name still gets the ingress's 404 — on a fresh
 * connection, or on a keep-alive connection opened before the deployment
 * (adding the environment reloads HAProxy, and the previous worker keeps
 * serving the connections it holds with the previous configuration).
 */
describe("a new environment is served the moment its first deployment succeeded", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    repo.commit(helloApp("served"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "served", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 10 } } });
    const d = await platform.api.deploy("served", "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
  });
  afterAll(async () => {
    await platform.stop();
  });

  it.each([
    { name: "qa", basedOn: "test" },
    { name: "dev", basedOn: undefined },
  ])("$name (based on $basedOn)", async ({ name, basedOn }) => {
    const api = platform.api;
    const port = agent.ingressPort;
    const host = `served-${name}.localhost`;
    await api.call("POST", "/v1/apps/served/environments", { name, ...(basedOn ? { basedOn } : {}) });
    // Two connections opened before the deployment: one asks all along, one asks once and then waits.
    const busy = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const idle = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const busyReplies: Array<Reply & { sentAt: number }> = [];
    let polling = true;
    try {
      expect(await getOn(idle, port, host)).toMatchObject({ status: 404, body: NO_ENVIRONMENT });
      expect(await getOn(busy, port, host)).toMatchObject({ status: 404, body: NO_ENVIRONMENT });
      const busyLoop = (async () => {
        while (polling) {
          const sentAt = Date.now();
          const reply = await getOn(busy, port, host).catch((err: Error) => ({ status: 0, body: err.message, reused: false }));
          busyReplies.push({ ...reply, sentAt });
          await sleep(25); // a client asking about 40 times a second
        }
      })();

      const posted = Date.now();
      const { id } = await api.call("POST", `/v1/apps/served/environments/${name}/deployments`, {});
      let deployment: { state: string };
      for (;;) {
        deployment = await api.call("GET", `/v1/deployments/${id}`);
        if (["succeeded", "failed", "cancelled"].includes(deployment.state)) break;
        if (Date.now() - posted > 90_000) throw new Error(`deployment ${id} still ${deployment.state} after 90 s`);
        await sleep(10); // the deployment is read as often as a client could
      }
      const succeededAt = Date.now();
      // At once: the connection that waited, fresh connections, and the busy connection's next requests.
      const [onIdle, ...fresh] = await Promise.all([getOn(idle, port, host), ...Array.from({ length: 5 }, () => getVia(port, host))]);
      while (busyReplies.filter((r) => r.sentAt >= succeededAt).length < 3) await sleep(25);
      polling = false;
      await busyLoop;

      expect(deployment.state, await api.log(id)).toBe("succeeded");
      expect(busyReplies.filter((r) => r.sentAt < succeededAt && r.status === 404).length).toBeGreaterThan(0);
      expect(onIdle).toMatchObject({ status: 200, body: "served" });
      expect(fresh).toEqual(new Array(5).fill({ status: 200, body: "served" }));
      const afterSuccess = busyReplies.filter((r) => r.sentAt >= succeededAt);
      expect(afterSuccess.map((r) => `${r.status} ${r.body}`)).toEqual(afterSuccess.map(() => "200 served"));
      console.info(`${name}: succeeded ${succeededAt - posted} ms after the deployment was posted; the idle connection ${onIdle.reused ? "was reused" : "had been closed by the previous worker"}`);
    } finally {
      polling = false;
      busy.destroy();
      idle.destroy();
    }
  });
});
