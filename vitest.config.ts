import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "client/test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Files share one Redis and one PostgreSQL; each uses its own prefix and tables,
    // but two cores are better spent on fewer forks with the servers.
    fileParallelism: true,
    maxWorkers: 2,
    pool: "forks",
  },
});
