import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts", "test/src/**/*.test.ts"],
    // *.serial.test.ts disturb the whole machine (the dockerd restart stops every container):
    // they never run beside other tests; vitest.serial.config.ts runs them, alone, after the rest.
    exclude: ["**/node_modules/**", "**/dist/**", "**/*.serial.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    // Tests that start real servers say so in their name; they clean up in afterAll.
    reporters: ["default"],
  },
});
