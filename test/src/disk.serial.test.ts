import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { waitFor } from "./support/processes.js";

// Issue 12, must shows 4 and 5: a host's disk does not fill with what no environment needs, and a
// build that fills it fails cleanly. The agent runs on its own dockerd whose data root is a small
// loop-mounted ext4 file system made here (so that "full" is real and nothing else on the machine
// is touched): real dockerd, overlay2, HAProxy, NATS, control plane. Serial project: it mounts a
// file system and runs a second dockerd.

const MB = 1024 * 1024;
const FS_MB = 160;
const CACHE_MB = 2;

/** A busybox httpd app whose version `v` carries ~1 MB of its own bytes (so each image has a size of its own). */
function versionFiles(v: number): Record<string, string> {
  return {
    Dockerfile: ["FROM slipway/busybox:1", `RUN head -c 1000000 /dev/urandom > /www-blob-${v}`, "COPY index.html /www/index.html", "EXPOSE 8080", 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]', ""].join("\n"),
    "index.html": `v${v}`,
  };
}

/**
 * A private dockerd on a loop-mounted file system; stopped, unmounted and removed by stop(). It
 * brings its own default bridge: a dockerd started with `--bridge=none` deletes the interface named
 * docker0 at start (found the hard way: the machine's dockerd lost its bridge, and every container
 * of the other suites its network).
 */
class SmallDockerd {
  readonly dir = mkdtempSync(path.join(tmpdir(), "slipway-small-docker-"));
  /** Its default bridge (Linux interface names are at most 15 characters). */
  readonly bridge = `slwdisk${process.pid % 100000}`;
  private bridgeMade = false;
  readonly mnt = path.join(this.dir, "mnt");
  readonly sock = path.join(this.dir, "docker.sock");
  private pid?: number;
  private mounted = false;

  get host(): string {
    return `unix://${this.sock}`;
  }

  docker(...args: string[]): string {
    return execFileSync("docker", ["-H", this.host, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 }).trim();
  }

  async start(): Promise<void> {
    mkdirSync(this.mnt);
    const img = path.join(this.dir, "fs.img");
    execFileSync("truncate", ["-s", `${FS_MB}M`, img]);
    execFileSync("mkfs.ext4", ["-q", "-F", img]);
    execFileSync("mount", ["-o", "loop", img, this.mnt]);
    this.mounted = true;
    execFileSync("ip", ["link", "add", this.bridge, "type", "bridge"]);
    this.bridgeMade = true;
    execFileSync("ip", ["addr", "add", "10.214.0.1/24", "dev", this.bridge]);
    execFileSync("ip", ["link", "set", this.bridge, "up"]);
    const log = openSync(path.join(this.dir, "dockerd.log"), "a");
    const dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"].find((p) => existsSync(p)) ?? "dockerd";
    // Its own containerd (namespaces), no default bridge, no iptables: nothing shared with the machine's dockerd.
    const child = spawn(
      dockerd,
      [
        "--data-root", path.join(this.mnt, "docker"),
        "--exec-root", path.join(this.dir, "exec"),
        "--pidfile", path.join(this.dir, "docker.pid"),
        "-H", this.host,
        "--bridge", this.bridge, "--iptables=false", "--ip-masq=false", "--ip6tables=false",
        "--default-address-pool", "base=10.213.0.0/16,size=24",
        "--containerd-namespace", "slipway-disk-test",
        "--containerd-plugins-namespace", "slipway-disk-test-plugins",
      ],
      { detached: true, stdio: ["ignore", log, log] },
    );
    child.unref();
    this.pid = child.pid;
    await waitFor("the small dockerd to answer", async () => {
      try {
        return this.docker("version", "--format", "{{.Server.Version}}") !== "";
      } catch {
        return false;
      }
    }, { timeoutMs: 60_000, intervalMs: 250 });
    // The base image, from the machine's dockerd (no registry).
    execFileSync("sh", ["-c", `docker save slipway/busybox:1 | docker -H ${this.host} load -q`], { stdio: "ignore", timeout: 120_000 });
  }

