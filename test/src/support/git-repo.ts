import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** A git repository made by a test; commit() writes files and commits them on `main` (or a branch). */
export class TestRepo {
  readonly dir = mkdtempSync(path.join(tmpdir(), "slipway-repo-"));
  constructor() {
    this.git("init", "-q", "-b", "main");
    this.git("config", "user.email", "test@slipway.invalid");
    this.git("config", "user.name", "Slipway Test");
  }
  get url(): string {
    return `file://${this.dir}`;
  }
  git(...args: string[]): string {
    return execFileSync("git", args, { cwd: this.dir, encoding: "utf8" }).trim();
  }
  commit(files: Record<string, string>, message = "change"): string {
    for (const [name, content] of Object.entries(files)) {
      const p = path.join(this.dir, name);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, content, { mode: name.startsWith("cgi-bin/") || name.endsWith(".sh") ? 0o755 : 0o644 });
    }
    this.git("add", "-A");
    this.git("commit", "-q", "-m", message);
    return this.git("rev-parse", "HEAD");
  }
}

/** A Node app: `server.js` (listening on 3000) in the local base image slipway/node:20. */
export function nodeServerApp(serverJs: string): Record<string, string> {
  return {
    Dockerfile: ["FROM slipway/node:20", "WORKDIR /app", "COPY server.js /app/server.js", "EXPOSE 3000", 'CMD ["node", "server.js"]', ""].join("\n"),
    "server.js": serverJs,
  };
}

/** A busybox httpd app serving `body` at / on port 8080. */
export function helloApp(body: string, extra: { cmd?: string; expose?: boolean } = {}): Record<string, string> {
  return {
    Dockerfile: [
      "FROM slipway/busybox:1",
      "COPY index.html /www/index.html",
      ...(extra.expose === false ? [] : ["EXPOSE 8080"]),
      `CMD ${extra.cmd ?? '["httpd", "-f", "-p", "8080", "-h", "/www"]'}`,
      "",
    ].join("\n"),
    "index.html": body,
  };
}

/** A busybox httpd app with a CGI script at /cgi-bin/env printing chosen variables and the container's host name. */
export function envApp(body: string, keys: string[] = ["STAGE", "DEBUG"]): Record<string, string> {
  return {
    Dockerfile: [
      "FROM slipway/busybox:1",
      "COPY index.html /www/index.html",
      "COPY cgi-bin /www/cgi-bin",
      "EXPOSE 8080",
      'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
      "",
    ].join("\n"),
    "index.html": body,
    "cgi-bin/env": ["#!/bin/sh", 'echo "Content-Type: text/plain"', 'echo ""', ...keys.map((k) => `echo "${k}=$${k}"`), 'echo "HOST=$(hostname)"', ""].join("\n"),
  };
}
