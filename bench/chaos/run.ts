/**
 * `npm run chaos`: chaos runs from the command line, both profiles by default; exit 1 on any violation.
 *   --profile durable|lossy-cache|all   --seconds 60   --clients 24   --keys 40   --seed N   --runs 1
 *   --out DIR (where a failing history is saved; .tmp/chaos)   --save (save passing ones too)
 *   --faults a,b,c (instead of the profile's)   --trust-lease 300ms ("" leaves it out)
 *   --daemon PATH (another build of the daemon, dist/cmd/sidecache.js by default)
 *   --check FILE: check a saved history again, without running anything; with --key KS/KEY (and
 *     --from MS --to MS) only that key's part, printed as a timeline; --excerpt OUT saves that part
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runChaos, type ChaosReport } from "./chaos.js";
import { FAULTS, type Fault } from "./faults.js";
import { checkRun, excerpt, loadRun, timeline } from "./checker.js";
import { PROFILE_NAMES, type ProfileName } from "./profiles.js";
import { countBy, printReport, printViolations, saveRun } from "./report.js";

const { values } = parseArgs({
  options: {
    profile: { type: "string", default: "all" },
    seconds: { type: "string", default: "60" },
    clients: { type: "string", default: "24" },
    keys: { type: "string", default: "40" },
    seed: { type: "string" },
    runs: { type: "string", default: "1" },
    out: { type: "string", default: ".tmp/chaos" },
    save: { type: "boolean", default: false },
    check: { type: "string" },
    key: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    excerpt: { type: "string" },
    faults: { type: "string" },
    "trust-lease": { type: "string", default: "300ms" },
    daemon: { type: "string" },
  },
});
const say = (l: string) => process.stdout.write(`${l}\n`);
const fail = (message: string): never => {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
};

if (values.check !== undefined) {
  let run = loadRun(values.check);
  if (values.key !== undefined) {
    const slash = values.key.indexOf("/");
    if (slash < 1) fail(`--key wants KEYSPACE/KEY, not ${JSON.stringify(values.key)}`);
    const [ks, key] = [values.key.slice(0, slash), values.key.slice(slash + 1)];
    const from = values.from === undefined ? -Infinity : Number(values.from);
    const to = values.to === undefined ? Infinity : Number(values.to);
    for (const line of timeline(run, ks, key, from, to)) say(line);
    run = excerpt(run, ks, key, from, to);
    if (values.excerpt !== undefined) {
      writeFileSync(values.excerpt, JSON.stringify({ ...run, violations: checkRun(run) }));
      say(`excerpt saved to ${values.excerpt}`);
    }
  }
  const violations = checkRun(run);
  say(
    `${values.check}: profile ${run.profile}, seed ${run.seed}, ${run.writes.length} key writes, ` +
      `${run.reads.length} key reads, ${run.faults.length} faults`,
  );
  printViolations(violations, say);
  process.exit(violations.length === 0 ? 0 : 1);
}

const profiles =
  values.profile === "all"
    ? PROFILE_NAMES
    : PROFILE_NAMES.includes(values.profile as ProfileName)
      ? [values.profile as ProfileName]
      : fail(`unknown profile ${JSON.stringify(values.profile)}; known: ${PROFILE_NAMES.join(", ")}, all`);
const number = (name: string, text: string): number => {
  const n = Number(text);
  return Number.isInteger(n) && n >= 0
    ? n
    : fail(`--${name} must be a whole number, not ${JSON.stringify(text)}`);
};
const first = values.seed !== undefined ? number("seed", values.seed) : Math.floor(Math.random() * 2 ** 31);
const runs = number("runs", values.runs);
const faults = values.faults?.split(",").map((f) => f.trim()) as Fault[] | undefined;
for (const f of faults ?? []) {
  if (!FAULTS.includes(f)) fail(`unknown fault ${JSON.stringify(f)}; known: ${FAULTS.join(", ")}`);
}

const reports: ChaosReport[] = [];
for (let i = 0; i < runs; i++) {
  for (const profile of profiles) {
    const seed = first + i;
    const report = await runChaos({
      profile,
      seed,
      seconds: number("seconds", values.seconds),
      clients: number("clients", values.clients),
      keysPerKeyspace: number("keys", values.keys),
      faults,
      trustLease: values["trust-lease"],
      entry: values.daemon,
      say,
    });
    printReport(report, say);
    reports.push(report);
    if (!report.ok || values.save) {
      const file = saveRun(report, values.out);
      say(`history saved to ${file}`);
      say(`  check it again: npm run chaos -- --check ${file}`);
    }
    say(
      `${report.ok ? "PASS" : "FAIL"} ${profile} seed ${seed}; repeat with: npm run chaos -- --seed ${seed} ` +
        `--profile ${profile} --seconds ${values.seconds}\n`,
    );
  }
}

say("summary:");
for (const profile of profiles) {
  const mine = reports.filter((r) => r.run.profile === profile);
  const faults = mine.flatMap((r) => r.run.faults);
  const violations = mine.flatMap((r) => r.violations);
  say(
    `  ${profile}: ${mine.length} histories checked (seeds ${mine.map((r) => r.run.seed).join(", ")}), ` +
      `${mine.reduce((s, r) => s + r.operations, 0)} operations, ` +
      `${mine.reduce((s, r) => s + r.writes.acked, 0)} acknowledged key writes, ` +
      `${faults.length} faults ${JSON.stringify(countBy(faults, (f) => f.fault))}, ` +
      `${violations.length} violations ${JSON.stringify(countBy(violations, (v) => v.kind))}`,
  );
}
process.exit(reports.every((r) => r.ok) ? 0 : 1);
