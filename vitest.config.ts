import { defineConfig } from "vitest/config";

// Three projects (`npx vitest run --project unit`, or `npm run test:unit` etc.):
// - unit: `*.unit.test.ts`, pure code and fakes of the narrow interfaces; no server,
//   no Docker, no network, no PGlite. The whole project runs in seconds.
// - integration: the other tests beside the source, against real dependencies
//   (dockerd, HAProxy, NATS, PostgreSQL, PGlite, s3rver).
// - e2e: test/src, the built control plane and agent as processes.
// The settings below are shared: inline projects with `extends: true` inherit them
// (arrays such as `exclude` are concatenated, so `include` is set per project only).
const UNIT = "**/*.unit.test.ts";

export default defineConfig({
  test: {
    // *.serial.test.ts disturb the whole machine (the dockerd restart stops every container):
    // they never run beside other tests; vitest.serial.config.ts runs them, alone, after the rest.
    exclude: ["**/node_modules/**", "**/dist/**", "**/*.serial.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    // Tests that start real servers say so in their name; they clean up in afterAll.
    reporters: ["default"],
    projects: [
      {
        extends: true,
        // A unit test that waits this long is waiting for something it should have faked.
        test: { name: "unit", include: [`packages/*/src/${UNIT}`, `apps/*/src/${UNIT}`, `test/src/${UNIT}`], testTimeout: 10_000, hookTimeout: 10_000 },
      },
      {
        extends: true,
        test: { name: "integration", include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts"], exclude: [UNIT] },
      },
      {
        extends: true,
        test: { name: "e2e", include: ["test/src/**/*.test.ts"], exclude: [UNIT] },
      },
    ],
  },
});
