import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";

// Issue 12, must show 6, with the real stack: two agents on this machine as two hosts of different
// sizes (what each lets the platform place there: SLIPWAY_AGENT_MEMORY_MB / SLIPWAY_AGENT_CPUS,
// reported at registration and with every heartbeat), real control plane, PostgreSQL, HAProxy, dockerd.
describe("placement by capacity", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let big: AgentHandle;
  let small: AgentHandle;
  const api = () => platform.api;
  const MiB = 1024 * 1024;

  beforeAll(async () => {
    await platform.start();
    big = await platform.addAgent({ SLIPWAY_AGENT_MEMORY_MB: "2048", SLIPWAY_AGENT_CPUS: "2" });
    small = await platform.addAgent({ SLIPWAY_AGENT_MEMORY_MB: "1024", SLIPWAY_AGENT_CPUS: "1" });
    repo.commit(helloApp("sized"), "sized");
    await api().call("POST", "/v1/apps", { name: "cap", repository: repo.url });
  });
  afterAll(async () => {
    await platform.stop();
  });

  const hostOf = async (env: string) => (await api().call("GET", `/v1/apps/cap/environments/${env}`)).host as string;

  it("places an environment that fits one host only there, and one that fits both on the host with the most room, each served there", async () => {
    // 1536 MiB fits big (2048) only.
    await api().call("PATCH", "/v1/apps/cap/environments/test", { limits: { memoryMb: 1536 } });
    const t = await api().deploy("cap", "test");
    expect(t.state, await api().log(t.id)).toBe("succeeded");
    expect(await hostOf("test")).toBe(big.hostId);
    expect((await getVia(big.ingressPort, "cap-test.localhost")).body).toBe("sized");
    // 512 MiB fits both: big would keep 0 of its 2048 MiB free, small 512 of 1024 (50 %): small has the most room.
    await api().call("PATCH", "/v1/apps/cap/environments/live", { limits: { memoryMb: 512 } });
    const l = await api().deploy("cap", "live");
    expect(l.state, await api().log(l.id)).toBe("succeeded");
    expect(await hostOf("live")).toBe(small.hostId);
    expect((await getVia(small.ingressPort, "cap-live.localhost")).body).toBe("sized");
    // What each host offers and what is placed there.
    const hosts = (await api().call("GET", "/v1/hosts")) as Array<{ id: string; requested: { memoryBytes: number; cpus: number }; allocatable: { memoryBytes: number; cpus: number } }>;
    const byId = Object.fromEntries(hosts.map((h) => [h.id, h]));
    expect(byId[big.hostId!]).toMatchObject({ requested: { memoryBytes: 1536 * MiB, cpus: 1 }, allocatable: { memoryBytes: 2048 * MiB, cpus: 16 } });
    expect(byId[small.hostId!]).toMatchObject({ requested: { memoryBytes: 512 * MiB, cpus: 1 }, allocatable: { memoryBytes: 1024 * MiB, cpus: 8 } });
  });

  it("refuses an environment whose request fits no host with the reason, and writes nothing", async () => {
    await api().call("POST", "/v1/apps/cap/environments", { name: "huge" });
    await api().call("PATCH", "/v1/apps/cap/environments/huge", { limits: { memoryMb: 1024 } });
    const res = await api().raw("POST", "/v1/apps/cap/environments/huge/deployments", {});
    expect(res.status).toBe(409);
    const body = res.body as { error: { message: string; details: { reason: string } } };
    expect(body.error.details.reason).toBe("no_room");
    // Every host's free figures, by name.
    expect(body.error.message).toMatch(/^cap\/huge cannot be placed: no host has room for 1024 MiB and 1 CPU \(.*\)$/);
    expect(body.error.message).toContain("agent-0: 512 MiB and 15 CPU free");
    expect(body.error.message).toContain("agent-1: 512 MiB and 7 CPU free");
    expect(await api().call("GET", "/v1/apps/cap/environments/huge/deployments")).toEqual([]);
    expect(await hostOf("huge")).toBeFalsy();
    // Within what is left (512 MiB on each): big would keep 256 of 2048 MiB (12.5 %), small 256 of 1024 (25 %): small.
    await api().call("PATCH", "/v1/apps/cap/environments/huge", { limits: { memoryMb: 256 } });
    const ok = await api().deploy("cap", "huge");
    expect(ok.state, await api().log(ok.id)).toBe("succeeded");
    expect(await hostOf("huge")).toBe(small.hostId);
    expect((await getVia(small.ingressPort, "cap-huge.localhost")).body).toBe("sized");
  });
});