  freeBytes(): number {
    return Number(execFileSync("df", ["-B1", "--output=avail", this.mnt], { encoding: "utf8", timeout: 10_000 }).trim().split("\n").pop());
  }

  async stop(): Promise<void> {
    // Its containers and networks first (each network is a bridge interface of the machine's).
    if (this.pid !== undefined) {
      try {
        const ids = this.docker("ps", "-aq").split("\n").filter(Boolean);
        if (ids.length) this.docker("rm", "-f", ...ids);
        this.docker("network", "prune", "-f");
      } catch {
        // a daemon that does not answer is stopped below all the same
      }
    }
    if (this.pid !== undefined) {
      const pid = this.pid;
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // gone already
      }
      await waitFor("the small dockerd to exit", async () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, { timeoutMs: 60_000, intervalMs: 200 }).catch(() => process.kill(pid, "SIGKILL"));
    }
    if (this.mounted) {
      const unmounted = await waitFor("the loop file system to unmount", async () => {
        try {
          execFileSync("umount", [this.mnt], { stdio: "ignore", timeout: 10_000 });
          return true;
        } catch {
          return false;
        }
      }, { timeoutMs: 30_000, intervalMs: 500 }).catch(() => false);
      // Still busy: detached now, released by the kernel once the last user is gone.
      if (!unmounted) execFileSync("umount", ["-l", this.mnt], { stdio: "ignore", timeout: 10_000 });
      this.mounted = false;
    }
    if (this.bridgeMade) {
      try {
        execFileSync("ip", ["link", "del", this.bridge], { stdio: "ignore" });
      } catch {
        // gone already
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("a host's disk", () => {
  const small = new SmallDockerd();
  const platform = new Platform();
  const repo = new TestRepo();
  let agent: AgentHandle;
  const api = () => platform.api;
  const commits: string[] = [];

  beforeAll(async () => {
    await small.start();
    await platform.start();
    agent = await platform.addAgent({
      DOCKER_HOST: small.host,
      SLIPWAY_BUILD_CACHE_MAX_MB: String(CACHE_MB),
      SLIPWAY_ROLLBACK_IMAGES: "5",
      SLIPWAY_DISK_MIN_FREE_MB: "20",
      SLIPWAY_PRUNE_INTERVAL_MINUTES: "0",
    });
    await api().call("POST", "/v1/apps", { name: "tidy", repository: repo.url });
  });
  afterAll(async () => {
    try {
      await platform.stop();
    } finally {
      await small.stop();
    }
  });

  const images = () =>
    small
      .docker("images", "--filter", "label=io.slipway.app=tidy", "--format", "{{.Tag}}")
      .split("\n")
      .filter(Boolean)
      .sort();
  /**
   * Dangling images' own bytes (the classic builder's cache), from the engine's /system/df (which
   * refuses while another df runs, e.g. the janitor's: asked again then).
   */
  const danglingBytes = () =>
    waitFor("the engine's disk usage", async () => {
      try {
        const df = JSON.parse(execFileSync("curl", ["-sf", "--max-time", "30", "--unix-socket", small.sock, "http://localhost/system/df"], { encoding: "utf8", timeout: 40_000 })) as {
          Images: Array<{ RepoTags: string[] | null; Size: number; SharedSize: number }>;
        };
        return df.Images.filter((i) => (i.RepoTags ?? []).every((t) => t === "<none>:<none>")).reduce((n, i) => n + i.Size - Math.max(0, i.SharedSize), 0);
      } catch {
        return undefined;
      }
    }, { timeoutMs: 60_000, intervalMs: 500 });

  it("after 10 deployments holds only the image in use and those rollback keeps, with the build cache under its limit", async () => {
    for (let v = 1; v <= 10; v++) {
      commits.push(repo.commit(versionFiles(v), `v${v}`));
      const d = await api().deploy("tidy", "test");
      expect(d.state, await api().log(d.id)).toBe("succeeded");
      if (v === 5) {
        // A build that fails after a 3 MB step leaves that step's layer behind (dangling), beyond the 2 MB cache limit.
        repo.commit({ Dockerfile: ["FROM slipway/busybox:1", "RUN head -c 3000000 /dev/urandom > /half-done", "RUN exit 7", ""].join("\n") }, "broken");
        const broken = await api().deploy("tidy", "test");
        expect(broken.state).toBe("failed");
        expect(await danglingBytes()).toBeGreaterThan(CACHE_MB * MB);
        // The next version restores the Dockerfile.
      }
    }
    expect((await getVia(agent.ingressPort, "tidy-test.localhost", "/")).body).toBe("v10");
    // The prune after the last deployment runs in the background: the host ends with v6–v10 (v10 in use, 4 more for rollback).
    const kept = commits.slice(5).sort();
    await waitFor("the images beyond rollback to be pruned", async () => JSON.stringify(images()) === JSON.stringify(kept), { timeoutMs: 30_000, intervalMs: 500 }).catch(() => {
      throw new Error(`images on the host: ${images().join(", ")}; expected ${kept.join(", ")}`);
    });
    expect(await danglingBytes()).toBeLessThanOrEqual(CACHE_MB * MB);
    const log = readFileSync(path.join(platform.dir, "agent-0.log"), "utf8");
    expect(log).toMatch(/"msg":"disk pruned: pruned 1 image, 0 stopped containers, 0 build layers: [\d.]+ MB freed; \d+ MB free"/);
    expect(log).toMatch(/disk pruned: pruned \d+ images?, 0 stopped containers, 1 build layer/);
    // Free space is reported with heartbeats.
    const host = await waitFor("a heartbeat with the data root's free space", async () => {
      const h = ((await api().call("GET", "/v1/hosts")) as Array<{ load: { diskFreeBytes?: number }; capacity: { diskBytes: number } }>)[0]!;
      return h.load.diskFreeBytes ? h : undefined;
    }, { timeoutMs: 15_000, intervalMs: 500 });
    expect(host.capacity.diskBytes).toBeLessThan(FS_MB * MB);
    expect(Math.abs(host.load.diskFreeBytes! - small.freeBytes())).toBeLessThan(10 * MB);
  });

  it("fails a build that fills the disk with 'no space left', keeps the previous version serving, and gives the space back", async () => {
    const freeBefore = small.freeBytes();
    const containersBefore = small.docker("ps", "-aq").split("\n").filter(Boolean).sort();
    repo.commit({ Dockerfile: ["FROM slipway/busybox:1", "RUN head -c 1000000 /dev/urandom > /first", `RUN dd if=/dev/zero of=/fill bs=1M count=${FS_MB * 2}`, ""].join("\n") }, "too big");
    const d = await api().deploy("tidy", "test");
    const log = await api().log(d.id);
    expect(d.state).toBe("failed");
    expect(d.error.type, log).toBe("no_space");
    expect(d.error.message).toMatch(/^no space left on device/);
    expect(log).toMatch(/pruned \d+ images?, 0 stopped containers, [1-9]\d* build layers?: [\d.]+ MB freed/);
    expect(log).toContain("the previous version keeps serving");
    // The previous version serves, nothing of the build is left: no container, no layer, the space is back.
    expect((await getVia(agent.ingressPort, "tidy-test.localhost", "/")).body).toBe("v10");
    expect(small.docker("ps", "-aq").split("\n").filter(Boolean).sort()).toEqual(containersBefore);
    expect(small.docker("images", "-q", "--filter", "dangling=true")).toBe("");
    expect(small.freeBytes()).toBeGreaterThan(freeBefore - 2 * MB);
    // And the host still builds: the next version deploys.
    commits.push(repo.commit(versionFiles(11), "v11"));
    const next = await api().deploy("tidy", "test");
    expect(next.state, await api().log(next.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "tidy-test.localhost", "/")).body).toBe("v11");
  });
});
