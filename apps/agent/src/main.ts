#!/usr/bin/env node
import { createLogger } from "@slipway/core";
import { ConfigError, loadConfig } from "./config.js";
import { startAgent } from "./agent.js";

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`slipway-agent: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
const log = createLogger("slipway-agent", config.logLevel);
try {
  const agent = await startAgent(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping (HAProxy and the environments' containers keep serving)");
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
} catch (err) {
  log.fatal({ err: (err as Error).message }, "agent failed to start");
  process.exit(1);
}
