/** A StoreAdapter, and the TableStores it hands out, whose every call passes a BackendGuard. */
import type {
  AuditEntry,
  AuditLog,
  RepairIntent,
  StoreAdapter,
  StoredRow,
  TableMapping,
  TableStore,
  VersionedOp,
  WarmSource,
  WriteOp,
  WriteOptions,
  WriteResult,
} from "../store/adapter.js";
import { Withdrawal } from "../store/withdrawal.js";
import type { BackendGuard } from "./guard.js";
import type { RequestContext } from "./request-context.js";

export class GuardedStore implements StoreAdapter {
  readonly warmSource?: WarmSource;
  readonly auditLog?: AuditLog;

  constructor(
    private readonly inner: StoreAdapter,
    readonly guard: BackendGuard,
  ) {
    const warm = inner.warmSource;
    if (warm) {
      this.warmSource = {
        queryKeys: (sql, limit) => guard.run("warm_query", () => warm.queryKeys(sql, limit)),
        saveHotKeys: (ks, keys) => guard.run("save_hot_keys", () => warm.saveHotKeys(ks, keys)),
        hotKeys: (ks, limit) => guard.run("hot_keys", () => warm.hotKeys(ks, limit)),
      };
    }
    const audit = inner.auditLog;
    if (audit) {
      this.auditLog = {
        read: (q) => guard.run("audit_read", () => audit.read(q)),
        prune: (table, ks, ms, batch) => guard.run("audit_prune", () => audit.prune(table, ks, ms, batch)),
      };
    }
  }

  get kind(): string {
    return this.inner.kind;
  }

  /** Creating or checking a table runs at start-up and reload, outside the breaker: a failure stops them. */
  async table(mapping: TableMapping): Promise<TableStore> {
    return new GuardedTable(await this.inner.table(mapping), this.guard);
  }

  pendingRepairs(
    tables: string[],
    after: { table: string; key: string } | null,
    limit: number,
  ): Promise<RepairIntent[]> {
    return this.guard.run("repairs", () => this.inner.pendingRepairs(tables, after, limit));
  }

  clearRepair(intent: { table: string; key: string; version: number }): Promise<boolean> {
    return this.guard.run("clear_repair", () => this.inner.clearRepair(intent));
  }

  ping(): Promise<void> {
    return this.guard.run("ping", () => this.inner.ping());
  }

  async close(): Promise<void> {
    this.guard.stop();
    await this.inner.close();
  }
}

export class GuardedTable implements TableStore {
  constructor(
    private readonly inner: TableStore,
    private readonly guard: BackendGuard,
  ) {}

  get(key: string, request?: RequestContext): Promise<StoredRow | null> {
    return this.guard.run("get", () => this.inner.get(key), undefined, request);
  }

  getMany(keys: string[], request?: RequestContext): Promise<Map<string, StoredRow>> {
    return this.guard.run("get_many", () => this.inner.getMany(keys), undefined, request);
  }

  write(ops: WriteOp[], options: WriteOptions): Promise<WriteResult[]> {
    // A write that times out while it still waits to be sent is dropped rather than written later.
    const giveUp = new Withdrawal();
    return this.guard.run(
      "write",
      () => this.inner.write(ops, { ...options, withdrawal: giveUp }),
      () => giveUp.withdraw(),
      options.origin?.request,
    );
  }

  applyVersioned(ops: VersionedOp[], audit?: AuditEntry[]): Promise<number> {
    return this.guard.run("apply", () => this.inner.applyVersioned(ops, audit));
  }

  newerThan(ops: { key: string; version: number }[]): Promise<Map<string, number>> {
    return this.guard.run("version", () => this.inner.newerThan(ops));
  }

  settledVersion(key: string): Promise<number> {
    return this.guard.run("version", () => this.inner.settledVersion(key));
  }

  currentVersion(key: string): Promise<number> {
    return this.guard.run("version", () => this.inner.currentVersion(key));
  }

  sampleKeys(n: number): Promise<string[]> {
    return this.guard.run("sample", () => this.inner.sampleKeys(n));
  }

  scanKeys(after: string | null, limit: number): Promise<string[]> {
    return this.guard.run("scan", () => this.inner.scanKeys(after, limit));
  }

  recordRepair(key: string, version: number): Promise<void> {
    return this.guard.run("record_repair", () => this.inner.recordRepair(key, version));
  }

  clearRepair(key: string, version: number): Promise<boolean> {
    return this.guard.run("clear_repair", () => this.inner.clearRepair(key, version));
  }
}
