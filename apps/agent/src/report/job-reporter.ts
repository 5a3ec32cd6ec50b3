import type { BackupFacts, JobEvent } from "@slipway/proto";
import { toFailure, type Logger, type StepName, type StepState } from "@slipway/core";
import type { ControlPlaneClient } from "./control-plane.client.js";

/**
 * Reports one job's events: numbered from the job's last stored seq, buffered
 * and sent in batches on a timer, retried with backoff until stored. A retry
 * never duplicates a line (the control plane ignores seqs it has). `flush()`
 * resolves once everything so far is stored.
 */
export class JobReporter {
  private seq: number;
  private buffer: JobEvent[] = [];
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private closed = false;
  cancelRequested = false;
  /** Called once when the control plane answers that this job's cancellation was requested. */
  onCancelRequested?: () => void;

  constructor(
    private readonly client: ControlPlaneClient,
    private readonly jobId: string,
    lastSeq: number,
    private readonly log: Logger,
    private readonly intervalMs = 200,
  ) {
    this.seq = lastSeq;
  }

  private push(event: JobEvent["event"]): void {
    this.buffer.push({ jobId: this.jobId, seq: ++this.seq, at: new Date(), event });
    if (!this.timer && !this.closed) this.timer = setTimeout(() => void this.flush().catch(() => undefined), this.intervalMs);
  }

  logLine(text: string): void {
    // Very long lines are cut so one build line cannot blow up a batch.
    this.push({ $case: "log", value: { text: text.length > 8000 ? text.slice(0, 8000) + "…" : text } });
  }
  heading(title: string): void {
    this.logLine(`===== ${title} =====`);
  }
  /** A deployment's steps are StepNames; environment jobs name theirs after the action (stop, start, routes, remove). */
  step(name: StepName | string, state: StepState): void {
    this.push({ $case: "step", value: { name, state } });
  }
  /** Cumulative progress of data work (bytes, objects) in a phase. */
  progress(p: { phase: string; bytes: number; objects: number }): void {
    this.push({ $case: "progress", value: p });
  }
  /** What a backup produced. */
  backup(f: BackupFacts): void {
    this.push({ $case: "backup", value: f });
  }
  facts(commit: string, image: string, imageDigest = ""): void {
    this.push({ $case: "facts", value: { commit, image, imageDigest } });
  }
  /**
   * The job's outcome. It is sent at once, not with the next batch; the
   * promise resolves when it is stored, or when sending failed (it is then
   * sent again by the next flush): it never rejects.
   */
  result(state: "succeeded" | "failed" | "cancelled", info: { commit?: string; image?: string; imageDigest?: string; error?: unknown }): Promise<void> {
    const f = info.error !== undefined ? toFailure(info.error) : undefined;
    this.push({
      $case: "result",
      value: {
        state,
        commit: info.commit ?? "",
        image: info.image ?? "",
        imageDigest: info.imageDigest ?? "",
        ...(f ? { failure: { type: f.type, message: f.message, retryable: f.retryable, details: f.details !== undefined ? JSON.stringify(f.details) : "" } } : {}),
      },
    });
    // A job's outcome is what users wait for: it goes out now, not at the next batch.
    return this.flush().catch((err: unknown) => this.log.warn({ jobId: this.jobId, err: (err as Error).message }, "could not report the result yet; it is sent again with the next flush"));
  }

  /** Sends everything buffered; retries until stored or `deadlineMs` passes (then throws). */
  async flush(deadlineMs = 5 * 60_000): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.sending) await this.sending;
    if (this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    this.sending = this.send(batch, deadlineMs).finally(() => {
      this.sending = undefined;
    });
    await this.sending;
  }

  private async send(batch: JobEvent[], deadlineMs: number): Promise<void> {
    const until = Date.now() + deadlineMs;
    let delay = 200;
    for (;;) {
      try {
        const res = await this.client.reportJobEvents(batch);
        if (res.cancelRequested.includes(this.jobId)) this.markCancelRequested();
        return;
      } catch (err) {
        const code = (err as { code?: number }).code;
        // PERMISSION_DENIED / NOT_FOUND / UNAUTHENTICATED will not heal by retrying.
        if (code === 7 || code === 5 || code === 16 || Date.now() > until) {
          this.buffer = [...batch, ...this.buffer];
          throw err;
        }
        this.log.warn({ jobId: this.jobId, err: (err as Error).message, retryInMs: delay }, "report failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  markCancelRequested(): void {
    if (this.cancelRequested) return;
    this.cancelRequested = true;
    this.onCancelRequested?.();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
