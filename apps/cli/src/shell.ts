import http from "node:http";
import https from "node:https";
import { SHELL_MEDIA_TYPE, ShellFrame, ShellFrameReader, encodeShellFrame } from "@slipway/core";
import { ApiError, UnreachableError } from "./client.js";

export interface ShellStreams {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; rows?: number; columns?: number; on(event: "resize", fn: () => void): unknown; off?(event: "resize", fn: () => void): unknown };
  stderr: NodeJS.WritableStream;
}

/**
 * Runs a command (default: a shell) in a running container of an
 * environment: one streamed POST whose request body carries the input and
 * whose response body carries the output, both as frames. With a terminal,
 * stdin is put in raw mode (every key goes to the container, Ctrl-C too) and
 * the terminal's size follows. Answers the command's exit status. The
 * command goes in the body's first frame (Open), never in the URL, which
 * request logs keep.
 */
export function runShell(o: { url: string; token: string; app: string; env: string; command: string[]; tty: boolean; streams: ShellStreams }): Promise<number> {
  const { stdin, stdout, stderr } = o.streams;
  const open = {
    ...(o.command.length > 0 ? { command: o.command } : {}),
    ...(o.tty ? { tty: true, rows: stdout.rows ?? 24, cols: stdout.columns ?? 80 } : {}),
  };
  const target = new URL(`${o.url}/v1/apps/${encodeURIComponent(o.app)}/environments/${encodeURIComponent(o.env)}/shell`);
  const lib = target.protocol === "https:" ? https : http;
  return new Promise<number>((resolve, reject) => {
    let code: number | undefined;
    let rawMode = false;
    const cleanup = () => {
      stdin.off("data", onInput);
      stdin.off("end", onInputEnd);
      stdout.off?.("resize", onResize);
      if (rawMode) stdin.setRawMode?.(false);
      (stdin as { pause?: () => void }).pause?.();
    };
    const req = lib.request(target, { method: "POST", headers: { authorization: `Bearer ${o.token}`, "content-type": SHELL_MEDIA_TYPE } });
    const onInput = (chunk: Buffer | string) => req.write(encodeShellFrame(ShellFrame.Stdin, typeof chunk === "string" ? Buffer.from(chunk) : chunk));
    const onInputEnd = () => req.write(encodeShellFrame(ShellFrame.StdinEnd));
    const onResize = () => req.write(encodeShellFrame(ShellFrame.Resize, JSON.stringify({ rows: stdout.rows ?? 24, cols: stdout.columns ?? 80 })));
    req.on("error", (err) => {
      cleanup();
      reject(code === undefined ? new UnreachableError(o.url, { cause: err }) : err);
    });
    req.on("response", (res) => {
      if (res.statusCode !== 200) {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString("utf8")));
        res.on("end", () => {
          cleanup();
          req.destroy();
          let body: { error?: { code?: string; message?: string; details?: unknown } } = {};
          try {
            body = JSON.parse(text);
          } catch {
            body = {};
          }
          reject(new ApiError(res.statusCode ?? 0, body.error?.code ?? `http_${res.statusCode}`, body.error?.message ?? (text || `HTTP ${res.statusCode}`), body.error?.details));
        });
        return;
      }
      const reader = new ShellFrameReader();
      res.on("data", (chunk: Buffer) => {
        for (const f of reader.push(chunk)) {
          if (f.type === ShellFrame.Started) {
            // Input flows only once the command runs.
            if (o.tty && stdin.isTTY && stdin.setRawMode) {
              stdin.setRawMode(true);
              rawMode = true;
            }
            stdin.on("data", onInput);
            stdin.on("end", onInputEnd);
            if (o.tty) stdout.on("resize", onResize);
            (stdin as { resume?: () => void }).resume?.();
          } else if (f.type === ShellFrame.Stdout) stdout.write(f.payload);
          else if (f.type === ShellFrame.Stderr) stderr.write(f.payload);
          else if (f.type === ShellFrame.Exit) code = (JSON.parse(f.payload.toString("utf8")) as { code: number }).code;
          else if (f.type === ShellFrame.Error) {
            stderr.write(`slipway: ${f.payload.toString("utf8")}\n`);
            code = 1;
          }
        }
      });
      res.on("end", () => {
        cleanup();
        req.end();
        resolve(code ?? 1);
      });
      res.on("error", () => {
        cleanup();
        resolve(code ?? 1);
      });
    });
    req.write(encodeShellFrame(ShellFrame.Open, JSON.stringify(open)));
  });
}
