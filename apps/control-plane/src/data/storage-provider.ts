import { randomBytes } from "node:crypto";
import { environmentKey } from "@slipway/core";

/** S3 keys of one identity. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * Where each environment's media live and with which keys its containers reach
 * them. A provider that `isolates` gives every environment its own identity on
 * the S3 server, allowed its own bucket and nothing else (no other
 * environment's media, no backups); the platform's own identity reads and
 * writes everything (backups, content copies, removal). Implementations talk to
 * the S3 server's own admin interface: radosgw's Admin Ops API here; MinIO's
 * admin API, Garage's or AWS IAM can follow behind the same interface.
 */
export interface StorageProvider {
  readonly kind: "shared" | "radosgw";
  readonly isolates: boolean;
  /**
   * Makes `credentials` the environment's identity and creates `bucket`, owned by it.
   * Idempotent: called again with the same arguments (a retry, another replica), it
   * changes nothing; with other keys for the same environment, they replace the old ones.
   */
  provision(p: { environmentId: string; bucket: string; credentials: S3Credentials }): Promise<void>;
  /** Deletes the bucket with whatever is left in it, and the identity. Idempotent. */
  remove(p: { environmentId: string; bucket: string }): Promise<void>;
}

/** One key for everything (a single-user S3 server such as the embedded s3rver, or an operator's choice). */
export const sharedStorage: StorageProvider = {
  kind: "shared",
  isolates: false,
  provision: async () => {
    throw new Error("the shared storage provider has no per-environment identities");
  },
  remove: async () => undefined,
};

/** The bucket of an environment's media under an isolating provider: named after its id (42 characters). */
export function environmentBucket(environmentId: string): string {
  return `slw-media-${environmentKey(environmentId)}`;
}

/** The identity (user) of an environment on the S3 server. */
export function environmentStorageUser(environmentId: string): string {
  return `slw-env-${environmentKey(environmentId)}`;
}

const KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** New keys for an environment: a 20-character access key (as S3 servers make them) and a 40-character secret. */
export function newStorageCredentials(): S3Credentials {
  const bytes = randomBytes(17);
  const access = "SLW" + Array.from(bytes, (b) => KEY_ALPHABET[b % 32]).join("");
  return { accessKeyId: access, secretAccessKey: randomBytes(30).toString("base64url") };
}
