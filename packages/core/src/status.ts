/** Facts from which an environment's one status line is computed. */
export interface StatusFacts {
  /** The latest finished deployment, if any. */
  lastDeployment?: { state: "succeeded" | "failed" | "cancelled"; finishedAt: Date };
  /** Whether any deployment ever succeeded. */
  everSucceeded: boolean;
  /** Commits on the branch head that the deployed commit does not contain; undefined when unknown. */
  undeployedCommits?: number;
  /** A setting, variable, branch, domain or replica change since the last successful deployment. */
  unappliedChanges: boolean;
}

export interface EnvironmentStatus {
  /** The one status line (exactly one of PRODUCT.md's). */
  message: string;
  /** Both lines a full view shows: the last deployment's outcome, and the commits line. */
  lines: string[];
  lastDeployment?: { state: string; finishedAt: string };
  undeployedCommits: number | null;
  unappliedChanges: boolean;
}

function deploymentLine(f: StatusFacts): string | undefined {
  if (!f.lastDeployment) return undefined;
  const when = f.lastDeployment.finishedAt.toISOString();
  if (f.lastDeployment.state === "succeeded") return `Last deployment succeeded at ${when}`;
  if (f.lastDeployment.state === "failed") return `Last deployment failed at ${when}`;
  return undefined;
}

function commitsLine(f: StatusFacts): string | undefined {
  if (!f.everSucceeded) return undefined;
  const n = f.undeployedCommits;
  if (n === undefined && !f.unappliedChanges) return undefined;
  const count = n ?? 0;
  if (count === 0 && !f.unappliedChanges) return "All commits deployed";
  if (count === 0) return "All commits deployed, unapplied changes";
  const commits = `${count} undeployed commit${count === 1 ? "" : "s"}`;
  return f.unappliedChanges ? `${commits} and unapplied changes` : commits;
}

/**
 * The status line of PRODUCT.md (Status), most urgent first: never deployed;
 * the last deployment failed; commits or changes waiting to be deployed; the
 * last deployment succeeded; all commits deployed (when the last deployment
 * was cancelled, its outcome says nothing, so the commits line stands).
 */
export function environmentStatusMessage(f: StatusFacts): string {
  const dep = deploymentLine(f);
  const commits = commitsLine(f);
  if (!f.everSucceeded && !dep) return "Server not deployed yet";
  if (f.lastDeployment?.state === "failed") return dep!;
  if (commits && commits !== "All commits deployed") return commits;
  return dep ?? commits ?? "All commits deployed";
}

export function environmentStatus(f: StatusFacts): EnvironmentStatus {
  const lines = [deploymentLine(f), commitsLine(f)].filter((l): l is string => l !== undefined);
  return {
    message: environmentStatusMessage(f),
    lines: lines.length ? lines : ["Server not deployed yet"],
    ...(f.lastDeployment
      ? { lastDeployment: { state: f.lastDeployment.state, finishedAt: f.lastDeployment.finishedAt.toISOString() } }
      : {}),
    undeployedCommits: f.undeployedCommits ?? null,
    unappliedChanges: f.unappliedChanges,
  };
}
