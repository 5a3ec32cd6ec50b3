import { execFile, spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import * as acme from "acme-client";

/**
 * A real ACME server for tests: Debian's pebble with pebble-challtestsrv as its DNS (every name
 * resolves to 127.0.0.1, never ::1), on free ports, in a temporary directory of its own. Pebble
 * validates HTTP-01 at `http://<name>:<httpPort>/`, so `httpPort` is the port the test's
 * challenge responder (standing in for the ingress) listens on.
 *
 * While it runs, acme-client's shared axios instance trusts pebble's listener CA and retries
 * quickly (its defaults wait 5–25 s between retries); `stop()` puts both back. Pebble's issuing
 * root changes at every start: `rootPem` is fetched from its management API.
 */
export interface Pebble {
  directoryUrl: string;
  /** PEM of the CA that signed pebble's own HTTPS listener (not the issuing root). */
  listenerCaPem: string;
  /** PEM of the root pebble issues under (this run's). */
  rootPem: string;
  /** pebble-challtestsrv's management API (http): POST /set-txt {host, value} publishes a DNS-01 record pebble sees. */
  challengeServerUrl: string;
  dir: string;
  /** Stops pebble and its DNS (the CA goes down) but keeps acme-client's settings, as a CA outage would. */
  kill(): Promise<void>;
  /** Stops everything by PID, restores acme-client's settings and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket("udp4");
    sock.once("error", reject);
    sock.bind(0, "127.0.0.1", () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(" ")} failed: ${String(stderr || err.message).trim()}`)) : resolve(stdout)));
  });
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, timeout: 5000 }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

/** A CA and a localhost/127.0.0.1 leaf for pebble's HTTPS listener (the package ships none). */
async function makeListenerCertificate(dir: string): Promise<{ caPem: string; cert: string; key: string }> {
  await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=slipway test pebble listener CA"], dir);
  await run("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "localhost.key", "-out", "localhost.csr", "-subj", "/CN=localhost"], dir);
  writeFileSync(path.join(dir, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  await run("openssl", ["x509", "-req", "-in", "localhost.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "localhost.pem", "-days", "2", "-extfile", "san.ext"], dir);
  return { caPem: readFileSync(path.join(dir, "ca.pem"), "utf8"), cert: path.join(dir, "localhost.pem"), key: path.join(dir, "localhost.key") };
}

export async function startPebble(opts: { httpPort: number; certificateValiditySeconds?: number; startTimeoutMs?: number }): Promise<Pebble> {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-pebble-"));
  const children: ChildProcess[] = [];
  const axiosDefaults = acme.axios.defaults as unknown as { httpsAgent?: unknown; acmeSettings: { retryDefaultDelay: number; retryMaxAttempts: number } };
  const saved = { httpsAgent: axiosDefaults.httpsAgent, retry: { ...axiosDefaults.acmeSettings } };
  const kill = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
            setTimeout(() => {
              if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
            }, 3000).unref();
          }),
      ),
    );
  };
  const stop = async (): Promise<void> => {
    axiosDefaults.httpsAgent = saved.httpsAgent;
    Object.assign(axiosDefaults.acmeSettings, saved.retry);
    await kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const listener = await makeListenerCertificate(dir);
    const [acmePort, mgmtPort, dnsPort, challMgmtPort] = [await freeTcpPort(), await freeTcpPort(), await freeUdpPort(), await freeTcpPort()];
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: listener.cert,
        privateKey: listener.key,
        httpPort: opts.httpPort,
        tlsPort: await freeTcpPort(),
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        ...(opts.certificateValiditySeconds ? { certificateValidityPeriod: opts.certificateValiditySeconds } : {}),
      },
    };
    writeFileSync(path.join(dir, "pebble.json"), JSON.stringify(config, null, 2));
    const spawnLogged = (cmd: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess => {
      const out = openSync(path.join(dir, `${path.basename(cmd)}.log`), "a");
      const child = spawn(cmd, args, { cwd: dir, env, stdio: ["ignore", out, out] });
      closeSync(out);
      children.push(child);
      return child;
    };
    spawnLogged("/usr/bin/pebble-challtestsrv", ["-dns01", `127.0.0.1:${dnsPort}`, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", `127.0.0.1:${challMgmtPort}`, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], { PATH: process.env.PATH });
    spawnLogged("/usr/bin/pebble", ["-config", path.join(dir, "pebble.json"), "-dnsserver", `127.0.0.1:${dnsPort}`], { PATH: process.env.PATH, PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" });
    const directoryUrl = `https://localhost:${acmePort}/dir`;
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
    for (;;) {
      const dead = children.find((c) => c.exitCode !== null);
      if (dead) throw new Error(`${String(dead.spawnargs[0])} exited (${dead.exitCode}); logs in ${dir}`);
      const ready = await get(directoryUrl, listener.caPem).then((r) => r.status === 200, () => false);
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`pebble did not answer at ${directoryUrl}; logs in ${dir}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const root = await get(`https://localhost:${mgmtPort}/roots/0`, listener.caPem);
    if (root.status !== 200 || !root.body.includes("BEGIN CERTIFICATE")) throw new Error(`pebble's root: ${root.status} ${root.body.slice(0, 200)}`);
    axiosDefaults.httpsAgent = new https.Agent({ ca: listener.caPem, keepAlive: false });
    axiosDefaults.acmeSettings.retryDefaultDelay = 0.05;
    return { directoryUrl, listenerCaPem: listener.caPem, rootPem: root.body, challengeServerUrl: `http://127.0.0.1:${challMgmtPort}`, dir, kill, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
