#!/usr/bin/env node
import { mkdirSync } from "node:fs";
import { runService } from "@slipway/core";
import { loadConfig } from "./config.js";
import { startControlPlane } from "./control-plane.js";

await runService({
  name: "slipway-control-plane",
  loadConfig: () => {
    const config = loadConfig(process.env);
    mkdirSync(config.dataDir, { recursive: true });
    return config;
  },
  start: async (config, log) => {
    const cp = await startControlPlane(config, log);
    if (cp.createdAdminToken) {
      process.stderr.write(`\nSlipway admin token (shown once, also in ${config.dataDir}/admin-token):\n  ${cp.createdAdminToken}\n\n`);
    }
    return cp;
  },
});
