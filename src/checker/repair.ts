/**
 * Repairs by the keyspace's policy. Every change is version-guarded, so a repair racing a write can
 * never put an older value over a newer one:
 * - invalidate: a tombstone above the cached version (the next read loads PostgreSQL; a fill older than
 *   the tombstone can not land), or a delete when the versions are equal (an equal-version tombstone does
 *   not replace a value). A missing_write is left alone: invalidating it would discard the only copy of
 *   an acknowledged write.
 * - rewrite: the cache takes PostgreSQL's row at the row's version; an orphan is invalidated (there is
 *   nothing to rewrite it from); a missing_write is restored into PostgreSQL from the cache, at the
 *   cached version, which lands only if PostgreSQL has nothing newer.
 * - report: nothing changes.
 */
import { WRITE_MARKER_MIN_MS, type CacheAdapter, type CacheEntry } from "../cache/adapter.js";
import type { KeyspaceConfig, RepairPolicy } from "../config/types.js";
import type { StoredRow, TableStore } from "../store/adapter.js";
import type { InconsistentKind } from "./types.js";

export interface RepairTarget {
  key: string;
  kind: InconsistentKind;
  entry: CacheEntry;
  row: StoredRow | null;
  /** the highest version PostgreSQL ever gave the key (row or tombstone), when known */
  storeFloor?: number;
}

export class Repairer {
  constructor(
    private readonly ks: KeyspaceConfig,
    private readonly cache: CacheAdapter,
    private readonly store: TableStore,
  ) {}

  /** Whether the policy changes anything for this kind. */
  acts(policy: RepairPolicy, kind: InconsistentKind): boolean {
    if (policy === "report") return false;
    if (policy === "invalidate") return kind !== "missing_write";
    return true;
  }

  /** Applies the policy; true when something was changed. Throws when a backend fails. */
  async repair(policy: RepairPolicy, t: RepairTarget): Promise<boolean> {
    if (!this.acts(policy, t.kind)) return false;
    if (policy === "rewrite") {
      if (t.kind === "missing_write") return this.restore(t);
      if (t.kind !== "orphan" && t.row) return this.rewrite(t.key, t.row, t.entry);
    }
    return this.invalidate(t);
  }

  private async invalidate(t: RepairTarget): Promise<boolean> {
    const above = Math.max(t.row?.version ?? 0, t.storeFloor ?? 0);
    if (above <= t.entry.version) {
      // Same version (or nothing newer known): a tombstone would not replace it, so the entry goes.
      if (above === t.entry.version || t.kind === "mismatch") {
        // Only the entry that was compared: a write may have replaced it since.
        return this.cache.deleteIf(this.ks.name, t.key, t.entry);
      }
      return this.tombstone(t.key, t.entry.version + 1);
    }
    return this.tombstone(t.key, above);
  }

  private async tombstone(key: string, version: number): Promise<boolean> {
    const entry: CacheEntry = { kind: "tombstone", version, freshUntil: 0 };
    // As long as a value would live, so a slow fill that read the old row can not outlive it.
    return this.cache.setIfNewer(this.ks.name, key, entry, Math.max(this.ks.ttlMs, WRITE_MARKER_MIN_MS));
  }

  private async rewrite(key: string, row: StoredRow, cached: CacheEntry): Promise<boolean> {
    const now = Date.now();
    const entry: CacheEntry = {
      kind: "value",
      version: row.version,
      value: row.value,
      freshUntil: now + this.ks.ttlMs,
    };
    // Same version, other value: setIfNewer would keep the cached one, so it goes first (if still there).
    if (cached.version === row.version) await this.cache.deleteIf(this.ks.name, key, cached);
    return this.cache.setIfNewer(this.ks.name, key, entry, this.ks.ttlMs + this.ks.staleGraceMs);
  }

  private async restore(t: RepairTarget): Promise<boolean> {
    const value = t.entry.kind === "value" ? (t.entry.value ?? "null") : null;
    const changed = await this.store.applyVersioned([{ key: t.key, value, version: t.entry.version }]);
    return changed > 0;
  }
}
