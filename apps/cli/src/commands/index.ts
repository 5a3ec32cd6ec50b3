import type { Command } from "./command.js";
import { loginCommands } from "./login.js";
import { appsCommands } from "./apps.js";
import { envsCommands } from "./envs.js";
import { deployCommands } from "./deploy.js";
import { gitCommands } from "./git.js";
import { varsCommands } from "./vars.js";
import { domainsCommands } from "./domains.js";
import { certsCommands } from "./certs.js";
import { dataCommands } from "./data.js";
import { localDbCommands } from "./local-db.js";
import { localMediaCommands } from "./local-media.js";
import { shellCommands } from "./shell.js";
import { logsCommands } from "./logs.js";
import { hostsCommands } from "./hosts.js";
import { tokensCommands } from "./tokens.js";

/** Every command, in the order `slipway help` lists them. */
export const COMMANDS: Command[] = [
  ...loginCommands,
  ...appsCommands,
  ...envsCommands,
  ...deployCommands,
  ...gitCommands,
  ...varsCommands,
  ...domainsCommands,
  ...certsCommands,
  ...dataCommands,
  ...localDbCommands,
  ...localMediaCommands,
  ...shellCommands,
  ...logsCommands,
  ...hostsCommands,
  ...tokensCommands,
];
