import { describe, expect, it } from "vitest";
import { endOfTurn } from "../src/proxy/end-of-turn.js";

describe("endOfTurn", () => {
  it("writes after the turn's synchronous work, in order, each once; one that throws stops no other", async () => {
    const done: number[] = [];
    endOfTurn(() => done.push(1));
    endOfTurn(() => {
      throw new Error("socket gone");
    });
    endOfTurn(() => done.push(3));
    expect(done).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(done).toEqual([1, 3]);
    endOfTurn(() => done.push(4));
    await new Promise((r) => setImmediate(r));
    expect(done).toEqual([1, 3, 4]);
  });
});
