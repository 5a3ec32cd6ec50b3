import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { BackupFacts, BackupLocation, DataSpec, S3Location } from "@slipway/proto";
import { BACKUP_DATABASE_KEY, BACKUP_MANIFEST_KEY, BACKUP_MEDIA_DIR, StepFailure, type BackupManifest, type Logger, type StepState } from "@slipway/core";
import { copyDatabase, downloadArchive, dumpToS3, restoreFromFile } from "./database.js";
import { copyPrefix, deletePrefix, errorText, isAbort, makeS3Client, normalizePrefix, PartialCopyError, under } from "./s3.js";
import { pgConnection } from "./pg-tools.js";

/** What a data job reports; JobReporter has all of it once `progress` and `backup` are added. */
export interface DataReporter {
  heading(title: string): void;
  logLine(text: string): void;
  step(name: string, state: StepState): void;
  progress(p: { phase: string; bytes: number; objects: number }): void;
  backup(f: BackupFacts): void;
  result(state: JobOutcome, info: { error?: unknown }): void;
}

export type JobOutcome = "succeeded" | "failed" | "cancelled";

export interface DataJobContext {
  report: DataReporter;
  log: Logger;
  signal: AbortSignal;
  /** minimum time between two progress events of one phase */
  progressIntervalMs?: number;
  /** parallel server-side copies for media */
  concurrency?: number;
  /** where a restore keeps the downloaded archive while it runs (default: the OS's temporary directory) */
  workDir?: string;
}

export const DUMP_KEY = BACKUP_DATABASE_KEY;
export const MANIFEST_KEY = BACKUP_MANIFEST_KEY;
export const MEDIA_DIR = BACKUP_MEDIA_DIR;
export type { BackupManifest };

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Cumulative progress of one phase, sent at most every `intervalMs`; `flush` sends the final figure. */
class PhaseProgress {
  private last = -Infinity;
  private pending?: { bytes: number; objects: number };

  constructor(
    private readonly report: DataReporter,
    private readonly phase: string,
    private readonly intervalMs: number,
  ) {}

  update(bytes: number, objects: number): void {
    this.pending = { bytes, objects };
    if (performance.now() - this.last >= this.intervalMs) this.flush();
  }

  flush(): void {
    if (!this.pending) return;
    this.report.progress({ phase: this.phase, ...this.pending });
    this.last = performance.now();
    this.pending = undefined;
  }
}

/** Says "x failed" in a way that keeps a PartialCopyError's "after n/total objects". */
function failedText(what: string, err: unknown): string {
  if (isAbort(err)) return `${what} cancelled`;
  return err instanceof PartialCopyError ? `${what} ${err.message}` : `${what} failed: ${errorText(err)}`;
}

function need<T>(value: T | undefined | null | "", what: string): T {
  if (value === undefined || value === null || value === "") throw new StepFailure("invalid_spec", `the data job has no ${what}`, false);
  return value as T;
}

class DataJob {
  /** What has been done so far, for the log when something fails. */
  private readonly done: string[] = [];
  /** The part being worked on, named the way the failure summary says it. */
  private current: string;
  private readonly interval: number;

  constructor(
    private readonly spec: DataSpec,
    private readonly ctx: DataJobContext,
  ) {
    this.interval = ctx.progressIntervalMs ?? 250;
    this.current = spec.action;
  }

  private get report(): DataReporter {
    return this.ctx.report;
  }

  private async stage<T>(step: string, heading: string, fn: () => Promise<T>, what = heading): Promise<T> {
    this.current = what;
    this.report.heading(heading);
    this.report.step(step, "running");
    try {
      const r = await fn();
      this.report.step(step, "succeeded");
      return r;
    } catch (err) {
      this.report.step(step, "failed");
      throw err;
    }
  }

  private phase(name: string): PhaseProgress {
    return new PhaseProgress(this.report, name, this.interval);
  }

