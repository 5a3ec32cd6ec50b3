import { spawn, type ChildProcess } from "node:child_process";
import type { PgConnection } from "@slipway/core";

// Shared with the control plane and the CLI: one way to turn a URL into arguments and environment.
export { pgConnection, type PgConnection } from "@slipway/core";

export class PgToolError extends Error {
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly exitSignal: string | null,
    readonly stderr: string,
  ) {
    const how = exitSignal ? `was killed by ${exitSignal}` : `failed (exit code ${exitCode})`;
    const text = stderr.trim().split("\n").slice(-6).join("\n");
    super(`${tool} ${how}${text ? `: ${text}` : ""}`);
    this.name = "PgToolError";
  }
}

const STDERR_KEEP = 16 * 1024;

/** One pg_dump/pg_restore child: stderr kept (its tail) for the error message, exit awaited once. */
export class PgChild {
  readonly proc: ChildProcess;
  private stderr = "";
  private result?: { code: number | null; signal: string | null };
  readonly exited: Promise<void>;

  constructor(
    readonly tool: "pg_dump" | "pg_restore",
    args: string[],
    conn: PgConnection,
    stdio: { stdin: "pipe" | "ignore"; stdout: "pipe" | "ignore" },
  ) {
    this.proc = spawn(tool, args, {
      env: { ...process.env, ...conn.env },
      stdio: [stdio.stdin, stdio.stdout, "pipe"],
    });
    this.proc.stderr!.setEncoding("utf8");
    this.proc.stderr!.on("data", (s: string) => {
      this.stderr = (this.stderr + s).slice(-STDERR_KEEP);
    });
    // A child that exits early closes its stdin; the write error is reported through the exit code instead.
    this.proc.stdin?.on("error", () => undefined);
    this.exited = new Promise((resolve) => {
      this.proc.once("error", (err) => {
        this.stderr += `\n${err.message}`;
        this.finish(-1, null);
        resolve();
      });
      this.proc.once("close", (code, signal) => {
        this.finish(code, signal);
        resolve();
      });
    });
  }

  private finish(code: number | null, signal: string | null): void {
    if (this.result) return;
    this.result = { code, signal };
  }

  get failed(): PgToolError | undefined {
    const r = this.result;
    if (!r || (r.code === 0 && !r.signal)) return undefined;
    return new PgToolError(this.tool, r.code, r.signal, this.stderr);
  }

  /** Resolves when the tool exited 0; rejects with its stderr otherwise. */
  async wait(): Promise<void> {
    await this.exited;
    const f = this.failed;
    if (f) throw f;
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGTERM");
  }
}

const DUMP_LOST_ITS_READER = /broken pipe|could not write to output file/i;
const RESTORE_LOST_ITS_INPUT = /input file is too short|could not read from input file|unexpected end of file|did not find magic string/i;

/**
 * Of pg_dump piped into pg_restore, the failure that caused the other: when one
 * dies the other sees a broken pipe or a truncated archive. Which exit Node
 * notices first is a race, so the cause is told from what each one printed.
 */
export function rootFailure(dump: PgChild, restore: PgChild): PgToolError | undefined {
  const d = dump.failed;
  const r = restore.failed;
  if (!d || !r) return d ?? r;
  return DUMP_LOST_ITS_READER.test(d.stderr) && !RESTORE_LOST_ITS_INPUT.test(r.stderr) ? r : d;
}

export const RESTORE_FLAGS = [
  "--clean",
  "--if-exists",
  "--no-owner",
  "--no-privileges",
  // One transaction: a restore that fails leaves the target exactly as it was
  // instead of half-dropped. Tried against PostgreSQL 15 with --clean
  // --if-exists into empty and populated databases, as superuser and as the
  // database's non-superuser owner: no conflict. The cost is one lock per
  // restored object held until COMMIT (max_locks_per_transaction × connections
  // bounds it; thousands of tables may need it raised).
  "--single-transaction",
  "--exit-on-error",
];
