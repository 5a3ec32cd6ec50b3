import { describe, expect, it } from "vitest";
import { backupLocation, isEnvironmentSlug, defaultHostLabel, defaultHostname, environmentDatabaseName, environmentKey, environmentMediaPrefix, environmentNetwork, environmentSlug } from "./names.js";

const ID = "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
const OTHER = "1f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
// The agent's rule for HAProxy backend names (apps/agent/src/ingress/haproxy.config.ts).
const HAPROXY_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;

describe("names derived from an environment's id", () => {
  it("derive database, role, backend and network from the id alone, within PostgreSQL's and HAProxy's rules", () => {
    expect(environmentKey(ID)).toBe("0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b");
    expect(environmentKey(ID.toUpperCase())).toBe(environmentKey(ID));
    expect(environmentSlug(ID)).toBe("env-0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b");
    expect(environmentSlug(ID)).toMatch(HAPROXY_NAME);
    expect(isEnvironmentSlug(environmentSlug(ID))).toBe(true);
    expect(isEnvironmentSlug("shop--live")).toBe(false);
    expect(isEnvironmentSlug("env-shop")).toBe(false);
    expect(environmentDatabaseName("slw", ID)).toBe("slw_e_0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b");
    // The longest prefix still fits PostgreSQL's 63-byte identifiers, unquoted (lowercase, digits, '_').
    const longest = environmentDatabaseName("p234567890123456", ID);
    expect(Buffer.byteLength(longest)).toBeLessThanOrEqual(63);
    expect(longest).toMatch(/^[a-z_][a-z0-9_]*$/);
    expect(environmentNetwork(environmentSlug(ID), "a1b2c3d4-0000-4000-8000-000000000000")).toBe("env-0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b--a1b2c3d4");
    expect(environmentMediaPrefix(ID)).toBe(`envs/${ID}/`);
    expect(backupLocation(ID, OTHER)).toBe(`envs/${ID}/${OTHER}/`);
  });

  it("differ for different ids, whatever the names of app and environment", () => {
    expect(environmentSlug(ID)).not.toBe(environmentSlug(OTHER));
    expect(environmentDatabaseName("slw", ID)).not.toBe(environmentDatabaseName("slw", OTHER));
    expect(environmentNetwork(environmentSlug(ID), "h")).not.toBe(environmentNetwork(environmentSlug(OTHER), "h"));
    // A media prefix is never the start of another environment's.
    expect(environmentMediaPrefix(OTHER).startsWith(environmentMediaPrefix(ID))).toBe(false);
  });

  it("refuse what is not a UUID, and bad prefixes", () => {
    for (const bad of ["", "env-1", "shop--live", "0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b", `${ID}x`, "../../etc"]) {
      expect(() => environmentSlug(bad), bad).toThrow(/not a UUID/);
      expect(() => environmentDatabaseName("slw", bad), bad).toThrow(/not a UUID/);
      expect(() => environmentMediaPrefix(bad), bad).toThrow(/not a UUID/);
      expect(() => backupLocation(ID, bad), bad).toThrow(/not a UUID/);
    }
    for (const bad of ["", "1slw", "Slw", "slw-x", "p2345678901234567", 'x"; drop']) {
      expect(() => environmentDatabaseName(bad, ID), bad).toThrow(/invalid database name prefix/);
    }
  });
});

describe("default host names", () => {
  it("read <app>-<env> under the base domain; the label is what the platform keeps unique", () => {
    expect(defaultHostLabel("shop-api", "live")).toBe("shop-api-live");
    // The collision the label's uniqueness refuses: two different pairs, one host name.
    expect(defaultHostLabel("shop", "api-live")).toBe(defaultHostLabel("shop-api", "live"));
    expect(defaultHostname(defaultHostLabel("shop", "test"), "example.test")).toBe("shop-test.example.test");
  });
});
