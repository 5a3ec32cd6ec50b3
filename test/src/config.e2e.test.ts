import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support/platform.js";

// Invalid configuration stops each process at start with a message naming the variable.
describe("configuration errors at start", () => {
  it.each([
    ["apps/control-plane/dist/main.js", "SLIPWAY_HTTP_PORT", "eighty"],
    ["apps/control-plane/dist/main.js", "DATABASE_URL", "mysql://nope"],
    ["apps/agent/dist/main.js", "SLIPWAY_CONTROL_PLANE", "missing-port"],
  ])("%s with %s=%s exits 2 naming it", (main, name, value) => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, main)], { env: { ...process.env, [name]: value }, encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(name);
    expect(r.stderr).toContain("invalid configuration");
  });

  it("the control plane refuses an agent thread without PostgreSQL (the embedded PGlite cannot be shared with it)", () => {
    const { DATABASE_URL: _pg, ...env } = process.env;
    const r = spawnSync(process.execPath, [path.join(repoRoot, "apps/control-plane/dist/main.js")], { env: { ...env, SLIPWAY_AGENT_THREAD: "on" }, encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("SLIPWAY_AGENT_THREAD");
    expect(r.stderr).toContain("DATABASE_URL");
  });

  it("an unregistered agent without a join token says how to get one", () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, "apps/agent/dist/main.js")], {
      env: { ...process.env, SLIPWAY_AGENT_STATE_DIR: path.join(repoRoot, ".slipway", "never-registered"), SLIPWAY_JOIN_TOKEN: "" },
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("SLIPWAY_JOIN_TOKEN");
  });
});
