/**
 * Counts the commits an environment has not deployed yet. Implementations keep
 * their own copy of each app's repository; calls are safe concurrently.
 */
export interface CommitCounter {
  /**
   * Commits on `branch` that `deployedCommit` does not contain; undefined when
   * it cannot be known (repository unreachable, branch or commit missing).
   * `repository` may carry a credential: never stored, logged or shown.
   */
  undeployedCommits(app: string, repository: string, branch: string, deployedCommit: string): Promise<number | undefined>;
}
