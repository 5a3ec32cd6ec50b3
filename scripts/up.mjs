#!/usr/bin/env node
// Local demo on embedded defaults: start the control plane and one agent,
// deploy examples/hello to its test and live environments, print where to
// look, and keep running until Ctrl-C. `npm run up` runs scripts/setup first.
//
// Plain Node (>= 20) ESM, standard library only.
//
// Environment (besides what the control plane and the agent read themselves):
//   SLIPWAY_DATA_DIR              control plane data (default <repo>/.slipway/data)
//   SLIPWAY_HTTP_PORT             control plane REST port (default 7700)
//   SLIPWAY_GRPC_PORT             control plane gRPC port (default 7701)
//   SLIPWAY_CONTROL_PLANE         agent's gRPC target (default 127.0.0.1:<grpc port>)
//   SLIPWAY_AGENT_STATE_DIR       agent state (default <repo>/.slipway/agent)
//   SLIPWAY_INGRESS_HTTP_PORT     agent's HTTP ingress port (default 8080)
//   SLIPWAY_UP_EXIT_AFTER_DEPLOY=1  print the summary, stop everything, exit 0

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SLIPWAY_DIR = path.join(REPO, ".slipway");
const DATA_DIR = path.resolve(process.env.SLIPWAY_DATA_DIR || path.join(SLIPWAY_DIR, "data"));
const HELLO_SRC = path.join(REPO, "examples", "hello");
const HELLO_REPO = path.resolve(DATA_DIR, "..", "repos", "hello");
const HTTP_PORT = process.env.SLIPWAY_HTTP_PORT || "7700";
const GRPC_PORT = process.env.SLIPWAY_GRPC_PORT || "7701";
const API_URL = `http://127.0.0.1:${HTTP_PORT}`;
const AGENT_STATE_DIR = path.resolve(process.env.SLIPWAY_AGENT_STATE_DIR || path.join(SLIPWAY_DIR, "agent"));
const INGRESS_HTTP_PORT = process.env.SLIPWAY_INGRESS_HTTP_PORT || "8080";
const CONTROL_PLANE_TARGET = process.env.SLIPWAY_CONTROL_PLANE || `127.0.0.1:${GRPC_PORT}`;
const CP_MAIN = path.join(REPO, "apps", "control-plane", "dist", "main.js");
const AGENT_MAIN = path.join(REPO, "apps", "agent", "dist", "main.js");
const CP_LOG = path.join(SLIPWAY_DIR, "control-plane.log");
const AGENT_LOG = path.join(SLIPWAY_DIR, "agent.log");
const EXIT_AFTER_DEPLOY = process.env.SLIPWAY_UP_EXIT_AFTER_DEPLOY === "1";

const APP = "hello";
const ENVIRONMENTS = ["test", "live"];
const READY_TIMEOUT_MS = 120_000;
const HOST_TIMEOUT_MS = 60_000;
const DEPLOY_TIMEOUT_MS = 30 * 60_000;
const STOP_GRACE_MS = 10_000;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

const say = (msg) => console.log(`up: ${msg}`);

class UpError extends Error {}

// ---------------------------------------------------------------- children

/** @type {{name: string, child: import("node:child_process").ChildProcess, log: string, exited: Promise<void>}[]} */
const children = [];

function startChild(name, script, env, logFile) {
  if (stopping) throw new UpError(`not starting ${name}: stopping`);
  if (!fs.existsSync(script)) {
    throw new UpError(`${script} does not exist: run \`npm run build\` (or \`bash scripts/setup\`) first`);
  }
  const fd = fs.openSync(logFile, "w");
  // detached: own process group, so a Ctrl-C in the terminal reaches only this
  // script, which then stops the children in order (agent first).
  const child = spawn(process.execPath, ["--enable-source-maps", script], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ["ignore", fd, fd],
    detached: true,
  });
  fs.closeSync(fd);
  const entry = {
    name,
    child,
    log: logFile,
    exited: new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (err) => {
        fs.appendFileSync(logFile, `\n[up] could not start ${name}: ${err.message}\n`);
        resolve();
      });
    }),
  };
  children.push(entry);
  say(`started ${name} (pid ${child.pid}, log ${path.relative(process.cwd(), logFile) || logFile})`);
  return entry;
}

const hasExited = ({ child }) => child.exitCode !== null || child.signalCode !== null || child.pid === undefined;

