import { writeFileSync } from "node:fs";
import path from "node:path";
import { reservePort } from "@slipway/agent/testing/ports";
import { startProcess, waitFor, type Proc } from "./processes.js";

/**
 * A load balancer in front of control-plane replicas, as ARCHITECTURE.md's production topology
 * puts one (README, "Several control planes"): HAProxy in TCP mode for the REST port
 * and for the gRPC port (HTTP/2 streams stay on the connection they opened; an agent whose replica
 * goes reconnects and lands on another), health-checked on /readyz and on the gRPC port, a
 * replica that fails its checks has its connections shut so that clients reconnect at once.
 */
export class CpBalancer {
  httpPort = 0;
  grpcPort = 0;
  private proc?: Proc;

  /**
   * `grpcBalance`: HAProxy's algorithm for the gRPC port ("roundrobin"; "first" puts every agent
   * on the first replica while it is up, so a test knows which replica its agents lose).
   */
  constructor(
    private readonly dir: string,
    private readonly grpcBalance: "roundrobin" | "first" = "roundrobin",
  ) {}

  async start(replicas: Array<{ httpPort: number; grpcPort: number }>): Promise<void> {
    this.httpPort = await reservePort();
    this.grpcPort = await reservePort();
    const cfg = path.join(this.dir, "cp-balancer.cfg");
    const servers = (port: (r: { httpPort: number; grpcPort: number }) => number, check: string) =>
      replicas.map((r, i) => `  server cp${i + 1} 127.0.0.1:${port(r)} ${check} inter 500 fall 2 rise 2 on-marked-down shutdown-sessions`).join("\n");
    writeFileSync(
      cfg,
      `global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  option redispatch
  retries 3
frontend rest
  bind 127.0.0.1:${this.httpPort}
  default_backend rest
backend rest
  option httpchk GET /readyz
  balance roundrobin
${servers((r) => r.httpPort, "check")}
frontend grpc
  bind 127.0.0.1:${this.grpcPort}
  default_backend grpc
backend grpc
  balance ${this.grpcBalance}
${servers((r) => r.grpcPort, "check")}
`,
    );
    this.proc = startProcess("haproxy", ["-db", "-f", cfg], { env: process.env, logFile: path.join(this.dir, "cp-balancer.log") });
    await waitFor("the control planes' load balancer", async () => {
      if (this.proc!.child.exitCode !== null) throw new Error("haproxy exited (cp-balancer.log)");
      return (await fetch(`http://127.0.0.1:${this.httpPort}/readyz`).catch(() => undefined))?.ok;
    }, { timeoutMs: 10_000, intervalMs: 100 });
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }
}
