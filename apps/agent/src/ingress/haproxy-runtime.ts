/**
 * A small client for HAProxy's runtime API (the admin stats socket) and its
 * master CLI, over unix sockets. One command per connection: HAProxy answers
 * and closes, so there is no framing to get wrong and no shared state.
 */
import net from "node:net";

/** A runtime API call that could not be made or that HAProxy refused. */
export class HaproxyRuntimeError extends Error {
  constructor(
    message: string,
    readonly socketPath: string,
    readonly command: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HaproxyRuntimeError";
  }
}

/**
 * Sends one command and resolves with the full answer once HAProxy closes the
 * connection. Rejects with HaproxyRuntimeError when the socket does not
 * answer, closes with an error, or takes longer than timeoutMs (default 5 s).
 * With allowReset, a connection reset after the command was written counts
 * as the (empty) answer: the master resets the CLI while it re-executes.
 */
export function runtimeCommand(socketPath: string, command: string, opts: { timeoutMs?: number; allowReset?: boolean; payload?: string } = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (/[\r\n]/.test(command)) return Promise.reject(new HaproxyRuntimeError("a runtime command must be a single line", socketPath, command));
  let text = command + "\n";
  if (opts.payload !== undefined) {
    const problem = payloadProblem(opts.payload);
    if (problem) return Promise.reject(new HaproxyRuntimeError(`payload of '${command}' ${problem}`, socketPath, command));
    text = `${command} <<\n${opts.payload.replace(/\n+$/, "")}\n\n`;
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let written = false;
    let settled = false;
    const sock = net.createConnection({ path: socketPath });
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const timer = setTimeout(() => {
      finish(new HaproxyRuntimeError(`HAProxy socket ${socketPath} did not answer '${command}' within ${timeoutMs} ms`, socketPath, command));
    }, timeoutMs);
    sock.on("connect", () => {
      // end(), not write(): the master CLI answers only once the client has finished sending.
      sock.end(text, () => {
        written = true;
      });
    });
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("end", () => finish());
    sock.on("close", () => finish());
    sock.on("error", (err: NodeJS.ErrnoException) => {
      if (opts.allowReset && written && (err.code === "ECONNRESET" || err.code === "EPIPE")) return finish();
      const what = err.code === "ENOENT" || err.code === "ECONNREFUSED" ? "is not answering" : "failed";
      finish(new HaproxyRuntimeError(`HAProxy socket ${socketPath} ${what} (${err.code ?? err.message}) for '${command}'`, socketPath, command, { cause: err }));
    });
  });
}

/**
 * Why a payload cannot follow `<command> <<`, or undefined: HAProxy ends the payload at the first
 * empty line (the rest would run as commands), so a PEM with an empty line inside is cut short.
 */
export function payloadProblem(payload: string): string | undefined {
  const body = payload.replace(/\n+$/, "");
  if (body.trim() === "") return "is empty";
  if (/\r/.test(body)) return "contains a carriage return";
  if (/\n[ \t]*\n/.test(body) || /^[ \t]*\n/.test(body)) return "contains an empty line (HAProxy would end the payload there)";
  return undefined;
}

/** One row of `show stat`, keyed by the CSV header (pxname, svname, scur, stot, req_tot, lastsess, …). */
export type StatRow = Record<string, string>;

/** One row of `show servers state`. */
export interface ServerState {
  backend: string;
  server: string;
  addr: string;
  port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** srv_admin_state bit field (see isMaint/isDrain). */
  adminState: number;
}

const ADMF_MAINT = 0x01 | 0x02 | 0x20; // forced, inherited, resolution maintenance
const ADMF_DRAIN = 0x08 | 0x10; // forced or inherited drain

/** True when the server gets no traffic because it is in maintenance (config `disabled` alone is cleared by `state ready`). */
export function isMaint(s: ServerState): boolean {
  return (s.adminState & ADMF_MAINT) !== 0;
}
export function isDrain(s: ServerState): boolean {
  return !isMaint(s) && (s.adminState & ADMF_DRAIN) !== 0;
}
/** Ready: takes new requests. */
export function isReady(s: ServerState): boolean {
  return !isMaint(s) && !isDrain(s) && s.opState === 2;
}

