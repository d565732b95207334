/**
 * Address helpers: CIDR parsing and matching for trustedProxies. IPv4, IPv6 and
 * IPv4-mapped IPv6 (`::ffff:10.0.0.1`) are all handled; matching allocates nothing
 * for IPv4 peers.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  readonly v6: boolean;
  /** 4 or 16 bytes */
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

function v4Bytes(ip: string): Uint8Array | undefined {
  if (!isIPv4(ip)) return undefined;
  return Uint8Array.from(ip.split('.').map(Number));
}

function v6Bytes(ip: string): Uint8Array | undefined {
  if (!isIPv6(ip)) return undefined;
  let s = ip;
  const out = new Uint8Array(16);
  const tailV4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tailV4) {
    const b = v4Bytes(tailV4[1] as string) as Uint8Array;
    s =
      s.slice(0, -(tailV4[1] as string).length) +
      `${(((b[0] as number) << 8) | (b[1] as number)).toString(16)}:${(((b[2] as number) << 8) | (b[3] as number)).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Parse `10.0.0.0/8`, `::1`, `fd00::/8`; undefined when invalid. */
export function parseCidr(s: string): Cidr | undefined {
  const [addr, pfx, extra] = s.trim().split('/');
  if (addr === undefined || extra !== undefined) return undefined;
  const b4 = v4Bytes(addr);
  const bytes = b4 ?? v6Bytes(addr);
  if (bytes === undefined) return undefined;
  const max = bytes.length * 8;
  const prefix = pfx === undefined ? max : /^\d+$/.test(pfx) ? Number(pfx) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { v6: bytes.length === 16, bytes, prefix };
}

/** Parse an address (v4, v6, v4-mapped v6) to bytes; v4-mapped becomes 4 bytes. */
export function addressBytes(ip: string): Uint8Array | undefined {
  if (ip.startsWith('::ffff:') && isIPv4(ip.slice(7))) return v4Bytes(ip.slice(7));
  return v4Bytes(ip) ?? v6Bytes(ip);
}

function matches(c: Cidr, b: Uint8Array): boolean {
  if (c.bytes.length !== b.length) return false;
  let bits = c.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((c.bytes[i] as number) & mask) !== ((b[i] as number) & mask)) return false;
  }
  return true;
}

/**
 * A set of trusted CIDRs with a per-address memo, so the request path pays one Map lookup
 * per peer address instead of parsing it. The memo is bounded.
 */
export class TrustedSet {
  private readonly cidrs: readonly Cidr[];
  private readonly memo = new Map<string, boolean>();
  constructor(cidrs: readonly string[]) {
    this.cidrs = cidrs.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== undefined);
  }
  get empty(): boolean {
    return this.cidrs.length === 0;
  }
  has(ip: string | undefined): boolean {
    if (ip === undefined || this.cidrs.length === 0) return false;
    const hit = this.memo.get(ip);
    if (hit !== undefined) return hit;
    const b = addressBytes(ip);
    const ok = b !== undefined && this.cidrs.some((c) => matches(c, b));
    if (this.memo.size > 10_000) this.memo.clear();
    this.memo.set(ip, ok);
    return ok;
  }
}

/** Listen on host:port; resolves with the bound port (useful with port 0), rejects on EADDRINUSE etc. */
export function listenOn(
  server: import('node:net').Server,
  port: number,
  host: string,
  reusePort = false,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // `reusePort` only when asked: Node 20 ignores the option, and the callers decide (workers).
    server.listen(reusePort ? { port, host, reusePort } : { port, host }, () => {
      server.removeListener('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}
