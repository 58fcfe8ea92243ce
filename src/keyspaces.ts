/** The live keyspaces: config and strategy by name. Replaced entry by entry on reload. */
import type { KeyspaceConfig } from "./config/types.js";
import type { Strategy } from "./strategies/strategy.js";
import type { HotKeys } from "./warm/hot-keys.js";

export interface CheckReportSummary {
  [field: string]: unknown;
}

export interface Keyspace {
  config: KeyspaceConfig;
  strategy: Strategy;
  lastCheck?: CheckReportSummary;
  /** counts reads when the keyspace is warmed from its hot keys */
  hot?: HotKeys;
}

export class KeyspaceRegistry {
  private readonly byName = new Map<string, Keyspace>();

  get(name: string): Keyspace | undefined {
    return this.byName.get(name);
  }

  set(ks: Keyspace): void {
    this.byName.set(ks.config.name, ks);
  }

  delete(name: string): void {
    this.byName.delete(name);
  }

  all(): Keyspace[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
