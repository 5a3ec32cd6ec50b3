import { defineConfig } from "vitest/config";

// Tests that disturb the whole machine, run one file at a time after the main suite (scripts/test).
export default defineConfig({
  test: {
    include: ["test/src/**/*.serial.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: "forks",
    fileParallelism: false,
  },
});
