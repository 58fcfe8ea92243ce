/** The backend guard and its circuit breaker, on fake clocks: timeouts, breaker states, typed errors, events, logs. */
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CircuitBreaker } from "../src/backend/breaker.js";
import { BackendGuard, BackendTimeoutError } from "../src/backend/guard.js";
import type { RequestContext } from "../src/backend/request-context.js";
import { BackendUnavailableError, VersionMismatchError } from "../src/errors.js";
import type { Logger } from "../src/log.js";
import type { TelemetryEvent } from "../src/telemetry.js";

function capture(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(chunk.toString());
      done();
    },
  });
  const log: Logger = pino({ level: "debug" }, stream);
  return {
    log,
    lines: () =>
      out
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const down = () => Promise.reject(new BackendUnavailableError("cache", "The cache failed GET: refused."));
const never = () => new Promise<never>(() => {});

describe("CircuitBreaker", () => {
  it("opens after the threshold of consecutive failures, probes once after the cooldown, closes on success", () => {
    let now = 1000;
    const changes: string[] = [];
    const b = new CircuitBreaker({ threshold: 3, cooldownMs: 500, now: () => now }, (s) => changes.push(s));
    for (let i = 0; i < 2; i++) {
      expect(b.tryAcquire()).toBe(true);
      b.failure();
    }
    b.tryAcquire();
    b.success(); // a success in between starts the count again
    for (let i = 0; i < 3; i++) {
      expect(b.tryAcquire()).toBe(true);
      b.failure();
    }
    expect(b.state).toBe("open");
    expect(b.tryAcquire()).toBe(false);
    now += 499;
    expect(b.tryAcquire()).toBe(false);
    now += 1;
    expect(b.tryAcquire()).toBe(true); // the probe
    expect(b.state).toBe("half-open");
    expect(b.tryAcquire()).toBe(false); // one probe at a time
    b.success();
    expect(b.state).toBe("closed");
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("a failed probe opens it for another cooldown", () => {
    let now = 0;
    const b = new CircuitBreaker({ threshold: 1, cooldownMs: 100, now: () => now });
    b.tryAcquire();
    b.failure();
    now = 100;
    expect(b.tryAcquire()).toBe(true);
    b.failure();
    expect(b.state).toBe("open");
    expect(b.retryAt).toBe(200);
  });
});

describe("BackendGuard", () => {
  let events: TelemetryEvent[];
  let logs: ReturnType<typeof capture>;
  let guard: BackendGuard;
  let probe: () => Promise<void>;

  beforeEach(() => {
    vi.useFakeTimers();
    events = [];
    logs = capture();
    probe = down;
    guard = new BackendGuard({
      backend: "cache",
      label: "the cache (redis)",
      timeoutMs: 100,
      breaker: { threshold: 3, cooldownMs: 1000 },
      telemetry: { emit: (e) => events.push(e) },
      log: logs.log,
      probe: () => probe(),
    });
  });

  afterEach(() => {
    guard.stop();
    expect(vi.getTimerCount()).toBe(0); // no timer is left running after stop
    vi.useRealTimers();
  });

  it("passes results and the backend's own answers through, healthy", async () => {
    await expect(guard.run("get", async () => 42)).resolves.toBe(42);
    const mismatch = new VersionMismatchError("The version differs.");
    await expect(guard.run("set", () => Promise.reject(mismatch))).rejects.toBe(mismatch);
    expect(guard.state).toBe("closed");
    expect(events).toEqual([]);
  });

  it("times a call out at the per-call timeout: 504 timeout, counted, logged with the request id", async () => {
    const p = guard.run("get", never, undefined, { id: "req-1", deadline: Date.now() + 10_000 });
    const check = expect(p).rejects.toMatchObject({ code: "timeout", status: 504, backend: "cache" });
    await vi.advanceTimersByTimeAsync(100);
    await check;
    expect(events).toEqual([{ type: "backend_error", backend: "cache", code: "timeout" }]);
    const line = logs.lines().find((l) => l.msg === "backend call failed")!;
    expect(line).toMatchObject({ reqId: "req-1", backend: "cache", op: "get", code: "timeout", level: 40 });
  });

  it("cuts the timeout to the request's deadline, without blaming the backend", async () => {
    const p = guard.run("get", never, undefined, { id: "req-2", deadline: Date.now() + 30 });
    const check = expect(p).rejects.toBeInstanceOf(BackendTimeoutError);
    await vi.advanceTimersByTimeAsync(30);
    await check;
    for (let i = 0; i < 5; i++) {
      const q = guard.run("get", never, undefined, { id: "r", deadline: Date.now() + 10 });
      const c = expect(q).rejects.toMatchObject({ code: "timeout" });
      await vi.advanceTimersByTimeAsync(10);
      await c;
    }
    expect(guard.state).toBe("closed");
    // A deadline already passed fails at once, before the backend is called.
    let called = false;
    const late = guard.run("get", async () => (called = true), undefined, {
      id: "r",
      deadline: Date.now() - 1,
    });
    await expect(late).rejects.toMatchObject({ code: "timeout" });
    expect(called).toBe(false);
  });

  it("work a request left running after its answer keeps the per-call timeout, not the spent deadline", async () => {
    const request: RequestContext = { id: "req-bg", deadline: Date.now() + 10 };
    let background: Promise<number> | undefined;
    // A repair scheduled by the request runs later, still carrying the request.
    setTimeout(() => (background = guard.run("set", async () => 7, undefined, request)), 50);
    request.answered = true; // the router marks it when the answer is sent
    await vi.advanceTimersByTimeAsync(50);
    await expect(background).resolves.toBe(7);
  });

  it("opens after repeated failures and then refuses at once with backend_unavailable", async () => {
    for (let i = 0; i < 3; i++)
      await expect(guard.run("get", down)).rejects.toMatchObject({ code: "backend_unavailable" });
    expect(guard.state).toBe("open");
    let called = false;
    const err = await guard.run("get", async () => (called = true)).catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).message).toMatch(/failed repeatedly.*tried again in 1s/);
    expect(events).toContainEqual({ type: "breaker", backend: "cache", state: "open" });
    expect(events).toContainEqual({ type: "backend_error", backend: "cache", code: "circuit_open" });
    expect(logs.lines().some((l) => l.msg?.toString().startsWith("circuit opened"))).toBe(true);
  });

  it("closes by itself: the background probe runs after the cooldown, again while it fails", async () => {
    for (let i = 0; i < 3; i++) await guard.run("get", down).catch(() => {});
    let probes = 0;
    probe = () => {
      probes++;
      return probes < 2 ? down() : Promise.resolve();
    };
    await vi.advanceTimersByTimeAsync(1000);
    expect(probes).toBe(1);
    expect(guard.state).toBe("open");
    await vi.advanceTimersByTimeAsync(1000);
    expect(probes).toBe(2);
    expect(guard.state).toBe("closed");
    expect(events.filter((e) => e.type === "breaker").map((e) => (e as { state: string }).state)).toEqual([
      "open",
      "half-open",
      "open",
      "half-open",
      "closed",
    ]);
    await expect(guard.run("get", async () => "back")).resolves.toBe("back");
  });

  it("does not count another backend's failure or a timeout it raised", async () => {
    const storeDown = () =>
      Promise.reject(new BackendUnavailableError("store", "PostgreSQL is unavailable."));
    const storeSlow = () => Promise.reject(new BackendTimeoutError("store", "PostgreSQL did not answer."));
    for (let i = 0; i < 5; i++) {
      await guard.run("get", storeDown).catch(() => {});
      await guard.run("get", storeSlow).catch(() => {});
    }
    expect(guard.state).toBe("closed");
    expect(events).toEqual([]);
  });

  it("never logs what the call carried", async () => {
    const secret = "value-that-must-not-appear";
    await guard
      .run(
        "set",
        async () => {
          void secret;
          throw new BackendUnavailableError("cache", "The cache failed setIfNewer: refused.");
        },
        undefined,
        { id: "req-3", deadline: Date.now() + 1000 },
      )
      .catch(() => {});
    expect(JSON.stringify(logs.lines())).not.toContain(secret);
  });
});
