#!/usr/bin/env node
import { runService } from "@slipway/core";
import { loadConfig } from "./config.js";
import { startAgent } from "./agent.js";

await runService({
  name: "slipway-agent",
  loadConfig: () => loadConfig(process.env),
  start: startAgent,
  stoppingMessage: "stopping (HAProxy and the environments' containers keep serving)",
});
