import type { Db } from "../db/database.js";
import { listApps, type AppRow } from "../repositories/apps.repository.js";
import type { GitAccess } from "./git-access.js";
import type { MirrorSource, MirrorState, PendingCommit, RepositoryMirrors } from "./repository-mirrors.js";

/** What the API reads of an app's repository: the mirror as it is, never the git host. */
export interface SourceView {
  undeployedCommits(app: string, branch: string, deployedCommit: string): Promise<number | undefined>;
  pendingCommits(app: string, branch: string, deployedCommit: string | null): Promise<PendingCommit[] | undefined>;
  syncState(app: string): MirrorState;
  /** Refresh in the background (a deployed commit the mirror does not have yet). */
  kick(app: AppRow): void;
}

/**
 * The apps' repository mirrors kept fresh: polled every app's interval (default
 * `defaultIntervalSeconds`), refreshed at once by a push webhook, reached with the app's token or
 * deploy key (GitAccess).
 */
export class SourceSync implements SourceView {
  constructor(
    private readonly db: Db,
    private readonly mirrors: RepositoryMirrors,
    private readonly access: GitAccess,
    private readonly defaultIntervalSeconds: number,
  ) {}

  source(a: AppRow): MirrorSource {
    return { app: a.name, shownUrl: a.repository, access: () => this.access.forGit(a), intervalSeconds: a.poll_interval_seconds ?? this.defaultIntervalSeconds };
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
    void this.refresh(a);
  }

  undeployedCommits(app: string, branch: string, deployedCommit: string): Promise<number | undefined> {
    return this.mirrors.undeployedCommits(app, branch, deployedCommit);
  }

  pendingCommits(app: string, branch: string, deployedCommit: string | null): Promise<PendingCommit[] | undefined> {
    return this.mirrors.pendingCommits(app, branch, deployedCommit);
  }

  syncState(app: string): MirrorState {
    return this.mirrors.syncState(app);
  }
}
