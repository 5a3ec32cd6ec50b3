import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { startProcess, waitFor, type Proc } from "./processes.js";

/**
 * Test hosts that are hosts (issue 16): each in a network namespace of its own, with its own
 * dockerd (own data root, bridge networks, iptables) and an address on a bridge of the machine,
 * like servers on one LAN. The control plane and NATS listen on the bridge's address; an agent
 * started in a namespace reaches them over the veth, its HAProxy binds the namespace's address,
 * and what one host forwards to another (a drained environment) crosses the bridge.
 *
 * Made with iproute2 (`ip netns`, veth, a bridge) and entered with util-linux's nsenter, as root;
 * the bridged traffic is accepted in the machine's FORWARD chain (Docker sets its policy to DROP
 * and bridged packets pass it when br_netfilter is loaded). The base images are copied into each
 * dockerd (`docker save | load`). stop() takes everything down again, also after a failure:
 * containers, dockerd and its cgroup parents, namespace, links, the FORWARD rule, the data
 * directories.
 */
export interface NetnsHost {
  name: string;
  /** Its address on the bridge. */
  address: string;
  /** The namespace's name (/var/run/netns/<netns>). */
  netns: string;
  /** Its dockerd's socket (DOCKER_HOST=unix://…). */
  dockerSocket: string;
  /** `docker` against this host's engine. */
  docker(args: string[]): string;
}

const BASE_IMAGES = ["slipway/busybox:1", "slipway/node:20"];

export class NetnsHosts {
  readonly id = randomBytes(2).toString("hex");
  /** 10.<octet>.0.0/24: the machine is .1, host i is .(10 + i). */
  private readonly octet = 100 + (parseInt(this.id, 16) % 150);
  readonly gateway = `10.${this.octet}.0.1`;
  readonly hosts: NetnsHost[] = [];
  private readonly bridge = `slwbr${this.id}`;
  private readonly dockerds: Proc[] = [];
  private forwardRule = false;

  /** `root`: where each host's dockerd keeps its data (on the same file system as /var/lib/docker, for overlay2). */
  constructor(private readonly root = path.join("/var/lib", `slipway-test-hosts-${randomBytes(3).toString("hex")}`)) {}

  async start(count: number): Promise<NetnsHost[]> {
    ip(["link", "add", this.bridge, "type", "bridge"]);
    ip(["addr", "add", `${this.gateway}/24`, "dev", this.bridge]);
    ip(["link", "set", this.bridge, "up"]);
    execFileSync("iptables", ["-I", "FORWARD", "-i", this.bridge, "-o", this.bridge, "-j", "ACCEPT"]);
    this.forwardRule = true;
    for (let i = 0; i < count; i++) this.hosts.push(await this.addHost(i));
    return this.hosts;
  }

  private async addHost(i: number): Promise<NetnsHost> {
    const name = `host-${i + 1}`;
    const netns = `slw-${this.id}-${i + 1}`;
    const address = `10.${this.octet}.0.${10 + i}`;
    const outside = `slw${this.id}h${i + 1}`;
    ip(["netns", "add", netns]);
    ip(["link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    ip(["link", "set", outside, "master", this.bridge, "up"]);
    ip(["-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
    ip(["-n", netns, "link", "set", "eth0", "up"]);
    ip(["-n", netns, "link", "set", "lo", "up"]);
    ip(["-n", netns, "route", "add", "default", "via", this.gateway]);

    const dir = path.join(this.root, name);
    mkdirSync(dir, { recursive: true });
    const dockerSocket = path.join(dir, "docker.sock");
    const dockerd = startProcess(
      "nsenter",
      [`--net=/var/run/netns/${netns}`, "dockerd", "--data-root", path.join(dir, "data"), "--exec-root", path.join(dir, "exec"), "--pidfile", path.join(dir, "docker.pid"), "-H", `unix://${dockerSocket}`, "--cgroup-parent", `slipway-${netns}`, "--log-level", "warn"],
      { env: process.env, logFile: path.join(this.root, `${name}-dockerd.log`) },
    );
    this.dockerds.push(dockerd);
    const docker = (args: string[]) => execFileSync("docker", ["-H", `unix://${dockerSocket}`, ...args], { encoding: "utf8", timeout: 120_000 });
    await waitFor(`${name}'s dockerd`, async () => {
      if (dockerd.child.exitCode !== null) throw new Error(`${name}'s dockerd exited: ${readFileSync(path.join(this.root, `${name}-dockerd.log`), "utf8").slice(-1500)}`);
      return spawnSync("docker", ["-H", `unix://${dockerSocket}`, "version"], { timeout: 5000 }).status === 0;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    // The base images builds start from, as the setup script makes them on a machine.
    const saved = spawnSync("sh", ["-c", `docker save ${BASE_IMAGES.join(" ")} | docker -H unix://${dockerSocket} load -q`], { encoding: "utf8", timeout: 120_000 });
    if (saved.status !== 0) throw new Error(`cannot copy the base images into ${name}'s dockerd: ${saved.stderr}`);
    return { name, address, netns, dockerSocket, docker };
  }

  /**
   * What a process is started under to run on a host: `nsenter --net` (not `ip netns exec`, which
   * mounts a sysfs of the namespace over /sys and so hides the cgroup file systems dockerd needs).
   */
  wrap(host: NetnsHost): string[] {
    return ["nsenter", `--net=/var/run/netns/${host.netns}`];
  }

  async stop(): Promise<void> {
    for (const h of this.hosts) {
      try {
        const ids = h.docker(["ps", "-aq"]).split("\n").filter(Boolean);
        if (ids.length > 0) h.docker(["rm", "-f", ...ids]);
      } catch {
        // its dockerd is gone already
      }
    }
    for (const d of this.dockerds) await d.stop("SIGTERM", 20_000).catch(() => undefined);
    // The cgroup parents each dockerd made (--cgroup-parent), empty once its containers are gone.
    for (const h of this.hosts) spawnSync("sh", ["-c", `for d in /sys/fs/cgroup/*/slipway-${h.netns} /sys/fs/cgroup/slipway-${h.netns}; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \\; ; done; true`]);
    for (const h of this.hosts) {
      spawnSync("ip", ["netns", "delete", h.netns]);
    }
    spawnSync("ip", ["link", "delete", this.bridge]);
    if (this.forwardRule) spawnSync("iptables", ["-D", "FORWARD", "-i", this.bridge, "-o", this.bridge, "-j", "ACCEPT"]);
    // dockerd unmounted its layers when it stopped; what is left are plain files.
    for (const h of this.hosts) {
      const exec = path.join(this.root, h.name, "exec");
      if (existsSync(exec)) spawnSync("sh", ["-c", `grep -o " ${this.root}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}
