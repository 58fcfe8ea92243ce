/** `npm run chaos`: a chaos run from the command line; exit 1 on any violation. */
import { parseArgs } from "node:util";
import { runChaos } from "./chaos.js";
import { FAULTS, type Fault } from "./faults.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    clients: { type: "string", default: "24" },
    keys: { type: "string", default: "40" },
    seed: { type: "string" },
    faults: { type: "string", default: FAULTS.join(",") },
  },
});
const faults = values.faults.split(",").map((f) => f.trim()) as Fault[];
for (const f of faults) {
  if (!FAULTS.includes(f)) {
    process.stderr.write(`chaos: unknown fault ${JSON.stringify(f)}; known: ${FAULTS.join(", ")}\n`);
    process.exit(2);
  }
}
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const report = await runChaos({
  seconds: Number(values.seconds),
  clients: Number(values.clients),
  keysPerKeyspace: Number(values.keys),
  seed,
  faults,
});
process.stdout.write(`${report.ok ? "PASS" : "FAIL"} (seed ${seed}; repeat with --seed ${seed})\n`);
process.exit(report.ok ? 0 : 1);
