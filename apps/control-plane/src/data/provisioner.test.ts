import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { DatabaseProvisioner, dropAllWithPrefix } from "./provisioner.js";

const ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

// Two requests (or two control planes) provisioning the same new environment at once.
describe("DatabaseProvisioner against the local PostgreSQL", () => {
  const prefix = `tprov${randomBytes(3).toString("hex")}`;
  afterAll(async () => {
    await dropAllWithPrefix(ADMIN, prefix);
  });

  it("provisions one new environment from several processes at once: every call succeeds, one role and one database", async () => {
    const names = { database: `${prefix}_e_${randomBytes(16).toString("hex")}`, role: `${prefix}_e_${randomBytes(16).toString("hex")}` };
    // Separate instances: none of them has the environment in its provisioned-once cache.
    const provisioners = Array.from({ length: 4 }, () => new DatabaseProvisioner(ADMIN, createLogger("t", "silent"), prefix));
    const results = await Promise.allSettled(provisioners.map((p) => p.ensure(names, "pw-1")));
    expect(results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
  });
});