/** Parses `show stat` CSV (first line `# pxname,svname,…`). */
export function parseShowStat(text: string): StatRow[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const head = lines.shift();
  if (!head?.startsWith("# ")) throw new Error(`unexpected 'show stat' output: ${text.slice(0, 200)}`);
  const cols = head.slice(2).split(",");
  return lines.map((line) => {
    const values = line.split(",");
    const row: StatRow = {};
    cols.forEach((c, i) => {
      if (c) row[c] = values[i] ?? "";
    });
    return row;
  });
}

/** A backend's HTTP counters in one worker: requests received and responses by status class (1xx…5xx). */
export interface BackendCounters {
  requests: number;
  status: [number, number, number, number, number];
}

/** The BACKEND rows of `show stat` as counters by backend name. */
export function backendCounters(rows: StatRow[]): Map<string, BackendCounters> {
  const out = new Map<string, BackendCounters>();
  const n = (v: string | undefined) => (v ? Number(v) || 0 : 0);
  for (const r of rows) {
    if (r["svname"] !== "BACKEND" || !r["pxname"]) continue;
    out.set(r["pxname"], { requests: n(r["req_tot"]), status: [n(r["hrsp_1xx"]), n(r["hrsp_2xx"]), n(r["hrsp_3xx"]), n(r["hrsp_4xx"]), n(r["hrsp_5xx"])] });
  }
  return out;
}

/** Parses `show servers state` (version line, `# be_id be_name …` header, one row per server). */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const headIdx = lines.findIndex((l) => l.startsWith("# "));
  if (headIdx < 0) throw new Error(`unexpected 'show servers state' output: ${text.slice(0, 200)}`);
  const cols = lines[headIdx]!.slice(2).split(/\s+/);
  const col = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new Error(`'show servers state' has no column ${name}`);
    return i;
  };
  const [be, srv, addr, port, op, admin] = ["be_name", "srv_name", "srv_addr", "srv_port", "srv_op_state", "srv_admin_state"].map(col) as [number, number, number, number, number, number];
  return lines.slice(headIdx + 1).map((line) => {
    const v = line.trim().split(/\s+/);
    return { backend: v[be]!, server: v[srv]!, addr: v[addr]!, port: Number(v[port]), opState: Number(v[op]), adminState: Number(v[admin]) };
  });
}

/** A `show servers state` dump without the rows of one server name, in every backend (comments and the version line kept). */
export function withoutServerRows(dump: string, server: string): string {
  const lines = dump.split("\n");
  const head = lines.find((l) => l.startsWith("# be_id"));
  const col = head ? head.slice(2).split(/\s+/).indexOf("srv_name") : -1;
  if (col < 0) return dump;
  return lines.filter((l) => l.startsWith("#") || l.trim().split(/\s+/)[col] !== server).join("\n");
}

/** Parses `show info` (`Key: value` lines). */
export function parseShowInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return info;
}

/** Processes listed by the master CLI's `show proc`. */
export interface ProcList {
  master: number | null;
  /**
   * Reloads the master has acted on since it started (failed ones included);
   * its re-execution into wait mode after a start or reload does not count.
   * null when the line has no counter.
   */
  reloads: number | null;
  /** Failed reloads since the last successful one (HAProxy's `[failed: N]`). */
  failedReloads: number | null;
  workers: number[];
  /** Workers of previous configurations still finishing their connections. */
  oldWorkers: number[];
}

export function parseShowProc(text: string): ProcList {
  const out: ProcList = { master: null, reloads: null, failedReloads: null, workers: [], oldWorkers: [] };
  let section: "master" | "workers" | "old" | "other" = "master";
  for (const line of text.split("\n")) {
    if (line.startsWith("# workers")) section = "workers";
    else if (line.startsWith("# old workers")) section = "old";
    else if (line.startsWith("#")) section = line.startsWith("#<PID>") ? "master" : "other";
    else {
      const m = /^(\d+)\s+(\S+)/.exec(line);
      if (!m) continue;
      const pid = Number(m[1]);
      if (section === "master" && m[2] === "master") {
        out.master = pid;
        // `<pid> master <reloads> [failed: <n>] <uptime> <version>`
        const counters = /^\d+\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/.exec(line);
        if (counters) {
          out.reloads = Number(counters[1]);
          out.failedReloads = counters[2] === undefined ? null : Number(counters[2]);
        }
      }
      else if (section === "workers") out.workers.push(pid);
      else if (section === "old") out.oldWorkers.push(pid);
    }
  }
  return out;
}

