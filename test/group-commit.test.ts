/**
 * The rules by which group commit gathers writes into statements, with a runner the test holds open:
 * which units share a statement, what waits, for how long, and what a withdrawn unit becomes. (The
 * statements themselves, against PostgreSQL: batch-answers.test.ts, batch-faults.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { GroupCommit, WithdrawnError, type GroupLimits, type Settled } from "../src/store/group-commit.js";
import { Withdrawal } from "../src/store/withdrawal.js";

interface Unit {
  name: string;
}

/** A GroupCommit whose statements end when the test says so. */
function harness(limits: Partial<GroupLimits> = {}) {
  const statements: { units: string[]; end: () => void }[] = [];
  const group = new GroupCommit<Unit, string>(
    { maxOps: 100, inFlight: 1, minWaitMs: 10_000, maxWaitMs: 10_000, maxInFlight: 4, ...limits },
    (units) =>
      new Promise<Settled<string>[]>((resolve) => {
        statements.push({
          units: units.map((u) => u.name),
          end: () => resolve(units.map((u) => ({ ok: true, value: `${u.name} done` }))),
        });
      }),
  );
  const submit = (name: string, keys: string[], size = keys.length, withdrawal?: Withdrawal) =>
    group.submit({ name }, keys, size, withdrawal);
  const tick = () => new Promise((r) => setTimeout(r, 0));
  return { group, statements, submit, tick };
}

describe("group commit", () => {
  it("sends the first write at once and gathers those that arrive meanwhile into the next statement", async () => {
    const { statements, submit, tick } = harness();
    const a = submit("a", ["k1"]);
    const rest = [submit("b", ["k2"]), submit("c", ["k3"]), submit("d", ["k4"])];
    await tick();
    expect(statements.map((s) => s.units)).toEqual([["a"]]);
    statements[0]!.end();
    expect(await a).toBe("a done");
    await tick();
    expect(statements.map((s) => s.units)).toEqual([["a"], ["b", "c", "d"]]);
    statements[1]!.end();
    expect(await Promise.all(rest)).toEqual(["b done", "c done", "d done"]);
  });

  it("puts a key once per statement and never beside a statement in flight, keeping each key's order", async () => {
    const { statements, submit, tick } = harness({ inFlight: 2 });
    void submit("a", ["x"]);
    void submit("b", ["x"]); // x is in flight: waits
    void submit("c", ["y"]); // free: the second statement
    void submit("d", ["y", "z"]); // behind c (y)
    void submit("e", ["z"]); // behind d (z), though z is free
    await tick();
    expect(statements.map((s) => s.units)).toEqual([["a"], ["c"]]);
    statements[0]!.end();
    await tick();
    expect(statements.map((s) => s.units)).toEqual([["a"], ["c"], ["b"]]);
    statements[1]!.end();
    await tick();
    expect(statements[3]!.units).toEqual(["d"]);
    statements[3]!.end();
    await tick();
    expect(statements[4]!.units).toEqual(["e"]);
  });

  it("takes at most maxOps writes in a statement; a bigger unit goes alone", async () => {
    const { statements, submit, tick } = harness({ maxOps: 3 });
    void submit("first", ["a"]);
    void submit("big", ["b", "c", "d", "e"], 4);
    void submit("s1", ["f"]);
    void submit("s2", ["g"]);
    await tick();
    statements[0]!.end();
    await tick();
    expect(statements[1]!.units).toEqual(["big"]);
    statements[1]!.end();
    await tick();
    expect(statements[2]!.units).toEqual(["s1", "s2"]);
  });

  it("starts another statement for writes that waited too long, up to maxInFlight", async () => {
    const { statements, submit, tick } = harness({
      inFlight: 1,
      minWaitMs: 30,
      maxWaitMs: 30,
      maxInFlight: 2,
    });
    void submit("a", ["k1"]);
    void submit("b", ["k2"]);
    await tick();
    expect(statements).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 60));
    expect(statements.map((s) => s.units)).toEqual([["a"], ["b"]]);
    void submit("c", ["k3"]);
    await new Promise((r) => setTimeout(r, 60));
    // two in flight, the most allowed: c waits for one of them to end
    expect(statements).toHaveLength(2);
    statements[0]!.end();
    await tick();
    expect(statements[2]!.units).toEqual(["c"]);
  });

  it("drops a waiting unit whose caller stopped waiting; one already sent is left to the statement", async () => {
    const { statements, submit, tick } = harness();
    const sentBy = new Withdrawal();
    const waitingBy = new Withdrawal();
    const sent = submit("sent", ["k1"], 1, sentBy);
    const waiting = submit("waiting", ["k2"], 1, waitingBy);
    await tick();
    sentBy.withdraw();
    waitingBy.withdraw();
    await expect(waiting).rejects.toBeInstanceOf(WithdrawnError);
    statements[0]!.end();
    expect(await sent).toBe("sent done");
    await tick();
    expect(statements).toHaveLength(1);
  });

  it("idle(key) waits for the units of the key that are waiting or in flight", async () => {
    const { group, statements, submit, tick } = harness();
    void submit("a", ["k"]);
    void submit("b", ["k"]);
    let idle = false;
    void group.idle("k").then(() => (idle = true));
    await tick();
    statements[0]!.end();
    await tick();
    expect(idle).toBe(false);
    statements[1]!.end();
    await tick();
    expect(idle).toBe(true);
    await expect(group.idle("never")).resolves.toBeUndefined();
  });
});