function signalChild(entry, signal) {
  if (hasExited(entry)) return;
  try {
    process.kill(entry.child.pid, signal);
  } catch {
    /* already gone */
  }
}

async function stopChild(entry) {
  if (hasExited(entry)) return;
  say(`stopping ${entry.name} (pid ${entry.child.pid})`);
  signalChild(entry, "SIGTERM");
  const stopped = await Promise.race([entry.exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
  if (!stopped) {
    say(`${entry.name} did not stop within ${STOP_GRACE_MS / 1000} s: SIGKILL`);
    signalChild(entry, "SIGKILL");
    await Promise.race([entry.exited, sleep(5_000)]);
  }
}

let stopping = null;
/** Stop the children in reverse start order (agent, then control plane). */
function stopAll() {
  stopping ??= (async () => {
    for (const entry of [...children].reverse()) await stopChild(entry);
    removeAgentLeftovers();
  })();
  return stopping;
}

/**
 * A stopped agent leaves HAProxy and the environments' containers serving on
 * purpose (an agent restart is not an outage); `up` promises to stop everything
 * it started, so it removes them by the agent's host label and HAProxy pid file.
 */
function removeAgentLeftovers() {
  let hostId;
  try {
    hostId = JSON.parse(fs.readFileSync(path.join(AGENT_STATE_DIR, "identity.json"), "utf8")).hostId;
  } catch {
    return;
  }
  const docker = (...args) => execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n").filter(Boolean);
  try {
    const containers = docker("ps", "-aq", "--filter", `label=io.slipway.host=${hostId}`);
    if (containers.length) {
      say(`removing ${containers.length} container(s) of host ${hostId}`);
      docker("rm", "-f", ...containers);
    }
    const networks = docker("network", "ls", "-q", "--filter", `label=io.slipway.host=${hostId}`);
    if (networks.length) docker("network", "rm", ...networks);
  } catch (err) {
    say(`warning: could not remove containers: ${err.message}`);
  }
  try {
    const pid = Number(fs.readFileSync(path.join(AGENT_STATE_DIR, "haproxy", "haproxy.pid"), "utf8").trim().split("\n")[0]);
    if (pid > 0) {
      say(`stopping HAProxy (pid ${pid})`);
      process.kill(pid, "SIGTERM");
    }
  } catch {
    // not running
  }
}

// Last resort if this process exits without stopChild having run.
process.on("exit", () => {
  for (const entry of children) signalChild(entry, "SIGTERM");
});

function tail(file, lines = 40) {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd().split("\n");
    return text.slice(-lines).join("\n");
  } catch (err) {
    return `(cannot read ${file}: ${err.message})`;
  }
}

function exitedError(entry) {
  const how = entry.child.signalCode ? `signal ${entry.child.signalCode}` : `code ${entry.child.exitCode}`;
  return new UpError(`${entry.name} exited (${how}). Last lines of ${entry.log}:\n${tail(entry.log)}`);
}

function checkAlive(entry) {
  if (hasExited(entry)) throw exitedError(entry);
}

// ---------------------------------------------------------------- HTTP API

let adminToken = "";

async function api(method, urlPath, body, { okStatuses = [200, 201, 202, 204], timeoutMs = 15_000 } = {}) {
  const res = await fetch(API_URL + urlPath, {
    method,
    headers: {
      ...(adminToken ? { authorization: `Bearer ${adminToken}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!okStatuses.includes(res.status)) {
    const err = new UpError(`${method} ${urlPath} answered ${res.status}: ${text.slice(0, 500)}`);
    err.status = res.status;
    err.body = json;
    throw err;
  }
  return { status: res.status, body: json };
}

async function isReady() {
  try {
    const res = await fetch(`${API_URL}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Poll `probe` every `intervalMs` until it returns a truthy value. */
async function waitFor(what, timeoutMs, probe, { intervalMs = 500, watch = [] } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const entry of watch) checkAlive(entry);
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) {
      const logs = watch.map((e) => `\nLast lines of ${e.log}:\n${tail(e.log)}`).join("");
      throw new UpError(`timed out after ${timeoutMs / 1000} s waiting for ${what}${logs}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------- the example repository

function git(args, cwd) {
  return execFileSync("git", ["-c", "user.name=Slipway", "-c", "user.email=up@slipway.invalid", ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Mirror examples/hello into a git repository and commit any change. */
function prepareRepository() {
  const fresh = !fs.existsSync(path.join(HELLO_REPO, ".git"));
  fs.mkdirSync(HELLO_REPO, { recursive: true });
  if (fresh) git(["init", "-q", "-b", "main"], HELLO_REPO);
  for (const name of fs.readdirSync(HELLO_REPO)) {
    if (name !== ".git") fs.rmSync(path.join(HELLO_REPO, name), { recursive: true, force: true });
  }
  fs.cpSync(HELLO_SRC, HELLO_REPO, { recursive: true });
  git(["add", "-A"], HELLO_REPO);
  if (git(["status", "--porcelain"], HELLO_REPO).trim() !== "") {
    git(["commit", "-q", "-m", fresh ? "hello: initial commit" : "hello: update from examples/hello"], HELLO_REPO);
    say(`${fresh ? "created" : "updated"} git repository ${HELLO_REPO}`);
  }
}

// ---------------------------------------------------------------- deployments

async function deploymentState(id) {
  const { body } = await api("GET", `/v1/deployments/${encodeURIComponent(id)}`);
  return body?.state;
}

/** Stream a deployment's log to stdout, each line prefixed with `[env] `. */
async function followLog(env, id, abort) {
  const prefix = `[${env}] `;
  const res = await fetch(`${API_URL}/v1/deployments/${encodeURIComponent(id)}/log?follow=true`, {
    headers: { authorization: `Bearer ${adminToken}` },
    signal: abort.signal,
  });
  if (res.status !== 200 || !res.body) {
    const text = await res.text().catch(() => "");
    throw new UpError(`GET /v1/deployments/${id}/log answered ${res.status}: ${text.slice(0, 300)}`);
  }
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of res.body) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) process.stdout.write(prefix + line.replace(/\r$/, "") + "\n");
  }
  pending += decoder.decode();
  if (pending) process.stdout.write(prefix + pending + "\n");
}

async function deploy(env, watch) {
  say(`deploying ${APP} to ${env}`);
  const { body } = await api("POST", `/v1/apps/${APP}/environments/${env}/deployments`, {});
  const id = body?.id;
  if (!id) throw new UpError(`deployment of ${env}: no id in the answer ${JSON.stringify(body)}`);

  // Follow the log; meanwhile watch the deployment's state, so that a log
  // stream that does not end (or fails) cannot hang the script.
  const abort = new AbortController();
  let logDone = false;
  const logFollow = followLog(env, id, abort)
    .catch((err) => {
      if (!abort.signal.aborted) say(`[${env}] log stream failed (${err.message}); waiting for the deployment to finish`);
    })
    .finally(() => {
      logDone = true;
    });

  const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
  let state;
  let terminalSince = 0;
  try {
    for (;;) {
      for (const entry of watch) checkAlive(entry);
      state = await deploymentState(id).catch(() => state);
      if (TERMINAL.has(state)) {
        terminalSince ||= Date.now();
        // Give the log stream a moment to deliver its last lines.
        if (logDone || Date.now() - terminalSince > 5_000) break;
      }
      if (Date.now() > deadline) throw new UpError(`deployment ${id} of ${env} did not finish within ${DEPLOY_TIMEOUT_MS / 60_000} min`);
      await sleep(logDone ? 1_000 : 250);
    }
  } finally {
    abort.abort();
    await logFollow;
  }

  if (state !== "succeeded") {
    throw new UpError(`deployment ${id} of ${APP}/${env} ended ${state} (its log is above, prefixed [${env}])`);
  }
  say(`deployment ${id} of ${env} succeeded`);
  return id;
}

// ---------------------------------------------------------------- main

async function main() {
  fs.mkdirSync(SLIPWAY_DIR, { recursive: true });
  fs.mkdirSync(DATA_DIR, { recursive: true });
  fs.mkdirSync(AGENT_STATE_DIR, { recursive: true });

  if (await isReady()) {
    throw new UpError(`something already answers on ${API_URL}/readyz: is another control plane running? Stop it or set SLIPWAY_HTTP_PORT`);
  }

  prepareRepository();

  const cp = startChild(
    "control plane",
    CP_MAIN,
    { SLIPWAY_DATA_DIR: DATA_DIR, SLIPWAY_HTTP_PORT: HTTP_PORT, SLIPWAY_GRPC_PORT: GRPC_PORT, SLIPWAY_INGRESS_PUBLIC_PORT: INGRESS_HTTP_PORT },
    CP_LOG,
  );
  say(`waiting for ${API_URL}/readyz`);
  await waitFor("the control plane to be ready", READY_TIMEOUT_MS, isReady, { watch: [cp] });

  const tokenFile = path.join(DATA_DIR, "admin-token");
  adminToken = await waitFor(`${tokenFile}`, 10_000, () => {
    try {
      return fs.readFileSync(tokenFile, "utf8").trim();
    } catch {
      return process.env.SLIPWAY_ADMIN_TOKEN || "";
    }
  }, { watch: [cp] });

  const { body: join } = await api("POST", "/v1/join-tokens", {});
  if (!join?.token) throw new UpError(`POST /v1/join-tokens: no token in the answer ${JSON.stringify(join)}`);

  const agent = startChild(
    "agent",
    AGENT_MAIN,
    {
      SLIPWAY_CONTROL_PLANE: CONTROL_PLANE_TARGET,
      SLIPWAY_JOIN_TOKEN: join.token,
      SLIPWAY_AGENT_STATE_DIR: AGENT_STATE_DIR,
      SLIPWAY_INGRESS_HTTP_PORT: INGRESS_HTTP_PORT,
    },
    AGENT_LOG,
  );
  const watch = [cp, agent];
  say("waiting for the agent's host to come online");
  const host = await waitFor(
    "an online host in GET /v1/hosts",
    HOST_TIMEOUT_MS,
    async () => {
      const { body } = await api("GET", "/v1/hosts").catch(() => ({ body: [] }));
      const hosts = Array.isArray(body) ? body : Array.isArray(body?.items) ? body.items : [];
      return hosts.find((h) => h?.state === "online");
    },
    { intervalMs: 1_000, watch },
  );
  say(`host ${host.name ?? host.id} is online`);

  const repository = `file://${HELLO_REPO}`;
  try {
    await api("POST", "/v1/apps", { name: APP, repository });
    say(`created app ${APP} (repository ${repository})`);
  } catch (err) {
    if (err.status === 409) say(`app ${APP} exists already`);
    else throw err;
  }

  for (const env of ENVIRONMENTS) await deploy(env, watch);

  const urls = {};
  for (const env of ENVIRONMENTS) {
    const { body } = await api("GET", `/v1/apps/${APP}/environments/${env}`);
    urls[env] = body?.url ?? "(no url)";
  }

  const lines = [
    "",
    "Slipway is up.",
    "",
    `  ${APP} (test):   ${urls.test}`,
    `  ${APP} (live):   ${urls.live}`,
    `  API:            ${API_URL}   (e.g. curl -H "Authorization: Bearer $TOKEN" ${API_URL}/v1/apps)`,
    `  admin token:    ${adminToken}`,
    `  logs:           ${path.relative(process.cwd(), CP_LOG) || CP_LOG}, ${path.relative(process.cwd(), AGENT_LOG) || AGENT_LOG}`,
    "",
    `Try: curl ${urls.test}`,
    "",
  ];
  console.log(lines.join("\n"));
  console.log(
    "SLIPWAY_UP_SUMMARY " + JSON.stringify({ testUrl: urls.test, liveUrl: urls.live, apiUrl: API_URL, adminToken }),
  );

  if (EXIT_AFTER_DEPLOY) {
    await stopAll();
    return "done";
  }
  console.log("Press Ctrl-C to stop.");
  // Stay up while the children run; if one dies, stop the other and fail.
  await Promise.race(watch.map((e) => e.exited));
  if (stopping) return "signal";
  const dead = watch.find(hasExited);
  throw exitedError(dead);
}

let signalled = false;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    if (signalled) {
      say(`${sig} again: killing the children now`);
      for (const entry of children) signalChild(entry, "SIGKILL");
      process.exit(1);
    }
    signalled = true;
    console.log("");
    say(`${sig}: stopping`);
    stopAll().then(() => process.exit(0));
  });
}

main().then(
  (how) => {
    if (how === "done") process.exit(0);
    // "signal": the handler above exits once the children are stopped.
  },
  async (err) => {
    if (signalled) return; // stopping on request; the handler exits 0
    console.error(`up: ERROR: ${err instanceof UpError ? err.message : err?.stack || err}`);
    await stopAll();
    process.exit(1);
  },
);