/** Typed helpers over one ingress's admin socket and master socket. */
export class HaproxyRuntime {
  constructor(
    readonly adminSocket: string,
    readonly masterSocket: string,
    private readonly timeoutMs = 5000,
  ) {}

  /** Raw command on the admin socket. */
  command(cmd: string): Promise<string> {
    return runtimeCommand(this.adminSocket, cmd, { timeoutMs: this.timeoutMs });
  }

  /**
   * A command with a payload (`<command> <<`, the payload, an empty line), e.g. `set ssl cert`.
   * The payload may not contain an empty line. The payload is never part of an error message.
   */
  commandWithPayload(cmd: string, payload: string): Promise<string> {
    return runtimeCommand(this.adminSocket, cmd, { timeoutMs: this.timeoutMs, payload });
  }

  /** Raw command on the master CLI. */
  master(cmd: string): Promise<string> {
    return runtimeCommand(this.masterSocket, cmd, { timeoutMs: this.timeoutMs });
  }

  /** Runs a state-changing command that answers nothing on success; any answer is HAProxy's refusal. */
  async expectOk(cmd: string): Promise<void> {
    const out = (await this.command(cmd)).trim();
    if (out !== "") throw new HaproxyRuntimeError(`HAProxy refused '${cmd}': ${out}`, this.adminSocket, cmd);
  }

  async showInfo(): Promise<Record<string, string>> {
    return parseShowInfo(await this.command("show info"));
  }

  /** The pid of the worker answering on the admin socket. */
  async workerPid(): Promise<number> {
    const pid = Number((await this.showInfo())["Pid"]);
    if (!Number.isInteger(pid) || pid <= 0) throw new HaproxyRuntimeError("'show info' has no Pid", this.adminSocket, "show info");
    return pid;
  }

  /** `show stat` rows, for one proxy when given. */
  async showStat(proxy?: string): Promise<StatRow[]> {
    const cmd = proxy ? `show stat ${proxy} -1 -1` : "show stat";
    const out = await this.command(cmd);
    if (!out.startsWith("# ")) throw new HaproxyRuntimeError(`unexpected answer to '${cmd}': ${out.trim().slice(0, 200)}`, this.adminSocket, cmd);
    return parseShowStat(out);
  }

  /** The raw `show servers state` text, in the format `server-state-file` loads. */
  async dumpServersState(): Promise<string> {
    const out = await this.command("show servers state");
    if (!out.includes("# be_id")) throw new HaproxyRuntimeError(`unexpected answer to 'show servers state': ${out.trim().slice(0, 200)}`, this.adminSocket, "show servers state");
    return out;
  }

  async serversState(backend?: string): Promise<ServerState[]> {
    const cmd = backend ? `show servers state ${backend}` : "show servers state";
    const out = await this.command(cmd);
    if (!out.includes("# be_id")) throw new HaproxyRuntimeError(`HAProxy refused '${cmd}': ${out.trim()}`, this.adminSocket, cmd);
    return parseServersState(out);
  }

  async setServerAddr(backend: string, server: string, host: string, port: number): Promise<void> {
    const cmd = `set server ${backend}/${server} addr ${host} port ${port}`;
    const out = await this.command(cmd);
    if (!/changed from|no need to change/i.test(out)) throw new HaproxyRuntimeError(`HAProxy refused '${cmd}': ${out.trim()}`, this.adminSocket, cmd);
  }

  async setServerState(backend: string, server: string, state: "ready" | "drain" | "maint"): Promise<void> {
    await this.expectOk(`set server ${backend}/${server} state ${state}`);
  }

