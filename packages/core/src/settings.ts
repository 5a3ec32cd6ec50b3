import { InvalidRequestError } from "./errors.js";

export interface ReleaseCommand {
  label: string;
  command: string;
}
export interface StartupProbeSettings {
  path: string;
  acceptedStatuses: string;
  startupTimeoutSeconds: number;
  probeTimeoutSeconds: number;
  maxRetries: number;
}
export interface AppSettings {
  releaseCommands: ReleaseCommand[];
  releaseCommandTimeoutSeconds: number;
  webPort: number | null;
  startupProbe: StartupProbeSettings;
}

/** Defaults from PRODUCT.md (Deployments). */
export const defaultAppSettings: Readonly<AppSettings> = Object.freeze({
  releaseCommands: [],
  releaseCommandTimeoutSeconds: 1800,
  webPort: null,
  startupProbe: Object.freeze({
    path: "/",
    acceptedStatuses: "200-499",
    startupTimeoutSeconds: 60,
    probeTimeoutSeconds: 10,
    maxRetries: 300,
  }),
}) as AppSettings;

const STATUS_RANGES = "^\\s*[1-5][0-9]{2}(\\s*-\\s*[1-5][0-9]{2})?(\\s*,\\s*[1-5][0-9]{2}(\\s*-\\s*[1-5][0-9]{2})?)*\\s*$";

/** JSON schema of the settings patch, for the REST edge. */
export const appSettingsPatchSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    releaseCommands: {
      type: "array",
      maxItems: 50,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["label", "command"],
        properties: {
          label: { type: "string", minLength: 1, maxLength: 200 },
          command: { type: "string", minLength: 1, maxLength: 10000 },
        },
      },
    },
    releaseCommandTimeoutSeconds: { type: "integer", minimum: 1, maximum: 86400 },
    webPort: { anyOf: [{ type: "integer", minimum: 1, maximum: 65535 }, { type: "null" }] },
    startupProbe: {
      type: "object",
      additionalProperties: false,
      properties: {
        path: { type: "string", pattern: "^/[^\\s]*$", maxLength: 2000 },
        acceptedStatuses: { type: "string", pattern: STATUS_RANGES },
        startupTimeoutSeconds: { type: "integer", minimum: 1, maximum: 3600 },
        probeTimeoutSeconds: { type: "integer", minimum: 1, maximum: 600 },
        maxRetries: { type: "integer", minimum: 1, maximum: 10000 },
      },
    },
  },
} as const;

export type AppSettingsPatch = Partial<Omit<AppSettings, "startupProbe">> & {
  startupProbe?: Partial<StartupProbeSettings>;
};

/** Applies a validated patch to settings; returns a new object. */
export function mergeAppSettings(base: AppSettings, patch: AppSettingsPatch): AppSettings {
  const merged: AppSettings = {
    releaseCommands: patch.releaseCommands ?? base.releaseCommands,
    releaseCommandTimeoutSeconds: patch.releaseCommandTimeoutSeconds ?? base.releaseCommandTimeoutSeconds,
    webPort: patch.webPort !== undefined ? patch.webPort : base.webPort,
    startupProbe: { ...base.startupProbe, ...(patch.startupProbe ?? {}) },
  };
  parseStatusRanges(merged.startupProbe.acceptedStatuses);
  return merged;
}

export type StatusRange = [number, number];

/** Parses "200-499" or "200,301-302" into ranges; throws InvalidRequestError. */
export function parseStatusRanges(spec: string): StatusRange[] {
  if (!new RegExp(STATUS_RANGES).test(spec)) {
    throw new InvalidRequestError(`invalid acceptedStatuses '${spec}': use e.g. "200-499" or "200,301-302"`, {
      details: { "startupProbe.acceptedStatuses": "invalid" },
    });
  }
  return spec.split(",").map((part) => {
    const [a, b] = part.split("-").map((x) => Number(x.trim()));
    const lo = a!;
    const hi = b ?? lo;
    if (hi < lo) {
      throw new InvalidRequestError(`invalid acceptedStatuses '${spec}': range ${lo}-${hi} is reversed`, {
        details: { "startupProbe.acceptedStatuses": "reversed range" },
      });
    }
    return [lo, hi] as StatusRange;
  });
}

export function statusAccepted(ranges: StatusRange[], status: number): boolean {
  return ranges.some(([lo, hi]) => status >= lo && status <= hi);
}
