import { describe, expect, it } from "vitest";
import { ForbiddenError } from "@slipway/core";
import { authorizeRequest, type Principal } from "./auth.service.js";

const admin: Principal = { tokenId: "a", name: "ops", role: "admin", apps: [] };
const deployer: Principal = { tokenId: "d", name: "ci", role: "deployer", apps: ["shop"] };
const viewer: Principal = { tokenId: "v", name: "dash", role: "viewer", apps: ["shop"] };
const SHELL = "/v1/apps/:app/environments/:env/shell";

describe("authorizeRequest: the role rules every route obeys", () => {
  it("lets each role do what it is for and nothing more", () => {
    const cases: Array<[Principal, string, string | undefined, Record<string, string>, Record<string, unknown>, boolean]> = [
      // who, method, route, params, query, allowed
      [admin, "DELETE", "/v1/apps/:app", { app: "other" }, {}, true],
      [admin, "GET", "/v1/apps/:app/environments/:env/variables", { app: "shop", env: "live" }, { reveal: "true" }, true],
      [admin, "POST", SHELL, { app: "shop", env: "live" }, {}, true],
      [deployer, "POST", "/v1/apps/:app/environments/:env/deployments", { app: "shop", env: "live" }, {}, true],
      [deployer, "POST", "/v1/apps/:app/environments/:env/deployments", { app: "other", env: "live" }, {}, false],
      [deployer, "GET", "/v1/apps/:app", { app: "other" }, {}, false],
      [deployer, "POST", SHELL, { app: "shop", env: "test" }, {}, true],
      [deployer, "POST", SHELL, { app: "shop", env: "live" }, {}, false],
      [deployer, "GET", "/v1/apps/:app/environments/:env/variables", { app: "shop", env: "test" }, { reveal: "true" }, false],
      [deployer, "GET", "/v1/apps/:app/environments/:env/variables", { app: "shop", env: "test" }, { reveal: ["false", "true"] }, false],
      [deployer, "GET", "/v1/apps/:app/environments/:env/variables", { app: "shop", env: "test" }, { reveal: "false" }, true],
      [viewer, "GET", "/v1/apps/:app/environments/:env", { app: "shop", env: "live" }, {}, true],
      [viewer, "HEAD", "/v1/apps/:app/environments/:env", { app: "shop", env: "live" }, {}, true],
      [viewer, "GET", "/v1/apps/:app", { app: "other" }, {}, false],
      [viewer, "GET", "/v1/apps/:app/environments/:env/variables", { app: "shop", env: "test" }, { reveal: "1" }, false],
      [viewer, "POST", SHELL, { app: "shop", env: "test" }, {}, false],
      [viewer, "PUT", "/v1/apps/:app/environments/:env/backup-schedule", { app: "shop", env: "live" }, {}, false],
      [viewer, "PATCH", "/v1/apps/:app/settings", { app: "shop" }, {}, false],
      [viewer, "DELETE", "/v1/tokens/:id", { id: "v" }, {}, false],
      [viewer, "POST", "/v1/deployments/:id/cancel", { id: "x" }, {}, false],
      // Signing out ends only the caller's own session.
      [viewer, "DELETE", "/v1/sessions/current", {}, {}, true],
      [viewer, "DELETE", "/v1/sessions/:id", { id: "x" }, {}, false],
      // Not routed (404 follows): nothing to scope, the method still counts.
      [viewer, "POST", undefined, {}, {}, false],
      [viewer, "GET", undefined, {}, {}, true],
    ];
    for (const [p, method, route, params, query, allowed] of cases) {
      const label = `${p.role} ${method} ${route} ${JSON.stringify(params)} ${JSON.stringify(query)}`;
      const call = () => authorizeRequest(p, { method, route, params, query });
      if (allowed) expect(call, label).not.toThrow();
      else expect(call, label).toThrow(ForbiddenError);
    }
  });
});