  /** The entries of a map file as loaded in the running worker. */
  async showMap(file: string): Promise<Record<string, string>> {
    const cmd = `show map ${file}`;
    const out = await this.command(cmd);
    const entries: Record<string, string> = {};
    for (const line of out.split("\n")) {
      const m = /^0x[0-9a-f]+\s+(\S+)\s+(\S+)\s*$/i.exec(line);
      if (m) entries[m[1]!] = m[2]!;
      else if (line.trim() !== "") throw new HaproxyRuntimeError(`HAProxy refused '${cmd}': ${line.trim()}`, this.adminSocket, cmd);
    }
    return entries;
  }

  async addMap(file: string, key: string, value: string): Promise<void> {
    await this.expectOk(`add map ${file} ${key} ${value}`);
  }

  async setMap(file: string, key: string, value: string): Promise<void> {
    await this.expectOk(`set map ${file} ${key} ${value}`);
  }

  /** Removes a key; a key that is already gone is fine. */
  async delMap(file: string, key: string): Promise<void> {
    const cmd = `del map ${file} ${key}`;
    const out = (await this.command(cmd)).trim();
    if (out !== "" && !/key not found/i.test(out)) throw new HaproxyRuntimeError(`HAProxy refused '${cmd}': ${out}`, this.adminSocket, cmd);
  }

  async showProc(): Promise<ProcList> {
    return parseShowProc(await this.master("show proc"));
  }

  /**
   * `show info` of one worker, old ones included, through the master CLI
   * (`@!<pid>`): `Stopping` is 1 once it no longer listens, `CurrConns` counts
   * its client connections (idle keep-alive ones too, not this query).
   * Undefined when the master has no such worker (it has exited).
   */
  async workerInfo(pid: number): Promise<Record<string, string> | undefined> {
    const cmd = `@!${pid} show info`;
    const out = await this.master(cmd);
    if (/can't find the target/i.test(out)) return undefined;
    const info = parseShowInfo(out);
    if (info["Pid"] !== String(pid)) throw new HaproxyRuntimeError(`unexpected answer to '${cmd}': ${out.trim().slice(0, 200)}`, this.masterSocket, cmd);
    return info;
  }

  /**
   * The current worker's pid and the HTTP counters of its backends, read in one connection to
   * the admin socket (`show info;show stat -1 2 -1`), so both come from the same worker even
   * when a reload happens meanwhile; the master is not involved.
   */
  async currentWorkerCounters(): Promise<{ pid: number; counters: Map<string, BackendCounters> }> {
    const cmd = "show info;show stat -1 2 -1";
    const out = await this.command(cmd);
    const split = out.indexOf("\n# pxname");
    const pid = Number(parseShowInfo(split < 0 ? out : out.slice(0, split))["Pid"]);
    if (split < 0 || !Number.isInteger(pid) || pid <= 0) throw new HaproxyRuntimeError(`unexpected answer to '${cmd}': ${out.trim().slice(0, 200)}`, this.adminSocket, cmd);
    return { pid, counters: backendCounters(parseShowStat(out.slice(split + 1))) };
  }

  /**
   * The HTTP counters of every backend of one worker, old ones included (`@!<pid> show stat
   * -1 2 -1`: backends only). Undefined when the master has no such worker (it has exited).
   */
  async workerBackendCounters(pid: number): Promise<Map<string, BackendCounters> | undefined> {
    const cmd = `@!${pid} show stat -1 2 -1`;
    const out = await this.master(cmd);
    if (/can't find the target/i.test(out)) return undefined;
    if (!out.startsWith("# ")) throw new HaproxyRuntimeError(`unexpected answer to '${cmd}': ${out.trim().slice(0, 200)}`, this.masterSocket, cmd);
    return backendCounters(parseShowStat(out));
  }

  /**
   * Sends `reload` to the master. It answers nothing and closes or resets the
   * connection as it re-executes; a master that is itself re-executing loses
   * the command the same way, so the caller confirms it (show proc's counter).
   */
  async reload(): Promise<void> {
    await runtimeCommand(this.masterSocket, "reload", { timeoutMs: this.timeoutMs, allowReset: true });
  }
}
