import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.js";
import { natsServers, parseNatsServers } from "./nats-servers.js";

const cluster = "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222";

describe("NATS addresses: one server or a cluster's nodes", () => {
  it("splits a comma-separated list into the servers a connection is given, spaces and empty entries dropped", () => {
    expect(natsServers("nats://127.0.0.1:4222")).toEqual(["nats://127.0.0.1:4222"]);
    expect(natsServers(" nats://a:4222 , nats://b:4222,,nats://c:4222 ")).toEqual(["nats://a:4222", "nats://b:4222", "nats://c:4222"]);
  });

  it("refuses an empty list, an entry that is not a nats:// or tls:// URL, and a node named twice", () => {
    expect(parseNatsServers(" , ", ["nats:"])).toEqual({ error: "names no server" });
    expect(parseNatsServers("nats://a:4222,http://b:4222", ["nats:", "tls:"])).toMatchObject({ error: expect.stringContaining("'b:4222'") });
    expect(parseNatsServers("nats://a:4222,b:4222", ["nats:", "tls:"])).toMatchObject({ error: expect.stringContaining("protocol") });
    expect(parseNatsServers("nats://a:4222,not a url", ["nats:"])).toMatchObject({ error: expect.stringContaining("is not a URL") });
    expect(parseNatsServers("nats://a:4222,nats://a:4222", ["nats:"])).toEqual({ error: "names a server twice" });
    expect(parseNatsServers("tls://a:4222, nats://b:4222", ["nats:", "tls:"])).toEqual({ list: "tls://a:4222,nats://b:4222" });
  });

  it("control plane: NATS_URL and SLIPWAY_NATS_PUBLIC_URL take a cluster; replicas default to 1 and need a cluster above 1", () => {
    const c = loadConfig({ NATS_URL: cluster.replaceAll(",", ", "), SLIPWAY_NATS_PUBLIC_URL: cluster, SLIPWAY_NATS_REPLICAS: "3" });
    expect(c.natsUrl).toBe(cluster);
    expect(c.natsPublicUrl).toBe(cluster);
    expect(c.natsReplicas).toBe(3);
    expect(loadConfig({}).natsReplicas).toBe(1);
    expect(loadConfig({ NATS_URL: "nats://127.0.0.1:4222" }).natsUrl).toBe("nats://127.0.0.1:4222");
    expect(() => loadConfig({ SLIPWAY_NATS_REPLICAS: "3" })).toThrow(/SLIPWAY_NATS_REPLICAS.*embedded NATS is one node/);
    expect(() => loadConfig({ NATS_URL: cluster, SLIPWAY_NATS_REPLICAS: "6" })).toThrow(/SLIPWAY_NATS_REPLICAS/);
    expect(() => loadConfig({ NATS_URL: cluster, SLIPWAY_NATS_REPLICAS: "0" })).toThrow(/SLIPWAY_NATS_REPLICAS/);
    expect(() => loadConfig({ NATS_URL: "nats://a:4222,http://b:4222" })).toThrow(/NATS_URL.*protocol/);
    expect(() => loadConfig({ SLIPWAY_NATS_PUBLIC_URL: "nats://a:4222,,nats://a:4222" })).toThrow(/SLIPWAY_NATS_PUBLIC_URL.*twice/);
  });
});
