/** Facts from which an environment's one status line is computed. */
export interface StatusFacts {
  /** The latest finished deployment, if any. */
  lastDeployment?: { state: "succeeded" | "failed" | "cancelled"; finishedAt: Date };
  /** Whether any deployment ever succeeded. */
  everSucceeded: boolean;
  /** Commits on the branch head not in the last successfully deployed commit; undefined when unknown. */
  undeployedCommits?: number;
  /** A setting, variable, branch, domain or replica change since the last successful deployment. */
  unappliedChanges: boolean;
}

export interface EnvironmentStatus {
  message: string;
  lastDeployment?: { state: string; finishedAt: string };
  undeployedCommits: number | null;
  unappliedChanges: boolean;
}

/**
 * The status line of PRODUCT.md (Status). Precedence: never deployed; then
 * undeployed commits/changes when known and non-zero; "All commits deployed"
 * right after a successful deployment when nothing is pending is replaced by
 * the last deployment's outcome — the outcome line is the most useful when
 * nothing is pending.
 */
export function environmentStatusMessage(f: StatusFacts): string {
  if (!f.lastDeployment && !f.everSucceeded) return "Server not deployed yet";
  const n = f.undeployedCommits;
  if (n !== undefined && n > 0) {
    const commits = `${n} undeployed commit${n === 1 ? "" : "s"}`;
    return f.unappliedChanges ? `${commits} and unapplied changes` : commits;
  }
  if (f.lastDeployment) {
    const when = f.lastDeployment.finishedAt.toISOString();
    if (f.lastDeployment.state === "failed") return `Last deployment failed at ${when}`;
    if (f.lastDeployment.state === "succeeded" && !f.unappliedChanges) {
      return `Last deployment succeeded at ${when}`;
    }
  }
  if (n === 0 && !f.unappliedChanges) return "All commits deployed";
  return f.unappliedChanges ? "0 undeployed commits and unapplied changes" : "All commits deployed";
}

export function environmentStatus(f: StatusFacts): EnvironmentStatus {
  return {
    message: environmentStatusMessage(f),
    ...(f.lastDeployment
      ? { lastDeployment: { state: f.lastDeployment.state, finishedAt: f.lastDeployment.finishedAt.toISOString() } }
      : {}),
    undeployedCommits: f.undeployedCommits ?? null,
    unappliedChanges: f.unappliedChanges,
  };
}
