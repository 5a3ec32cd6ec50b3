import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A real multi-user S3 server for tests: a single-node Ceph cluster (one
 * monitor, one OSD on memstore, one Object Gateway) in a directory of its own,
 * on ports of its own, so several can run side by side. Debian's Ceph 16
 * (`ceph-mon`, `ceph-osd`, `radosgw`, `ceph-common`, installed by
 * scripts/setup). Everything lives in RAM: a stopped gateway is gone. The
 * platform user it creates has the `admin` flag (every bucket) and the
 * `users=*;buckets=*` caps of the Admin Ops API, as an operator would give the
 * control plane (docs/DECISIONS.md).
 */
export interface RadosGw {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  /** The platform user's keys. */
  admin: { accessKeyId: string; secretAccessKey: string };
  dir: string;
  /** Seconds from nothing to the gateway answering, and the daemons' resident memory then. */
  startSeconds: number;
  rssBytes(): number;
  /** Runs `radosgw-admin` against this cluster; answers its stdout. */
  radosgwAdmin(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${String(stderr || err.message).trim().slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs: number, children: ChildProcess[], logDir: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = children.find((c) => c.exitCode !== null);
    if (dead) throw new Error(`${dead.spawnargs[0]} exited (${dead.exitCode}) while waiting for ${what}; logs in ${logDir}`);
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms; logs in ${logDir}`);
}

/**
 * Starts the cluster; `bind`: where the gateway listens (0.0.0.0 lets containers reach it through
 * the host gateway); `objectstore`: memstore (RAM, the default for tests) or bluestore on a sparse
 * file in the directory (what a persistent set-up would use; the storage benchmark compares them).
 */
export async function startRadosGw(opts: { bind?: string; objectstore?: "memstore" | "bluestore" } = {}): Promise<RadosGw> {
  const started = performance.now();
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-rgw-"));
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of [...children].reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      const t = setTimeout(() => c.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const d of ["run", "log", "mon/ceph-a", "osd/ceph-0"]) mkdirSync(path.join(dir, d), { recursive: true });
    const monPort = await freePort();
    const port = await freePort();
    const fsid = randomUUID();
    const conf = path.join(dir, "ceph.conf");
    writeFileSync(
      conf,
      [
        "[global]",
        `fsid = ${fsid}`,
        `mon host = v2:127.0.0.1:${monPort}`,
        "mon initial members = a",
        "ms bind msgr1 = false",
        "public addr = 127.0.0.1",
        "osd pool default size = 1",
        "osd pool default min size = 1",
        "mon allow pool size one = true",
        "osd crush chooseleaf type = 0",
        "osd pool default pg num = 8",
        "osd pool default pgp num = 8",
        "osd pool default pg autoscale mode = off",
        "mon max pg per osd = 1000",
        "mon warn on pool no redundancy = false",
        // The default (1 s) makes start-up take 13–16 s instead of ~2 (pool creation).
        "paxos propose interval = 0.1",
        `run dir = ${dir}/run`,
        `admin socket = ${dir}/run/$name.asok`,
        `log file = ${dir}/log/$name.log`,
        `keyring = ${dir}/$name.keyring`,
        `mon data = ${dir}/mon/$cluster-$id`,
        `osd data = ${dir}/osd/$cluster-$id`,
        ...(opts.objectstore === "bluestore"
          ? ["osd objectstore = bluestore", "bluestore block create = true", "bluestore block size = 10737418240"]
          : ["osd objectstore = memstore", "memstore device bytes = 2147483648"]),
        "[mon]",
        "keyring = $mon_data/keyring",
        "[client.rgw.gw]",
        `rgw frontends = beast endpoint=${opts.bind ?? "127.0.0.1"}:${port}`,
        "rgw thread pool size = 32",
        "",
      ].join("\n"),
    );
    const c = ["-c", conf];
    await run("ceph-authtool", ["--create-keyring", path.join(dir, "mon.keyring"), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]);
    await run("ceph-authtool", ["--create-keyring", path.join(dir, "client.admin.keyring"), "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *"]);
    await run("ceph-authtool", [path.join(dir, "mon.keyring"), "--import-keyring", path.join(dir, "client.admin.keyring")]);
    await run("monmaptool", ["--create", "--addv", "a", `[v2:127.0.0.1:${monPort}]`, "--fsid", fsid, path.join(dir, "monmap")]);
    await run("ceph-mon", [...c, "--mkfs", "-i", "a", "--monmap", path.join(dir, "monmap"), "--keyring", path.join(dir, "mon.keyring")]);
    const daemon = (cmd: string, args: string[]) => {
      // -f: in the foreground, as our child (stopped by its PID, never left behind).
      const child = spawn(cmd, [...c, "-f", ...args], { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr?.resume();
      children.push(child);
      return child;
    };
    daemon("ceph-mon", ["-i", "a"]);
    const osdUuid = randomUUID();
    const ceph = (args: string[]) => run("ceph", [...c, "--connect-timeout", "10", ...args]);
    await until("the monitor", async () => (await ceph(["mon", "stat"]), true), 20_000, children, dir);
    const osdId = (await ceph(["osd", "new", osdUuid])).trim();
    const osdKeyring = path.join(dir, `osd.${osdId}.keyring`);
    await run("ceph-authtool", ["--create-keyring", osdKeyring, "--gen-key", "-n", `osd.${osdId}`]);
    await ceph(["auth", "add", `osd.${osdId}`, "osd", "allow *", "mon", "allow profile osd", "-i", osdKeyring]);
    mkdirSync(path.join(dir, "osd", `ceph-${osdId}`), { recursive: true });
    await run("ceph-osd", [...c, "-i", osdId, "--mkfs", "--osd-uuid", osdUuid]);
    daemon("ceph-osd", ["-i", osdId]);
    await ceph(["auth", "get-or-create", "client.rgw.gw", "mon", "allow rw", "osd", "allow rwx", "-o", path.join(dir, "client.rgw.gw.keyring")]);
    daemon("radosgw", ["-n", "client.rgw.gw"]);
    const endpoint = `http://127.0.0.1:${port}`;
    await until("the gateway to answer", async () => (await fetch(endpoint)).status < 500, 60_000, children, dir);
    const startSeconds = (performance.now() - started) / 1000;
    const adminCli = (args: string[]) => run("radosgw-admin", [...c, ...args]);
    const admin = { accessKeyId: `SLWPLATFORM${randomBytes(5).toString("hex").toUpperCase()}`, secretAccessKey: randomBytes(30).toString("base64url") };
    await adminCli(["user", "create", "--uid=slipway-platform", "--display-name=Slipway platform", "--admin", `--access-key=${admin.accessKeyId}`, `--secret=${admin.secretAccessKey}`]);
    await adminCli(["caps", "add", "--uid=slipway-platform", "--caps=users=*;buckets=*"]);
    const pids = children.map((ch) => ch.pid!);
    return {
      endpoint,
      port,
      admin,
      dir,
      startSeconds,
      rssBytes: () =>
        pids.reduce((sum, pid) => {
          try {
            const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
            return sum + (m ? Number(m[1]) * 1024 : 0);
          } catch {
            return sum;
          }
        }, 0),
      radosgwAdmin: adminCli,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
