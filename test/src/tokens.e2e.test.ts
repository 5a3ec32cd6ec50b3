import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform } from "./support/platform.js";

// Issue 11: rotating SLIPWAY_ADMIN_TOKEN between two starts of the real control plane revokes the
// previous bootstrap token (it stayed valid before); a revoked token in the variable is refused at start.
describe("the bootstrap admin token across restarts (built control plane, PGlite)", () => {
  const cpEnv: Record<string, string> = {};
  const platform = new Platform({ database: "pglite", cpEnv });
  beforeAll(async () => {
    await platform.start();
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("a new SLIPWAY_ADMIN_TOKEN revokes the old one at the next start; other tokens stay; the old one cannot come back", async () => {
    const first = platform.adminToken;
    const { token: deployer } = await platform.api.call("POST", "/v1/tokens", { name: "ci", role: "deployer", apps: ["shop"] });
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: "https://git.example.test/shop.git" });

    const second = `slw_rotated_${randomBytes(16).toString("hex")}`;
    await platform.cp!.stop();
    cpEnv.SLIPWAY_ADMIN_TOKEN = second;
    await platform.startControlPlane();

    const old = await platform.api.raw("GET", "/v1/apps", undefined, first);
    expect({ status: old.status, code: old.body.error?.code }).toEqual({ status: 401, code: "unauthenticated" });
    expect((await platform.api.raw("GET", "/v1/apps", undefined, second)).status).toBe(200);
    expect((await platform.api.raw("GET", "/v1/apps/shop", undefined, deployer)).status).toBe(200);
    expect(readFileSync(path.join(platform.dir, "cp", "admin-token"), "utf8")).toBe(`${second}\n`);
    const tokens = (await platform.api.call<Array<{ name: string; bootstrap: boolean; revokedAt: string | null }>>("GET", "/v1/tokens", undefined, second)).filter((t) => t.bootstrap);
    expect(tokens.map((t) => t.revokedAt === null).sort()).toEqual([false, true]);

    await platform.cp!.stop();
    cpEnv.SLIPWAY_ADMIN_TOKEN = first;
    await expect(platform.startControlPlane()).rejects.toThrow(/SLIPWAY_ADMIN_TOKEN is the token 'bootstrap-admin', revoked at/);
  });
});
