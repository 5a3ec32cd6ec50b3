import { createHash } from "node:crypto";
import { InvalidRequestError, NotFoundError } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as live from "../repositories/live.repository.js";
import type { StepRecord } from "../repositories/deployments.repository.js";
import { requireAdmin, requireApp, type Principal } from "./auth.service.js";
import type { AppService } from "./app.service.js";
import { logComplete, type DeploymentService } from "./deployment.service.js";

/** One event of a live stream; `id` is what a client resumes after. */
export interface LiveEvent {
  id?: number;
  event: string;
  data: string;
}

/**
 * A live stream's source, one per connection. `poll` is called again and again, never
 * concurrently; it makes at most one query when nothing changed, answers the events since the
 * previous call, `done` when nothing will follow, `more` when it stopped at a page's end.
 * Memory: a page of rows and a few values per connection.
 */
export interface LiveFeed {
  poll(): Promise<{ events: LiveEvent[]; done?: boolean; more?: boolean }>;
}

/** Log lines read per poll: a long backlog arrives a page at a time, as fast as the client takes it. */
const LOG_PAGE = 500;
const ACTIVITY_PAGE = 200;
/**
 * How long an activity id missing below visible ones is waited for. Ids come from a sequence
 * when rows are inserted, not when they commit: a later id can be visible before an earlier
 * one whose transaction is still open. A gap that stays this long was rolled back (or is
 * given up on: that entry is in GET /v1/activity, not in streams already past it).
 */
const ACTIVITY_GAP_WAIT_MS = 10_000;

/**
 * The dashboard's live data (issue 14): a deployment's log, the activity feed, an app's
 * environments, each as a feed polled from the database (so any replica serves any client).
 * Every `open…` checks existence and access first and throws NotFoundError/ForbiddenError
 * before a stream starts; cursors come from the client's Last-Event-ID.
 */
export class LiveService {
  constructor(
    private readonly db: Db,
    private readonly deployments: Pick<DeploymentService, "get">,
    private readonly apps: Pick<AppService, "getEnvironment" | "syncState">,
    /** How long after its last heartbeat a host still counts as online (as environment views count). */
    private readonly onlineWindowMs: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Events: `line` (id = the line's seq, data = its text), `step` (a step's record as JSON, no
   * id: every step once at each (re)connection, then each change), `state` (the deployment's
   * state, likewise), and last `end` ({state, error, finishedAt}) once the log is complete.
   */
  async openDeploymentLog(by: Principal, id: string, lastEventId: string | undefined): Promise<LiveFeed> {
    await this.deployments.get(by, id);
    return new DeploymentLogFeed(this.db, id, parseCursor(lastEventId) ?? 0, this.now);
  }

  /**
   * Events: `activity` (id = the entry's id, data = the entry as GET /v1/activity shows it).
   * Without Last-Event-ID the stream starts after the newest entry. Access as GET /v1/activity:
   * the app's tokens with `app`, admins only without it.
   */
  async openActivity(by: Principal, filter: { app?: string; environment?: string }, lastEventId: string | undefined): Promise<LiveFeed> {
    if (filter.app) requireApp(by, filter.app);
    else requireAdmin(by, "the whole activity feed needs an admin token: name an app (?app=)");
    const after = parseCursor(lastEventId) ?? (await live.latestActivityId(this.db));
    return new ActivityFeed(this.db, filter, after, this.now);
  }

  /**
   * Events: `environment` (the environment's view as GET …/environments/{env} answers it), one
   * per environment at each (re)connection and then one whenever a view changes; `removed`
   * ({name}) for an environment that is gone; `end` when the app is. Ids count on from the
   * client's Last-Event-ID: they only order events, a resumed stream sends every state again.
   */
  async openAppEvents(by: Principal, appName: string, lastEventId: string | undefined): Promise<LiveFeed> {
    requireApp(by, appName);
    const feed = new AppEnvironmentsFeed(this.db, by, appName, this.apps, this.onlineWindowMs, this.now, Number(lastEventId) >= 0 ? Math.floor(Number(lastEventId)) : 0);
    // The first poll answers 404 for an unknown app, before the stream starts.
    const first = await feed.poll();
    if (first.done) throw new NotFoundError(`app '${appName}' does not exist`);
    let pending: typeof first | undefined = first;
    return {
      poll: async () => {
        if (pending) {
          const p = pending;
          pending = undefined;
          return p;
        }
        return feed.poll();
      },
    };
  }
}

/** A Last-Event-ID of ours: a whole number within the database's integer ids (log seq, activity id); undefined when absent. */
function parseCursor(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value) || Number(value) > 2147483647) throw new InvalidRequestError(`Last-Event-ID '${value.slice(0, 40)}' is not an id of this stream: a whole number`, { details: { lastEventId: "not a whole number" } });
  return Number(value);
}

class DeploymentLogFeed implements LiveFeed {
  private readonly steps = new Map<string, string>();
  private state: string | undefined;

  constructor(
    private readonly db: Db,
    private readonly id: string,
    private cursor: number,
    private readonly now: () => number,
  ) {}

