/** Per-environment defaults (PRODUCT.md); the user's own variables override them. */
export function defaultVariables(env: string, extra: { domain: string; aliases: string[]; branch: string }): Record<string, string> {
  return {
    STAGE: env,
    DEBUG: env === "live" ? "False" : "True",
    DOMAIN: extra.domain,
    DOMAIN_ALIASES: extra.aliases.join(","),
    GIT_BRANCH: extra.branch,
  };
}
