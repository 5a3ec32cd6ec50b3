/**
 * The agent thread (SLIPWAY_AGENT_THREAD): the gRPC AgentService on its own event loop, its own
 * database pool and NATS connection, started by agent-thread-host.ts. What only the main thread
 * holds (the NATS users file, the embedded server) it asks for over its port.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createLogger } from "@slipway/core";
import { startAgentServer } from "./control-plane.js";
import type { AgentThreadData, FromAgentThread, ToAgentThread } from "./agent-thread-host.js";

const port = parentPort!;
const { config, shared } = workerData as AgentThreadData;
const log = createLogger("slipway-control-plane", config.logLevel).child({ thread: "agents" });
const send = (m: FromAgentThread) => port.postMessage(m);

let nextId = 0;
const syncs = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
const natsUsers = shared.natsSeeded
  ? {
      sync: () =>
        new Promise<void>((resolve, reject) => {
          const id = ++nextId;
          syncs.set(id, { resolve, reject });
          send({ type: "nats-users-sync", id });
        }),
    }
  : undefined;

let server: Awaited<ReturnType<typeof startAgentServer>> | undefined;
port.on("message", (m: ToAgentThread) => {
  if (m.type === "nats-users-synced") {
    const s = syncs.get(m.id);
    syncs.delete(m.id);
    if (m.error) s?.reject(new Error(m.error));
    else s?.resolve();
  } else if (m.type === "stop") {
    // The host asks only once the thread said it was ready.
    void (server?.stop() ?? Promise.resolve()).finally(() => send({ type: "stopped" }));
  }
});
try {
  server = await startAgentServer(config, log, { ...shared, ...(natsUsers ? { natsUsers } : {}) });
  send({ type: "ready", grpcPort: server.grpcPort });
} catch (err) {
  log.error({ err }, "the agent thread could not start");
  send({ type: "failed", message: (err as Error).message });
}
