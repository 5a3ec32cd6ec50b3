import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, nodeServerApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { openStream } from "./support/streams.js";

// Issue 12, must show 3: a container that writes its log at full speed for a minute keeps its log
// files within the cap (Docker's json-file driver, rotated by the agent's settings), and the
// runtime-log API keeps following through every rotation. Serial project: a minute of full-speed
// logging loads the whole machine. Real dockerd, agent, NATS, control plane.

const MAX_MB = 1;
const MAX_FILES = 3;
const CAP = MAX_MB * 1024 * 1024 * MAX_FILES;
const FLOOD_SECONDS = 60;

/** A Node app that, on /flood?seconds=N, writes numbered lines to stdout as fast as the pipe takes them. */
const chattyFiles: Record<string, string> = nodeServerApp(String.raw`
const http = require("http");
const pad = "x".repeat(100);
let seq = 0;
let bytes = 0;
let flooding = false;
function flood(until) {
  // Batches of lines, each write waiting for the pipe to drain: full speed, bounded memory.
  while (Date.now() < until) {
    let chunk = "";
    for (let i = 0; i < 200; i++) chunk += "flood " + ++seq + " " + pad + "\n";
    bytes += chunk.length;
    if (!process.stdout.write(chunk)) {
      process.stdout.once("drain", () => flood(until));
      return;
    }
    if (seq % 20000 === 0) return setImmediate(() => flood(until));
  }
  flooding = false;
  process.stdout.write("flood done " + seq + "\n");
}
http.createServer((req, res) => {
  const u = new URL(req.url, "http://x");
  if (u.pathname === "/flood") {
    if (!flooding) {
      flooding = true;
      flood(Date.now() + Number(u.searchParams.get("seconds") || 1) * 1000);
    }
    res.end("flooding\n");
    return;
  }
  if (u.pathname === "/stats") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ seq, bytes, flooding }));
    return;
  }
  if (u.pathname === "/mark") {
    console.log("mark " + u.searchParams.get("id"));
    res.end("marked\n");
    return;
  }
  res.end("chatty ok\n");
}).listen(3000);
process.on("SIGTERM", () => process.exit(0));
`);

/** The container's json-file log and its rotated siblings (<id>-json.log, .1, .2, …), by size. */
function logFiles(container: string): Array<{ name: string; size: number }> {
  const logPath = execFileSync("docker", ["inspect", "-f", "{{.LogPath}}", container], { encoding: "utf8" }).trim();
  const dir = path.dirname(logPath);
  const base = path.basename(logPath);
  return readdirSync(dir)
    .filter((f) => f.startsWith(base))
    .map((f) => ({ name: f, size: statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0 }));
}

describe("container logs, rotated", () => {
  const platform = new Platform();
  const repo = new TestRepo();
  let agent: AgentHandle;
  const api = () => platform.api;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent({ SLIPWAY_CONTAINER_LOG_MAX_MB: String(MAX_MB), SLIPWAY_CONTAINER_LOG_MAX_FILES: String(MAX_FILES) });
    repo.commit(chattyFiles, "chatty");
    await api().call("POST", "/v1/apps", { name: "chatty", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 30 } } });
    const d = await api().deploy("chatty", "test");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("keeps a container's log files within the cap through a minute of full-speed logging, and the followed log keeps following", { timeout: 300_000 }, async () => {
    const container = execFileSync("docker", ["ps", "-q", "--filter", "label=io.slipway.app=chatty", "--filter", "label=io.slipway.role=web"], { encoding: "utf8" }).trim();
    expect(container).not.toBe("");
    const followed = await openStream("the followed runtime log", `${api().baseUrl}/v1/apps/chatty/environments/test/logs?follow=true&since=${encodeURIComponent(new Date().toISOString())}`, {
      headers: { authorization: `Bearer ${api().token}` },
    });
    expect(followed.res.status).toBe(200);
    // Read as it comes, keeping only what is asserted on (a minute of flood is hundreds of MB).
    const got = { lines: 0, maxSeq: 0, marks: new Set<string>(), dropped: 0 };
    const reading = (async () => {
      const reader = followed.res.body!.getReader();
      const decoder = new TextDecoder();
      let rest = "";
      for (;;) {
        const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (chunk.done) return;
        const lines = (rest + decoder.decode(chunk.value, { stream: true })).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          got.lines++;
          const flood = / flood (\d+) /.exec(line);
          if (flood) got.maxSeq = Math.max(got.maxSeq, Number(flood[1]));
          else if (/ mark (\S+)$/.test(line)) got.marks.add(/ mark (\S+)$/.exec(line)![1]!);
          else if (/^\[\d+ lines dropped/.test(line)) got.dropped += Number(/^\[(\d+)/.exec(line)![1]);
        }
      }
    })();
    try {
      // Following works before the flood.
      expect((await getVia(agent.ingressPort, "chatty-test.localhost", "/mark?id=before")).body).toBe("marked\n");
      expect((await getVia(agent.ingressPort, "chatty-test.localhost", `/flood?seconds=${FLOOD_SECONDS}`)).body).toBe("flooding\n");
      let largest = 0;
      let mostFiles = 0;
      let written = 0;
      const started = Date.now();
      for (;;) {
        const files = logFiles(container);
        largest = Math.max(largest, files.reduce((n, f) => n + f.size, 0));
        mostFiles = Math.max(mostFiles, files.length);
        const stats = JSON.parse((await getVia(agent.ingressPort, "chatty-test.localhost", "/stats")).body) as { seq: number; bytes: number; flooding: boolean };
        if (!stats.flooding) {
          console.info(`flood: ${stats.seq} lines, ${(stats.bytes / 1048576).toFixed(0)} MB written in ${((Date.now() - started) / 1000).toFixed(0)} s; log files at most ${(largest / 1048576).toFixed(2)} MB in ${mostFiles} files (cap ${MAX_MB} MB × ${MAX_FILES}); followed: ${got.lines} lines, ${got.dropped} dropped for the slow client`);
          // Many rotations happened: the app wrote far more than the cap.
          expect(stats.bytes).toBeGreaterThan(10 * CAP);
          written = stats.seq;
          break;
        }
        expect(Date.now() - started).toBeLessThan((FLOOD_SECONDS + 60) * 1000);
        await new Promise((r) => setTimeout(r, 250));
      }
      // Within the cap (a file may pass its size by the one message that triggered its rotation).
      expect(mostFiles).toBeLessThanOrEqual(MAX_FILES);
      expect(largest).toBeLessThanOrEqual(CAP + 64 * 1024);
      // The follower saw the flood go by, rotations included (a follower that reads slower than the
      // flood skips what was rotated away: not every line, but well into it), and still follows after it.
      expect(got.marks.has("before")).toBe(true);
      const until = Date.now() + 90_000;
      for (let n = 0; ![...got.marks].some((m) => m.startsWith("after-")); n++) {
        if (Date.now() > until) throw new Error(`no line logged after the flood reached the follower within 90 s (followed ${got.lines} lines, last flood line ${got.maxSeq} of ${written})`);
        expect((await getVia(agent.ingressPort, "chatty-test.localhost", `/mark?id=after-${n}`)).body).toBe("marked\n");
        await new Promise((r) => setTimeout(r, 2000));
      }
      expect(got.maxSeq).toBeGreaterThan(written / 2);
    } finally {
      followed.close();
      await reading;
    }
  });
});
