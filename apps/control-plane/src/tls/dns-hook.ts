import { execFile } from "node:child_process";

/**
 * Publishes and withdraws the TXT record of an ACME DNS-01 challenge (issue 15: a wildcard
 * certificate for the default domain). DNS providers differ, so the operator gives a command
 * (SLIPWAY_ACME_DNS_HOOK), as lego's "exec" provider, acme.sh's and certbot's hooks do.
 */
export interface DnsChallengeHook {
  /** Makes `record` (e.g. `_acme-challenge.apps.example.com`) answer the TXT `value`. */
  present(record: string, value: string): Promise<void>;
  /** Withdraws it again (after the order, whatever its outcome). */
  cleanup(record: string, value: string): Promise<void>;
}

/**
 * Runs `<command> present|cleanup <record> <value>` (also in SLIPWAY_DNS_ACTION, SLIPWAY_DNS_RECORD,
 * SLIPWAY_DNS_VALUE); exit 0 = done. A non-zero exit, a signal or more than `timeoutMs` fails the
 * order with the command's last lines of output. The command gets no secret of the platform's:
 * the record's value is public by design.
 */
export class ExecDnsHook implements DnsChallengeHook {
  constructor(
    readonly command: string,
    private readonly timeoutMs = 120_000,
  ) {}

  present(record: string, value: string): Promise<void> {
    return this.run("present", record, value);
  }

  cleanup(record: string, value: string): Promise<void> {
    return this.run("cleanup", record, value);
  }

  private run(action: "present" | "cleanup", record: string, value: string): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(
        this.command,
        [action, record, value],
        { timeout: this.timeoutMs, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SLIPWAY_DNS_ACTION: action, SLIPWAY_DNS_RECORD: record, SLIPWAY_DNS_VALUE: value }, maxBuffer: 1024 * 1024 },
        (err, stdout, stderr) => {
          if (!err) return resolve();
          const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; code?: number | string };
          const tail = `${stderr}${stdout}`.trim().split("\n").slice(-3).join(" | ").slice(0, 300);
          const why = e.code === "ENOENT" ? "not found" : e.code === "EACCES" ? "not executable" : e.killed ? `no answer within ${this.timeoutMs / 1000} s` : e.signal ? `killed by ${e.signal}` : `exit code ${String(e.code)}`;
          reject(new Error(`the DNS hook '${this.command} ${action} ${record}' failed (${why})${tail ? `: ${tail}` : ""}`));
        },
      );
    });
  }
}
