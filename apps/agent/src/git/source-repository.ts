import type { Readable } from "node:stream";
import type { GitAuth } from "@slipway/core";

/**
 * Git source of the applications, one bare mirror per app under the agent's
 * state dir. Calls for the same app are serialised by the adapter.
 */
export interface SourceRepository {
  /**
   * Clones the mirror if missing, else fetches (prune). Retryable failures for network errors;
   * a refused key or a host key that is not the pinned one fail for good, saying so.
   */
  sync(app: string, url: string, auth?: GitAuth): Promise<void>;
  /** The commit sha the branch points at; StepFailure("branch_not_found", retryable=false) if absent. */
  resolve(app: string, branch: string): Promise<string>;
  /** A tar stream of the tree at `commit` (git archive), for the Docker build context. */
  archive(app: string, commit: string): Readable;
}
