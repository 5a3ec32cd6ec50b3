import type { AppSettings, ResourceLimits } from "@slipway/core";
import type { DataJobSpec } from "../data/data.service.js";

/** Per environment (issue 15): HTTP → HTTPS (308) for its host names whose certificate is served, and the HSTS max-age (0 = none). */
export interface HttpsPolicy {
  redirect: boolean;
  hstsMaxAgeSeconds: number;
}

/** How the image is had: built when missing (auto), always (force), the one serving (reuse), or a given one (image: rollback, promote). */
export type BuildMode = "auto" | "force" | "reuse" | "image";

/** What the agent needs to run a deployment, frozen when it is requested (secrets resolved at GetJobSpec). */
export interface DeployJobSpec {
  deploymentId: string;
  app: string;
  environment: string;
  /** Without its credential: that stays sealed here and is joined in only by GetJobSpec. */
  repository: string;
  repositoryCredentialSealed?: string;
  branch: string;
  buildMode: BuildMode;
  currentImage: string | null;
  settings: AppSettings;
  replicas: number;
  /** What each container may take (optional: jobs written before limits ran without them). */
  limits?: ResourceLimits;
  environmentId: string;
  hostnames: string[];
  /** Defaults and the user's variables, encrypted: no secret sits in plain text in the jobs table. */
  variablesSealed: string;
  basicAuth: { username: string; digest: string } | null;
  sleepAfterSeconds: number;
  /** HTTP → HTTPS and HSTS (absent in jobs written before issue 15's redirect: off). */
  https?: HttpsPolicy;
  /** Content copied into the environment before the new containers start. */
  content?: DataJobSpec;
  /** buildMode "image": exactly this image (a rollback's or a promotion's). */
  image?: string;
  /** …and its id as shipped then (checked by the agent). */
  imageDigest?: string;
  /** The release commands are not run (a rollback, unless asked). */
  skipRelease?: boolean;
  /** Lines the deployment's log starts with. */
  preamble?: string[];
}