  async poll(): Promise<{ events: LiveEvent[]; done?: boolean; more?: boolean }> {
    const d = await live.deploymentWithLogAfter(this.db, this.id, this.cursor, LOG_PAGE);
    // Gone with its app: the client's reconnection is answered 404.
    if (!d) return { events: [], done: true };
    const lines = d.lines.map((l) => ({ at: l.atMs, event: { id: l.seq, event: "line", data: l.text } as LiveEvent }));
    if (lines.length > 0) this.cursor = lines[lines.length - 1]!.event.id!;
    const more = d.lines.length === LOG_PAGE;
    // While a backlog is read, steps wait: they are placed among the lines by time once the lines caught up.
    if (more) return { events: lines.map((l) => l.event), more };
    const changes: Array<{ at: number; event: LiveEvent }> = [];
    if (d.state !== this.state) {
      this.state = d.state;
      changes.push({ at: -Infinity, event: { event: "state", data: JSON.stringify({ state: d.state }) } });
    }
    for (const s of d.steps as StepRecord[]) {
      const json = JSON.stringify({ name: s.name, state: s.state, startedAt: s.startedAt, finishedAt: s.finishedAt });
      if (this.steps.get(s.name) === json) continue;
      this.steps.set(s.name, json);
      changes.push({ at: Date.parse(s.finishedAt ?? s.startedAt ?? "") || -Infinity, event: { event: "step", data: json } });
    }
    // Stable: a step change before the lines of its time, lines in seq order.
    const events = [...changes, ...lines].sort((a, b) => a.at - b.at).map((e) => e.event);
    // One snapshot: ended and complete here means every line is in `lines` or was sent before.
    if (logComplete(d, this.now())) {
      events.push({ event: "end", data: JSON.stringify({ state: d.state, error: d.error ?? null, finishedAt: d.finished_at?.toISOString() ?? null }) });
      return { events, done: true };
    }
    return { events };
  }
}

class ActivityFeed implements LiveFeed {
  /** Ids above the cursor and up to `upTo` have been missing since `since`. */
  private gap: { upTo: number; since: number } | undefined;

  constructor(
    private readonly db: Db,
    private readonly filter: { app?: string; environment?: string },
    private cursor: number,
    private readonly now: () => number,
  ) {}

  async poll(): Promise<{ events: LiveEvent[]; more?: boolean }> {
    const rows = await live.activityAfter(this.db, this.cursor, this.filter, ACTIVITY_PAGE);
    const events: LiveEvent[] = [];
    const now = this.now();
    let waiting = false;
    for (const r of rows) {
      if (r.id > this.cursor + 1) {
        // Missing ids below this one: an open transaction's (wait for it) or a rolled-back one's.
        if (!this.gap || this.gap.upTo < this.cursor + 1) this.gap = { upTo: r.id - 1, since: now };
        if (now - this.gap.since < ACTIVITY_GAP_WAIT_MS) {
          waiting = true;
          break;
        }
      }
      this.cursor = r.id;
      if (r.visible === true) {
        events.push({ id: r.id, event: "activity", data: JSON.stringify({ id: r.id, at: r.at.toISOString(), actor: r.actor, app: r.app, environment: r.environment, action: r.action, details: r.details }) });
      }
    }
    if (this.gap && this.gap.upTo <= this.cursor) this.gap = undefined;
    return { events, more: !waiting && rows.length === ACTIVITY_PAGE };
  }
}

class AppEnvironmentsFeed implements LiveFeed {
  /** Per environment id: its inputs when last computed, and a hash of the view last sent. */
  private readonly known = new Map<string, { name: string; inputs: string; view: string }>();

  constructor(
    private readonly db: Db,
    private readonly by: Principal,
    private readonly appName: string,
    private readonly apps: Pick<AppService, "getEnvironment" | "syncState">,
    private readonly onlineWindowMs: () => number,
    private readonly now: () => number,
    private counter: number,
  ) {}

  async poll(): Promise<{ events: LiveEvent[]; done?: boolean }> {
    const rows = await live.environmentInputs(this.db, this.appName);
    const events: LiveEvent[] = [];
    const seen = new Set<string>();
    for (const r of rows) {
      seen.add(r.id);
      const sync = this.apps.syncState({ id: r.appId });
      const online = r.hostState !== null && r.hostState !== "revoked" && r.hostHeartbeatAt !== null && this.now() - r.hostHeartbeatAt.getTime() <= this.onlineWindowMs();
      // Everything a view is computed from; the view (several queries, maybe git) only when this changed.
      const inputs = [r.appId, r.settingsRevision, r.rowHash, r.lastFinished ?? "", online, sync?.syncedAt ?? "", sync?.error ?? ""].join("\u0000");
      const before = this.known.get(r.id);
      if (before?.inputs === inputs) continue;
      const view = await this.apps.getEnvironment(this.by, this.appName, r.name).catch((err: unknown) => {
        // Removed since the query: the next poll says so.
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      if (!view) continue;
      const json = JSON.stringify(view);
      const hash = createHash("sha256").update(json).digest("base64");
      this.known.set(r.id, { name: r.name, inputs, view: hash });
      if (before?.view !== hash) events.push({ id: ++this.counter, event: "environment", data: json });
    }
    for (const [id, k] of this.known) {
      if (seen.has(id)) continue;
      this.known.delete(id);
      events.push({ id: ++this.counter, event: "removed", data: JSON.stringify({ name: k.name }) });
    }
    if (rows.length === 0) {
      events.push({ event: "end", data: JSON.stringify({ reason: `app '${this.appName}' was removed` }) });
      return { events, done: true };
    }
    return { events };
  }
}
