import { beforeEach, describe, expect, it, vi } from "vitest";
import type { DataSpec } from "@slipway/proto";
import { StepFailure } from "@slipway/core";
import { runDataJob } from "../data/data.runner.js";
import { contentStep } from "./content.step.js";
import { fakeDeployment } from "../testing/deploy.fixture.js";

// The copy itself (pg_dump, S3) is the data runner's, tested against real servers
// in data.jobs.test.ts; here it is replaced by a script of what it reports.
vi.mock("../data/data.runner.js", () => ({ runDataJob: vi.fn() }));
const dataJob = vi.mocked(runDataJob);

const copy: DataSpec = {
  action: "copy",
  app: "shop",
  environment: "test",
  database: true,
  media: true,
  sourceDatabaseUrl: "postgres://live@db/shop_live",
  targetDatabaseUrl: "postgres://test@db/shop_test",
};

beforeEach(() => {
  dataJob.mockReset();
});

describe("content step", () => {
  it("runs the copy with the deployment's signal and turns its steps into log lines; progress and backup facts pass through", async () => {
    const d = fakeDeployment({ spec: { content: copy } });
    dataJob.mockImplementation(async (_spec, { report }) => {
      report.heading("safety backup");
      report.step("backup", "running");
      report.progress({ phase: "database", bytes: 1024, objects: 0 });
      report.backup({ backupId: "b1", database: true, databaseBytes: 1024, media: false, mediaBytes: 0, mediaObjects: 0 });
      report.logLine("copied 3 tables");
      report.result("succeeded", {});
      return "succeeded";
    });
    expect(await contentStep(d.ctx)).toBe(true);
    expect(dataJob).toHaveBeenCalledTimes(1);
    expect(dataJob.mock.calls[0]![0]).toBe(copy);
    expect(dataJob.mock.calls[0]![1].signal).toBe(d.ctx.signal);
    expect(d.report.lines()).toEqual([
      "copying the database and media of shop into test; a backup of test is taken first",
      "--- safety backup ---",
      "(backup: running)",
      "copied 3 tables",
    ]);
    expect(d.report.events.filter((e) => e.kind === "progress" || e.kind === "backup").map((e) => e.kind)).toEqual(["progress", "backup"]);
    // The copy's own result is not the deployment's: only the runner reports one.
    expect(d.report.results()).toEqual([]);
  });

  it("fails with the copy's failure, keeping its type and retryability", async () => {
    const d = fakeDeployment({ spec: { content: copy } });
    dataJob.mockImplementation(async (_spec, { report }) => {
      report.result("failed", { error: new StepFailure("database_copy_failed", "pg_restore: relation exists", true) });
      return "failed";
    });
    await expect(contentStep(d.ctx)).rejects.toMatchObject({ type: "database_copy_failed", message: "pg_restore: relation exists", retryable: true });
  });

  it("is cancelled when the copy was, and says the copy failed when it gives no reason", async () => {
    const cancelled = fakeDeployment({ spec: { content: copy } });
    dataJob.mockResolvedValueOnce("cancelled");
    await expect(contentStep(cancelled.ctx)).rejects.toMatchObject({ type: "cancelled", retryable: false });

    const failed = fakeDeployment({ spec: { content: copy } });
    dataJob.mockResolvedValueOnce("failed");
    await expect(contentStep(failed.ctx)).rejects.toMatchObject({ type: "content_copy_failed", retryable: false });
  });

  it("is skipped when the deployment copies no content", async () => {
    const d = fakeDeployment();
    expect(await contentStep(d.ctx)).toBe(false);
    expect(dataJob).not.toHaveBeenCalled();
  });
});
