import type { Db } from "../db/database.js";
import { findAppById, listApps, type AppRow } from "../repositories/apps.repository.js";
import type { GitAccess } from "./git-access.js";
import type { MirrorSource, MirrorState, PendingCommit, RepositoryMirrors } from "./repository-mirrors.js";

type AppRef = Pick<AppRow, "id">;

/** What the API reads of an app's repository: the mirror as it is, never the git host. */
export interface SourceView {
  undeployedCommits(app: AppRef, branch: string, deployedCommit: string): Promise<number | undefined>;
  pendingCommits(app: AppRef, branch: string, deployedCommit: string | null): Promise<PendingCommit[] | undefined>;
  syncState(app: AppRef): MirrorState;
  /**
   * A deployed commit the mirror does not have: refresh in the background, unless a fetch runs,
   * the last one failed (the poller's backoff decides) or one started within the last 10 s.
   */
  kick(app: AppRow): void;
  /** The repository or its credential changed: fetch it now, failures forgotten. */
  changed(app: AppRow): void;
}

/** A status read asks for a refresh at most this often per app. */
const KICK_MIN_AGE_MS = 10_000;

/**
 * The apps' repository mirrors kept fresh: polled every app's interval (default
 * `defaultIntervalSeconds`), refreshed at once by a push webhook, reached with the app's token or
 * deploy key (GitAccess), read from the database when each fetch starts.
 */
export class SourceSync implements SourceView {
  constructor(
    private readonly db: Db,
    private readonly mirrors: RepositoryMirrors,
    private readonly access: GitAccess,
    private readonly defaultIntervalSeconds: number,
  ) {}

  source(a: AppRow): MirrorSource {
    return {
      id: a.id,
      app: a.name,
      shownUrl: a.repository,
      // The app as it is when the fetch starts (its URL or credential may have changed since).
      access: async () => this.access.forGit((await findAppById(this.db, a.id)) ?? a),
      intervalSeconds: a.poll_interval_seconds ?? this.defaultIntervalSeconds,
    };
  }

  start(tickMs?: number): void {
    this.mirrors.start(async () => (await listApps(this.db)).map((a) => this.source(a)), tickMs);
  }

  stop(): void {
    this.mirrors.stop();
  }

  refresh(a: AppRow): Promise<void> {
    return this.mirrors.refresh(this.source(a));
  }

  kick(a: AppRow): void {
    if (this.mirrors.idle(a.id, KICK_MIN_AGE_MS)) void this.refresh(a);
  }

  changed(a: AppRow): void {
    this.mirrors.resetBackoff(a.id);
    void this.refresh(a);
  }

  undeployedCommits(app: AppRef, branch: string, deployedCommit: string): Promise<number | undefined> {
    return this.mirrors.undeployedCommits(app.id, branch, deployedCommit);
  }

  pendingCommits(app: AppRef, branch: string, deployedCommit: string | null): Promise<PendingCommit[] | undefined> {
    return this.mirrors.pendingCommits(app.id, branch, deployedCommit);
  }

  syncState(app: AppRef): MirrorState {
    return this.mirrors.syncState(app.id);
  }
}