  private async dumpDatabase(b: BackupLocation, url: string, phase: string): Promise<BackupManifest["database"]> {
    const loc = need(b.location, "backup location");
    this.report.logLine(`dumping ${pgConnection(url).label} to s3://${loc.bucket}/${normalizePrefix(loc.prefix)}${DUMP_KEY}`);
    const p = this.phase(phase);
    const r = await dumpToS3(url, loc, DUMP_KEY, { signal: this.ctx.signal, onProgress: (bytes) => p.update(bytes, 0) }).finally(() => p.flush());
    this.report.logLine(`database dump: ${formatBytes(r.bytes)} (sha256 ${r.sha256})`);
    this.report.backup({ backupId: b.backupId, database: true, databaseBytes: r.bytes, databaseSha256: r.sha256, media: false, mediaBytes: 0, mediaObjects: 0 });
    return r;
  }

  private async copyMedia(src: S3Location, dst: S3Location, phase: string): Promise<{ objects: number; bytes: number }> {
    this.report.logLine(`copying s3://${src.bucket}/${normalizePrefix(src.prefix)} to s3://${dst.bucket}/${normalizePrefix(dst.prefix)}`);
    const p = this.phase(phase);
    try {
      const r = await copyPrefix(src, dst, {
        signal: this.ctx.signal,
        concurrency: this.ctx.concurrency,
        onProgress: (c) => p.update(c.bytes, c.objects),
      });
      this.report.logLine(`media: ${r.objects} objects, ${formatBytes(r.bytes)}; ${r.deleted} object(s) not in the source removed from the target`);
      return r;
    } finally {
      p.flush();
    }
  }

  private async writeManifest(b: BackupLocation, m: BackupManifest): Promise<void> {
    const loc = need(b.location, "backup location");
    const client = makeS3Client(loc);
    try {
      await client.send(
        new PutObjectCommand({
          Bucket: loc.bucket,
          Key: normalizePrefix(loc.prefix) + MANIFEST_KEY,
          Body: JSON.stringify(m, null, 2),
          ContentType: "application/json",
        }),
        { abortSignal: this.ctx.signal },
      );
    } finally {
      client.destroy();
    }
  }

  /** A backup of database and/or media into `b`: a step per part for a backup, inside the one safety-backup step for a copy. */
  private async backupInto(b: BackupLocation, databaseUrl: string, media: S3Location | undefined, kind: "backup" | "safety"): Promise<void> {
    const loc = need(b.location, kind === "safety" ? "safety backup location" : "backup location");
    const manifest: BackupManifest = {
      backupId: b.backupId,
      app: this.spec.app,
      environment: this.spec.environment,
      createdAt: new Date().toISOString(),
      database: null,
      media: null,
    };
    const phase = (part: string) => (kind === "safety" ? `safety-${part}` : part);
    try {
      if (this.spec.database) {
        const run = () => this.dumpDatabase(b, need(databaseUrl, "database URL"), phase("database"));
        manifest.database = kind === "backup" ? await this.stage("database", "database backup", run) : await run();
      }
      if (this.spec.media) {
        const run = async () => {
          const r = await this.copyMedia(need(media, "media location"), under(loc, MEDIA_DIR), phase("media"));
          this.report.backup({ backupId: b.backupId, database: false, databaseBytes: 0, databaseSha256: "", media: true, mediaBytes: r.bytes, mediaObjects: r.objects });
          return { objects: r.objects, bytes: r.bytes };
        };
        manifest.media = kind === "backup" ? await this.stage("media", "media backup", run) : await run();
      }
      await this.writeManifest(b, manifest);
    } catch (err) {
      // Without its manifest the backup is unusable; its objects would only cost storage.
      await deletePrefix(loc).then(
        (n) => this.report.logLine(`removed the incomplete backup ${b.backupId} (${n} object(s))`),
        (e: unknown) => this.report.logLine(`could not remove the incomplete backup ${b.backupId}: ${errorText(e)}`),
      );
      throw err;
    }
    this.report.logLine(`backup ${b.backupId} complete`);
  }

