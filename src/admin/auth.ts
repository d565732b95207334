/**
 * Bearer-token auth for the admin API. Only SHA-256 hashes are configured; the presented token is
 * hashed and compared in constant time against every configured hash (no early exit that would
 * tell which one was close). Tokens are never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export type Role = 'viewer' | 'operator';
export interface Principal {
  id: string;
  role: Role;
}

export interface TokenEntry {
  id: string;
  sha256: string;
  role: Role;
}

export const sha256Hex = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export class Authenticator {
  private entries: { id: string; hash: Buffer; role: Role }[] = [];

  constructor(tokens: readonly TokenEntry[]) {
    this.setTokens(tokens);
  }

  /** A reload's tokens: the next request is checked against them (a removed token stops working). */
  setTokens(tokens: readonly TokenEntry[]): void {
    this.entries = tokens.map((t) => ({ id: t.id, hash: Buffer.from(t.sha256.toLowerCase(), 'hex'), role: t.role }));
  }

  /** No tokens configured: everyone is an operator (allowed by config only on loopback). */
  get open(): boolean {
    return this.entries.length === 0;
  }

  /** The principal for an Authorization header, or undefined. */
  authenticate(authorization: string | undefined): Principal | undefined {
    if (this.open) return { id: 'local', role: 'operator' };
    if (authorization === undefined) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) return undefined;
    const presented = createHash('sha256')
      .update(m[1] as string, 'utf8')
      .digest();
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.hash) && found === undefined) found = { id: e.id, role: e.role };
    }
    return found;
  }
}

export const allows = (p: Principal, need: Role): boolean => need === 'viewer' || p.role === 'operator';
