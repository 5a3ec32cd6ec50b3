#!/usr/bin/env node
import { mkdirSync } from "node:fs";
import { createLogger } from "@slipway/core";
import { ConfigError, loadConfig } from "./config.js";
import { startControlPlane } from "./control-plane.js";

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`slipway-control-plane: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
mkdirSync(config.dataDir, { recursive: true });
const log = createLogger("slipway-control-plane", config.logLevel);
try {
  const cp = await startControlPlane(config, log);
  if (cp.createdAdminToken) {
    process.stderr.write(`\nSlipway admin token (shown once, also in ${config.dataDir}/admin-token):\n  ${cp.createdAdminToken}\n\n`);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    cp.stop().then(
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
  log.fatal({ err }, "control plane failed to start");
  process.exit(1);
}
