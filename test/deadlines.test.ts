import { afterEach, describe, expect, it } from "vitest";
import { Deadlines } from "../src/backend/deadlines.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Deadlines", () => {
  const made: Deadlines[] = [];
  const deadlines = () => {
    const d = new Deadlines();
    made.push(d);
    return d;
  };
  afterEach(() => made.splice(0).forEach((d) => d.stop()));

  it("expires each watch once its time passed, earliest first, unless it ended", async () => {
    const d = deadlines();
    const expired: string[] = [];
    const now = Date.now();
    d.watch(now + 60, () => expired.push("c"));
    const b = d.watch(now + 40, () => expired.push("b"));
    d.watch(now + 20, () => expired.push("a"));
    d.watch(now + 40, () => expired.push("b2"));
    d.end(b);
    d.end(b); // twice: nothing more
    expect(d.size).toBe(3);
    await sleep(30);
    expect(expired).toEqual(["a"]);
    await sleep(60);
    expect(expired).toEqual(["a", "b2", "c"]);
    expect(d.size).toBe(0);
  });

  it("a watch added with an earlier deadline re-arms the timer; ending every watch leaves nothing to expire", async () => {
    const d = deadlines();
    const expired: number[] = [];
    const late = d.watch(Date.now() + 1000, () => expired.push(1000));
    d.watch(Date.now() + 10, () => expired.push(10));
    await sleep(40);
    expect(expired).toEqual([10]);
    d.end(late);
    expect(d.size).toBe(0);
    const many = Array.from({ length: 1000 }, (_, i) => d.watch(Date.now() + 20, () => expired.push(i)));
    for (const w of many) d.end(w);
    await sleep(50);
    expect(expired).toEqual([10]);
  });

  it("stop forgets everything: nothing expires after it", async () => {
    const d = deadlines();
    let expired = 0;
    for (let i = 0; i < 10; i++) d.watch(Date.now() + 10, () => expired++);
    d.stop();
    expect(d.size).toBe(0);
    await sleep(40);
    expect(expired).toBe(0);
  });
});
