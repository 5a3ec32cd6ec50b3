import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHELL_MEDIA_TYPE, ShellFrame, ShellFrameReader, encodeShellFrame } from "@slipway/core";
import { runShell, type ShellStreams } from "./shell.js";

// Issue 11, finding 7: the command travelled in the query string, so request logs (the control
// plane's, any proxy's) kept every command run in a container. It goes in the body now.
describe("slipway shell's request", () => {
  let server: http.Server;
  let url = "";
  /** Each request as the server saw it; `done` settles once its body ended. */
  const seen: Array<{ url: string; frames: Array<{ type: number; payload: string }>; done: Promise<void> }> = [];

  beforeAll(async () => {
    // Answers at once (the session starts, prints, exits 3) and records the URL and every frame of the body.
    server = http.createServer((req, res) => {
      const reader = new ShellFrameReader();
      const frames: Array<{ type: number; payload: string }> = [];
      req.on("data", (chunk: Buffer) => {
        for (const f of reader.push(chunk)) frames.push({ type: f.type, payload: f.payload.toString("utf8") });
      });
      seen.push({ url: req.url ?? "", frames, done: new Promise((r) => req.on("end", () => r())) });
      res.writeHead(200, { "content-type": SHELL_MEDIA_TYPE });
      res.write(encodeShellFrame(ShellFrame.Started, JSON.stringify({ container: "c1" })));
      res.write(encodeShellFrame(ShellFrame.Stdout, "hello\n"));
      res.end(encodeShellFrame(ShellFrame.Exit, JSON.stringify({ code: 3 })));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const streams = (): ShellStreams & { out: () => string } => {
    const stdout = Object.assign(new PassThrough(), { rows: 40, columns: 120 });
    let text = "";
    stdout.on("data", (d: Buffer) => (text += d.toString("utf8")));
    const stdin = new PassThrough();
    stdin.end();
    return { stdin, stdout, stderr: new PassThrough(), out: () => text };
  };

  it("carries the command and the terminal in the body's first frame, and nothing in the URL", async () => {
    const s = streams();
    const code = await runShell({ url, token: "slw_t", app: "shop", env: "live", command: ["psql", "-c", "select secret from accounts"], tty: true, streams: s });
    expect(code).toBe(3);
    expect(s.out()).toBe("hello\n");
    const req = seen.at(-1)!;
    expect(req.url).toBe("/v1/apps/shop/environments/live/shell");
    await req.done;
    expect(req.url).not.toContain("secret");
    expect(req.frames[0]!.type).toBe(ShellFrame.Open);
    expect(JSON.parse(req.frames[0]!.payload)).toEqual({ command: ["psql", "-c", "select secret from accounts"], tty: true, rows: 40, cols: 120 });
  });

  it("sends an empty Open frame for the default shell without a terminal", async () => {
    await runShell({ url, token: "slw_t", app: "shop", env: "test", command: [], tty: false, streams: streams() });
    const req = seen.at(-1)!;
    expect(req.url).toBe("/v1/apps/shop/environments/test/shell");
    await req.done;
    expect(req.frames[0]).toEqual({ type: ShellFrame.Open, payload: "{}" });
  });
});
