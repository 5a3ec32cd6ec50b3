import { describe, expect, it } from "vitest";
import { loadConfig as loadAgentConfig } from "../config.js";
import { natsOptions } from "./connection.js";

const cluster = "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222";

describe("the agent's NATS address: one server or a cluster's nodes", () => {
  it("agent: NATS_URL takes a cluster, and every connection is given each node", () => {
    const c = loadAgentConfig({ NATS_URL: "nats://a:4222, nats://b:4222" });
    expect(c.natsUrl).toBe("nats://a:4222,nats://b:4222");
    expect(() => loadAgentConfig({ NATS_URL: "nats://a:4222,b:4222" })).toThrow(/NATS_URL.*'b:4222'/);
    expect(() => loadAgentConfig({ NATS_URL: " , " })).toThrow(/NATS_URL.*no server/);
    // The address the control plane handed out at registration, as the agent keeps it.
    expect(natsOptions({ url: cluster }, "slipway-agent-test").servers).toEqual(cluster.split(","));
    expect(natsOptions({ url: "nats://127.0.0.1:7702" }, "slipway-agent-test").servers).toEqual(["nats://127.0.0.1:7702"]);
  });
});
