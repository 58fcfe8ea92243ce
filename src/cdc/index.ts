/** Change data capture from PostgreSQL's logical replication (docs/cdc.md). */
export { CdcReader, type CdcReaderOptions, type CdcTiming } from "./reader.js";
export type { Invalidation, InvalidationListener } from "./invalidator.js";
export { cdcProblems, checkCdcServer } from "./server-checks.js";
