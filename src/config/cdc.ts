/** `store.cdc: { slot, publication }`: change data capture from PostgreSQL's logical replication. */
import type { Value } from "./node.js";
import type { CdcConfig } from "./types.js";

/** PostgreSQL's own rule for slot names, used for the publication too (so neither needs quoting). */
const NAME = /^[a-z0-9_]{1,63}$/;
const NAME_RULE = "1 to 63 lower-case letters, digits or _";

export const CDC_DEFAULTS: CdcConfig = { slot: "sidecache", publication: "sidecache" };

export function readCdc(v: Value, storeUrl: string): CdcConfig | undefined {
  if (!v.given) return undefined;
  if (v.missing) {
    v.fail(`needs a mapping: { slot: NAME, publication: NAME }, or {} for both named ${CDC_DEFAULTS.slot}`);
  }
  if (!/^postgres(ql)?:\/\//.test(storeUrl)) {
    v.fail(
      "needs a PostgreSQL server (store.url postgres://...): the embedded PGlite has no logical replication",
    );
  }
  const f = v.fields(["slot", "publication"]);
  const name = (what: string) => ({
    expect: `the name of the ${what}: ${NAME_RULE}`,
    check: (s: string) => (NAME.test(s) ? undefined : `must be ${NAME_RULE}; got ${JSON.stringify(s)}`),
  });
  return {
    slot: f.slot.str({ ...name("logical replication slot"), def: CDC_DEFAULTS.slot }),
    publication: f.publication.str({ ...name("publication"), def: CDC_DEFAULTS.publication }),
  };
}
