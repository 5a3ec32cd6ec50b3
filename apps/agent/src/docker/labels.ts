/**
 * Labels the agent sets beside @slipway/core's LABELS. Kept here because the
 * core package belongs to the control plane's side; a candidate to move there.
 */
export const AGENT_LABELS = {
  /** The control plane's id of the environment a container belongs to. */
  environmentId: "io.slipway.environment-id",
} as const;

/** Docker's label filter values for `labels`: ["key=value", …]. */
export function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}
