import { describe, expect, it } from "vitest";
import { workingIntervalMs } from "./job-consumer.js";

describe("in-progress acks of a running job", () => {
  it.each([
    [undefined, 15_000],
    [60_000, 15_000],
    [5_000, 1_666],
    [300, 200],
  ])("ack wait %s ms → every %s ms", (ackWaitMs, expected) => {
    expect(workingIntervalMs(ackWaitMs === undefined ? undefined : ackWaitMs * 1_000_000)).toBe(expected);
  });
});
