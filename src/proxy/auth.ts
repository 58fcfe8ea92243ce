/**
 * Bearer tokens (config `auth`): each grants read, write or admin per keyspace, "*" for the rest.
 * admin ⊃ write ⊃ read. Tokens are compared in constant time and never logged or echoed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { AuthConfig, Permission } from "../config/types.js";
import { ForbiddenError, UnauthorizedError } from "../errors.js";

const rank: Record<Permission, number> = { read: 1, write: 2, admin: 3 };

interface Grant {
  name: string;
  digest: Buffer;
  allow: Record<string, Permission>;
}

export class Authorizer {
  private readonly grants: Grant[];

  constructor(private readonly config: AuthConfig | undefined) {
    this.grants = (config?.tokens ?? []).map((t) => ({
      name: t.name,
      digest: digest(t.token),
      allow: t.allow,
    }));
  }

  get enabled(): boolean {
    return this.grants.length > 0;
  }

  get protectsOps(): boolean {
    return this.enabled && (this.config?.protectOps ?? false);
  }

  /** The caller's token name, or throws 401/403. keyspace undefined means "any keyspace" (ops routes). */
  check(req: IncomingMessage, need: Permission, keyspace: string | undefined): string | undefined {
    if (!this.enabled) return undefined;
    return this.grant(this.identify(req), need, keyspace);
  }

  /**
   * As check(), for the status page: the token may also come as the password of HTTP Basic auth, which a
   * browser sends after its own prompt (the page is a GET with nothing to forge).
   */
  checkPage(req: IncomingMessage, need: Permission): string | undefined {
    if (!this.enabled) return undefined;
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers.authorization ?? "");
    if (!basic) return this.check(req, need, undefined);
    const text = Buffer.from(basic[1]!, "base64").toString("utf8");
    return this.grant(this.find(text.slice(text.indexOf(":") + 1)), need, undefined);
  }

  /** As check(), for a token given by other means than a header (the Redis protocol's AUTH). */
  checkToken(token: string | undefined, need: Permission, keyspace: string | undefined): string | undefined {
    if (!this.enabled) return undefined;
    if (token === undefined) throw new UnauthorizedError();
    return this.grant(this.find(token), need, keyspace);
  }

  /** The name of the token, or throws 401 when no token matches. */
  authenticate(token: string): string {
    return this.find(token).name;
  }

  private grant(grant: Grant, need: Permission, keyspace: string | undefined): string {
    const have =
      keyspace === undefined ? maxPermission(grant.allow) : (grant.allow[keyspace] ?? grant.allow["*"]);
    if (!have || rank[have] < rank[need]) {
      const where = keyspace === undefined ? "this route" : `keyspace ${JSON.stringify(keyspace)}`;
      throw new ForbiddenError(`Token ${JSON.stringify(grant.name)} may not ${need} ${where}.`);
    }
    return grant.name;
  }

  private identify(req: IncomingMessage): Grant {
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new UnauthorizedError();
    return this.find(match[1]!);
  }

  private find(token: string): Grant {
    const given = digest(token);
    let found: Grant | undefined;
    // Compare against every token so the time taken does not tell which one was close.
    for (const g of this.grants) if (timingSafeEqual(g.digest, given) && !found) found = g;
    if (!found) throw new UnauthorizedError("The bearer token is not valid.");
    return found;
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

function maxPermission(allow: Record<string, Permission>): Permission | undefined {
  let best: Permission | undefined;
  for (const p of Object.values(allow)) if (!best || rank[p] > rank[best]) best = p;
  return best;
}
