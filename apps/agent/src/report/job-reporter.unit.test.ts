import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "@slipway/core";
import type { JobEvent } from "@slipway/proto";
import { JobReporter } from "./job-reporter.js";
import type { ControlPlaneClient } from "./control-plane.client.js";

function fakeClient() {
  const batches: JobEvent[][] = [];
  const client = { reportJobEvents: async (events: JobEvent[]) => (batches.push(events), { cancelRequested: [] as string[] }) };
  return { batches, client: client as unknown as ControlPlaneClient };
}

describe("JobReporter", () => {
  afterEach(() => void vi.useRealTimers());

  it("batches progress on its timer but sends a result at once, with everything before it, in order", async () => {
    vi.useFakeTimers();
    const { batches, client } = fakeClient();
    const r = new JobReporter(client, "job-1", 7, createLogger("t", "silent"), 200);
    r.logLine("building");
    r.step("switch", "succeeded");
    await vi.advanceTimersByTimeAsync(50);
    expect(batches).toHaveLength(0);
    r.result("succeeded", { image: "slipway/x:1" });
    // No timer needed: the result went out now.
    await vi.advanceTimersByTimeAsync(0);
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((e) => [e.seq, e.event?.$case])).toEqual([
      [8, "log"],
      [9, "step"],
      [10, "result"],
    ]);
    // What follows the result (cleanup) is batched again.
    r.logLine("removed old container");
    await vi.advanceTimersByTimeAsync(199);
    expect(batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches[1]!.map((e) => e.seq)).toEqual([11]);
    r.close();
  });

  it("keeps a result that could not be sent for the next flush", async () => {
    let fail = true;
    const sent: number[] = [];
    const client = {
      reportJobEvents: async (events: JobEvent[]) => {
        if (fail) throw Object.assign(new Error("unauthenticated"), { code: 16 });
        sent.push(...events.map((e) => e.seq));
        return { cancelRequested: [] };
      },
    } as unknown as ControlPlaneClient;
    const r = new JobReporter(client, "job-2", 0, createLogger("t", "silent"), 200);
    r.result("failed", { error: new Error("boom") });
    await new Promise((resolve) => setImmediate(resolve));
    fail = false;
    await r.flush();
    expect(sent).toEqual([1]);
    r.close();
  });
});
