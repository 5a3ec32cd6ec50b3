import type { Principal } from "./api";

/**
 * Whether the signed-in token may change `app` (deploy, cancel): admins, and deployers of the
 * app. The API's rules (authorizeRequest): viewers only read, so they see no change buttons.
 */
export function mayChange(p: Principal | undefined, app: string): boolean {
  if (!p) return false;
  return p.role === "admin" || (p.role === "deployer" && p.apps.includes(app));
}

/** Admins create apps and see the fleet. */
export function isAdmin(p: Principal | undefined): boolean {
  return p?.role === "admin";
}
