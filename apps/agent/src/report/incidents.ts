import type { ContainerIncident } from "@slipway/proto";

/** At most this many incidents wait for the control plane; beyond, the oldest are dropped (a crash loop while it is unreachable). */
const MAX_PENDING = 100;

/**
 * Container incidents (a web container killed for memory) on their way to the control plane, in
 * heartbeats: each beat carries every incident not yet answered, and an answered beat settles the
 * ones it carried. A beat lost with its stream is sent again with the next one; the control plane
 * ignores an incident it has recorded, so a repeat does no harm.
 */
export class IncidentQueue {
  private pending: ContainerIncident[] = [];
  /** The incidents of each beat sent and not answered yet, oldest first. */
  private inFlight: ContainerIncident[][] = [];

  add(incident: ContainerIncident): void {
    this.pending.push(incident);
    if (this.pending.length > MAX_PENDING) this.pending.splice(0, this.pending.length - MAX_PENDING);
  }

  /** What the next beat carries. */
  take(): ContainerIncident[] {
    const batch = [...this.pending];
    this.inFlight.push(batch);
    return batch;
  }

  /** The oldest unanswered beat was answered: its incidents are delivered. */
  answered(): void {
    const batch = this.inFlight.shift();
    if (!batch?.length) return;
    const done = new Set(batch);
    this.pending = this.pending.filter((i) => !done.has(i));
  }

  /** The stream broke: unanswered beats are forgotten, their incidents go with the next beat. */
  reset(): void {
    this.inFlight = [];
  }

  get size(): number {
    return this.pending.length;
  }
}
