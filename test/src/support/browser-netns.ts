import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

/**
 * A network namespace of its own for the browser under test, holding only a loopback interface.
 *
 * Why: Chromium watches the host's network interfaces and fails every request in flight with
 * net::ERR_NETWORK_CHANGED when an address appears or goes (its NetworkChangeNotifier, even for
 * loopback requests), and the platform creates a Docker bridge network, with an address, for
 * apps it deploys. With other test files deploying beside a browser test, the browser would see
 * random failures that no user of a real dashboard (on another machine) would. In a namespace of
 * its own the browser sees no interface come or go.
 *
 * How: a small forwarder runs inside the namespace (started by `unshare --net`); for each port
 * forwarded it listens on 127.0.0.1:<port> there and carries every connection through a Unix
 * socket (file system paths cross namespaces) to this process, which connects to 127.0.0.1:<port>
 * of the host. So the browser reaches the control plane (and an environment's ingress, once
 * forwarded) at the very same URLs as the test does. Chromium itself is started in the namespace
 * by a wrapper (nsenter), which playwright drives over its pipe, not the network.
 */
export class BrowserNetns {
  private inside?: ChildProcess;
  private readonly dir = mkdtempSync(path.join(tmpdir(), "slipway-browser-ns-"));
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly waiting = new Map<number, () => void>();
  private readonly forwarded = new Set<number>();

  /** Starts the namespace and its forwarder; returns the path of a chromium that runs inside it. */
  async start(chromium: string): Promise<string> {
    const child = spawn("unshare", ["--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" -e "$1" "$2"', process.execPath, INSIDE, this.dir], { stdio: ["pipe", "pipe", "inherit"] });
    this.inside = child;
    const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`the browser's network namespace ended (exit ${code}): unshare and ip (util-linux, iproute2) are needed, as root`))));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /^listening (\d+)$/.exec(line);
      if (m) this.waiting.get(Number(m[1]))?.();
    });
    await Promise.race([this.command("ready", 0), exited]);
    const wrapper = path.join(this.dir, "chromium");
    writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=/proc/${child.pid}/ns/net -- ${chromium} "$@"\n`);
    chmodSync(wrapper, 0o755);
    return wrapper;
  }

  /** Makes 127.0.0.1:<port> of the host reachable from the browser at the same address. */
  async forward(port: number): Promise<void> {
    if (this.forwarded.has(port)) return;
    this.forwarded.add(port);
    const server = net.createServer((fromBrowser) => {
      const toHost = net.connect({ host: "127.0.0.1", port });
      for (const s of [fromBrowser, toHost]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => undefined); // the other side's close ends both
      }
      fromBrowser.pipe(toHost);
      toHost.pipe(fromBrowser);
      fromBrowser.on("close", () => toHost.destroy());
      toHost.on("close", () => fromBrowser.destroy());
    });
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path.join(this.dir, `${port}.sock`), resolve);
    });
    await this.command("forward", port);
  }

  private command(what: "ready" | "forward", port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the browser's network namespace did not ${what === "ready" ? "start" : `forward port ${port}`} within 10 s`)), 10_000);
      this.waiting.set(port, () => {
        clearTimeout(timer);
        this.waiting.delete(port);
        resolve();
      });
      this.inside!.stdin!.write(`${what} ${port}\n`);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    if (this.inside && this.inside.exitCode === null) {
      const gone = new Promise<void>((resolve) => this.inside!.once("exit", () => resolve()));
      this.inside.kill("SIGTERM");
      await gone;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The forwarder inside the namespace (plain JavaScript, run by `node -e`): reads "ready 0" / "forward <port>" lines. */
const INSIDE = String.raw`
const net = require("node:net");
const path = require("node:path");
const readline = require("node:readline");
const dir = process.argv[1];
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [what, p] = line.split(" ");
  const port = Number(p);
  if (what === "ready") return void process.stdout.write("listening 0\n");
  const server = net.createServer((fromBrowser) => {
    const toHost = net.connect(path.join(dir, port + ".sock"));
    fromBrowser.on("error", () => undefined);
    toHost.on("error", () => undefined);
    fromBrowser.pipe(toHost);
    toHost.pipe(fromBrowser);
    fromBrowser.on("close", () => toHost.destroy());
    toHost.on("close", () => fromBrowser.destroy());
  });
  server.listen(port, "127.0.0.1", () => process.stdout.write("listening " + port + "\n"));
});
process.stdin.on("end", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
`;
