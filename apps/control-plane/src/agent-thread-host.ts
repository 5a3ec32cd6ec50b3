import { Worker } from "node:worker_threads";
import type { Logger } from "@slipway/core";
import type { ControlPlaneConfig } from "./config.js";
import type { StorageConfig } from "./data/object-store.js";

/** What the main thread hands the agent thread (agent-thread.ts): what it started and the thread cannot. */
export interface AgentThreadShared {
  /** The NATS the main thread connected to (the embedded server's URL, or the configured one). */
  natsUrl: string;
  /** True when the control plane signs in with its nkey (it manages one NATS user per host). */
  natsSeeded: boolean;
  /** The S3 endpoints, embedded or configured. */
  storage: StorageConfig;
}

/** Messages between the main thread and the agent thread (agent-thread.ts). */
export type ToAgentThread = { type: "stop" } | { type: "nats-users-synced"; id: number; error?: string };
export type FromAgentThread = { type: "ready"; grpcPort: number } | { type: "failed"; message: string } | { type: "stopped" } | { type: "nats-users-sync"; id: number };

/** What the agent thread is given when it starts. */
export interface AgentThreadData {
  config: Readonly<ControlPlaneConfig>;
  shared: AgentThreadShared;
}

/** How long a stopping agent thread gets (its gRPC server waits 3 s for calls, then its beats are written). */
const STOP_WAIT_MS = 10_000;

/** What a test changes: the thread's script, what a thread's death does, the stop's wait. */
export interface AgentThreadOptions {
  script?: URL;
  onDeath?: (code: number) => void;
  stopWaitMs?: number;
}

/**
 * Starts the agents' gRPC server in a worker thread and answers its requests for what only the
 * main thread holds (the NATS users file and the embedded server's reload). Resolves with the
 * gRPC port once the thread listens; its stop is pushed on `cleanups`. A thread that dies on its
 * own takes the process with it (exit 1): a control plane that no agent can reach must not keep
 * answering REST as if it could, and its supervisor (systemd, `Restart=always`) starts it again.
 */
export function startAgentThread(
  config: Readonly<ControlPlaneConfig>,
  shared: AgentThreadShared,
  natsUsers: { sync(): Promise<void> } | undefined,
  log: Logger,
  cleanups: Array<() => Promise<void>>,
  opts: AgentThreadOptions = {},
): Promise<number> {
  const data: AgentThreadData = { config, shared };
  const onDeath = opts.onDeath ?? ((code: number) => process.exit(code));
  const worker = new Worker(opts.script ?? new URL("./agent-thread.js", import.meta.url), { workerData: data, stdout: false, stderr: false });
  let stopping = false;
  let ready = false;
  const send = (m: ToAgentThread) => worker.postMessage(m);
  return new Promise<number>((resolve, reject) => {
    worker.on("message", (m: FromAgentThread) => {
      switch (m.type) {
        case "ready":
          ready = true;
          cleanups.push(() => stopThread());
          resolve(m.grpcPort);
          return;
        case "failed":
          stopping = true;
          void worker.terminate();
          reject(new Error(`the agent thread could not start: ${m.message}`));
          return;
        case "nats-users-sync":
          (natsUsers ? natsUsers.sync() : Promise.resolve()).then(
            () => send({ type: "nats-users-synced", id: m.id }),
            (err: unknown) => send({ type: "nats-users-synced", id: m.id, error: (err as Error).message }),
          );
          return;
        case "stopped":
          // Its last beats are written and its pool closed: what keeps it alive now is only timers.
          void worker.terminate();
          return;
      }
    });
    worker.on("error", (err) => {
      log.error({ err }, "the agent thread failed");
      if (!ready) reject(err);
    });
    worker.on("exit", (code) => {
      if (stopping) return;
      if (!ready) return reject(new Error(`the agent thread exited (${code}) before listening`));
      log.fatal({ code }, "the agent thread stopped on its own: exiting, agents cannot reach this control plane");
      onDeath(1);
    });
  });

  function stopThread(): Promise<void> {
    stopping = true;
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        log.warn("the agent thread did not stop in time; terminating it");
        void worker.terminate().then(() => resolve());
      }, opts.stopWaitMs ?? STOP_WAIT_MS);
      worker.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
      send({ type: "stop" });
    });
  }
}