  async backup(): Promise<void> {
    const b = need(this.spec.backup, "backup");
    await this.backupInto(b, this.spec.sourceDatabaseUrl, this.spec.sourceMedia, "backup");
    this.done.push(`backup ${b.backupId} written`);
  }

  private async readManifest(b: BackupLocation): Promise<BackupManifest> {
    const loc = need(b.location, "backup location");
    const client = makeS3Client(loc);
    try {
      const got = await client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: normalizePrefix(loc.prefix) + MANIFEST_KEY }), {
        abortSignal: this.ctx.signal,
      });
      return JSON.parse(await got.Body!.transformToString()) as BackupManifest;
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new StepFailure("backup_unusable", `backup ${b.backupId} has no readable manifest (incomplete or removed): ${errorText(err)}`, false);
    } finally {
      client.destroy();
    }
  }

  /**
   * Downloads the backup's database archive into a private directory and checks it against the
   * sha256 the control plane recorded when the backup was written (kept apart from the archive;
   * for older backups, the manifest's): a changed or damaged archive fails the restore before
   * anything of the target is touched, and what is restored is the very file checked.
   */
  private async verifiedArchive(b: BackupLocation, manifest: BackupManifest, dir: string): Promise<string> {
    const loc = need(b.location, "backup location");
    const expected = b.databaseSha256 || manifest.database!.sha256;
    const file = path.join(dir, DUMP_KEY);
    return this.stage("verify", `checking backup ${b.backupId}`, async () => {
      if (!b.databaseSha256) this.report.logLine("the control plane has no sha256 on record for this backup (made before it was recorded): checking the archive against its manifest");
      const p = this.phase("verify");
      const r = await downloadArchive(loc, DUMP_KEY, file, { signal: this.ctx.signal, onProgress: (bytes) => p.update(bytes, 0) }).finally(() => p.flush());
      if (r.sha256 !== expected) {
        throw new StepFailure("backup_unusable", `backup ${b.backupId}'s database archive is not the one the backup wrote (sha256 ${r.sha256}, recorded ${expected}): it was changed or damaged; nothing was restored`, false);
      }
      this.report.logLine(`database archive ${formatBytes(r.bytes)}, sha256 ${r.sha256}: as recorded`);
      return file;
    });
  }

  async restore(): Promise<void> {
    const b = need(this.spec.backup, "backup");
    const manifest = await this.readManifest(b);
    if (this.spec.database && !manifest.database) throw new StepFailure("backup_unusable", `backup ${b.backupId} has no database`, false);
    if (this.spec.media && !manifest.media) throw new StepFailure("backup_unusable", `backup ${b.backupId} has no media`, false);
    const dir = await mkdtemp(path.join(this.ctx.workDir ?? tmpdir(), "slipway-restore-"));
    try {
      const archive = this.spec.database ? await this.verifiedArchive(b, manifest, dir) : undefined;
      await this.restoreChecked(b, manifest, archive);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async restoreChecked(b: BackupLocation, manifest: BackupManifest, archive: string | undefined): Promise<void> {
    const loc = need(b.location, "backup location");
    // Issue 11: like a content copy, the target's current content is kept first (older control planes send none).
    if (this.spec.safetyBackup) await this.safetyBackup(this.spec.safetyBackup);
    if (this.spec.database) {
      const target = need(this.spec.targetDatabaseUrl, "target database URL");
      await this.stage("database", "database restore", async () => {
        this.report.logLine(`restoring backup ${b.backupId} (${formatBytes(manifest.database!.bytes)}) into ${pgConnection(target).label}`);
        const p = this.phase("database");
        const r = await restoreFromFile(archive!, target, { signal: this.ctx.signal, onProgress: (bytes) => p.update(bytes, 0) }).finally(() => p.flush());
        this.report.logLine(`database restored: ${formatBytes(r.bytes)} read`);
      });
      this.done.push("database restored");
    }
    if (this.spec.media) {
      await this.stage("media", "media restore", () => this.copyMedia(under(loc, MEDIA_DIR), need(this.spec.targetMedia, "target media location"), "media"));
      this.done.push("media restored");
    }
  }

  private async safetyBackup(safety: BackupLocation): Promise<void> {
    await this.stage(
      "safety-backup",
      `safety backup ${safety.backupId} of the target`,
      () => this.backupInto(safety, this.spec.targetDatabaseUrl, this.spec.targetMedia, "safety"),
      "safety backup",
    );
    this.done.push(`safety backup ${safety.backupId} of the target written`);
  }

  async copy(): Promise<void> {
    await this.safetyBackup(need(this.spec.safetyBackup, "safety backup"));
    if (this.spec.database) {
      const source = need(this.spec.sourceDatabaseUrl, "source database URL");
      const target = need(this.spec.targetDatabaseUrl, "target database URL");
      await this.stage("database", "database copy", async () => {
        this.report.logLine(`copying ${pgConnection(source).label} to ${pgConnection(target).label}`);
        const p = this.phase("database");
        const r = await copyDatabase(source, target, { signal: this.ctx.signal, onProgress: (bytes) => p.update(bytes, 0) }).finally(() => p.flush());
        this.report.logLine(`database copied: ${formatBytes(r.bytes)} through the pipe`);
      });
      this.done.push("database copied");
    }
    if (this.spec.media) {
      await this.stage("media", "media copy", () =>
        this.copyMedia(need(this.spec.sourceMedia, "source media location"), need(this.spec.targetMedia, "target media location"), "media"),
      );
      this.done.push("media copied");
    }
  }

  /** One line for the log and the job's failure: what was done, what failed, and how to get the old content back. */
  summary(err: unknown): string {
    const parts = [...this.done, failedText(this.current, err)];
    let tail = "";
    if (this.spec.action === "copy" || (this.spec.action === "restore" && this.spec.safetyBackup)) {
      tail = this.done.length > 0 ? `. The safety backup ${this.spec.safetyBackup?.backupId} restores the target's previous content.` : ". The target was not touched.";
    }
    return parts.join("; ") + tail;
  }
}

/**
 * Runs one data job (backup, restore, copy) and reports its steps, progress,
 * backup facts and result. Never throws. Cancellation through ctx.signal
 * kills pg_dump/pg_restore and aborts uploads and copies in flight.
 */
export async function runDataJob(spec: DataSpec, ctx: DataJobContext): Promise<JobOutcome> {
  const job = new DataJob(spec, ctx);
  const started = Date.now();
  try {
    if (!spec.database && !spec.media) throw new StepFailure("invalid_spec", "the data job has neither database nor media to act on", false);
    switch (spec.action) {
      case "backup":
        await job.backup();
        break;
      case "restore":
        await job.restore();
        break;
      case "copy":
        await job.copy();
        break;
      default:
        throw new StepFailure("invalid_spec", `unknown data action '${spec.action}'`, false);
    }
    ctx.report.result("succeeded", {});
    ctx.log.info({ action: spec.action, app: spec.app, environment: spec.environment, ms: Date.now() - started }, "data job succeeded");
    return "succeeded";
  } catch (err) {
    const cancelled = ctx.signal.aborted || isAbort(err);
    const message = err instanceof StepFailure && err.type === "invalid_spec" ? err.message : job.summary(err);
    ctx.report.logLine(message);
    const outcome: JobOutcome = cancelled ? "cancelled" : "failed";
    const type = cancelled ? "cancelled" : err instanceof StepFailure ? err.type : "data_job_failed";
    ctx.report.result(outcome, { error: new StepFailure(type, message, !cancelled && !(err instanceof StepFailure)) });
    ctx.log.warn({ action: spec.action, app: spec.app, environment: spec.environment, outcome, message }, "data job did not succeed");
    return outcome;
  }
}
