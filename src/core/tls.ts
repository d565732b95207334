/**
 * TLS material: the config's certificate files read and checked once, in the main thread, into
 * a value that crosses to every worker (PEM text, names, ticket keys). A worker builds its
 * secure contexts from it; a reload reads the files again and hands over a new value, or keeps
 * the old one and says which file is wrong.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Config } from './config.js';

export interface TlsCertificate {
  cert: string;
  key: string;
  /** Lower-case SNI names, exact or `*.domain`. */
  names: string[];
}

export interface TlsMaterial {
  certificates: TlsCertificate[];
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  http2: boolean;
  /** 48 bytes: the same in every worker, so a session resumes on whichever one accepts it. */
  ticketKeys: Buffer;
  maxConcurrentStreams: number;
  maxResetsPerSecond: number;
}

/** A certificate or key that cannot be used: `key` is its config path. */
export class TlsError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${key}: ${message}`);
  }
}

/** The DNS names a certificate is for (subjectAltName, else its CN). */
function namesOf(pem: string): string[] {
  const x = new X509Certificate(pem);
  const sans = (x.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (sans.length > 0) return sans;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
  return cn === undefined ? [] : [cn.toLowerCase()];
}

/**
 * Read and check the config's TLS files. `ticketKeys` are kept from the running material unless
 * the config names a file: a reload must not invalidate every session in flight.
 */
export function loadTls(tls: NonNullable<Config['listen']['tls']>, keep?: Buffer): TlsMaterial {
  const certificates = tls.certificates.map((c, i) => {
    const at = `listen.tls.certificates.${i}`;
    const read = (file: string, key: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (err) {
        throw new TlsError(`${at}.${key}`, `cannot read ${file}: ${(err as Error).message}`);
      }
    };
    const cert = read(c.cert, 'cert');
    const key = read(c.key, 'key');
    try {
      createSecureContext({ cert, key, minVersion: tls.minVersion });
    } catch (err) {
      throw new TlsError(at, `${c.cert} with ${c.key}: ${(err as Error).message}`);
    }
    let names: string[];
    try {
      names = c.serverNames?.map((n) => n.toLowerCase()) ?? namesOf(cert);
    } catch (err) {
      throw new TlsError(`${at}.cert`, `${c.cert}: ${(err as Error).message}`);
    }
    return { cert, key, names };
  });
  let ticketKeys = keep ?? randomBytes(48);
  if (tls.ticketKeys !== null) {
    let b: Buffer;
    try {
      b = readFileSync(tls.ticketKeys);
    } catch (err) {
      throw new TlsError('listen.tls.ticketKeys', `cannot read ${tls.ticketKeys}: ${(err as Error).message}`);
    }
    if (b.length !== 48)
      throw new TlsError('listen.tls.ticketKeys', `${tls.ticketKeys} holds ${b.length} bytes, not 48`);
    ticketKeys = b;
  }
  return {
    certificates,
    minVersion: tls.minVersion,
    http2: tls.http2,
    ticketKeys,
    maxConcurrentStreams: tls.maxConcurrentStreams,
    maxResetsPerSecond: tls.maxResetsPerSecond,
  };
}

/** Whether two materials hold the same certificates (a reload that read unchanged files). */
export function sameCertificates(a: TlsMaterial | null, b: TlsMaterial | null): boolean {
  if (a === null || b === null) return a === b;
  return JSON.stringify(a.certificates) === JSON.stringify(b.certificates);
}

/** The options of the default context (the first certificate). */
export function contextOptions(
  m: TlsMaterial,
  c: TlsCertificate = m.certificates[0] as TlsCertificate,
): SecureContextOptions {
  return { cert: c.cert, key: c.key, minVersion: m.minVersion };
}

/**
 * SNI: a host name to its certificate's context. Exact names first, then `*.domain` for one
 * label below the domain; an unknown name gets the default (first) certificate, as nginx's
 * default_server does.
 */
export class SniContexts {
  private readonly exact = new Map<string, SecureContext>();
  private readonly wild = new Map<string, SecureContext>();
  readonly fallback: SecureContext;

  constructor(m: TlsMaterial) {
    const contexts = m.certificates.map((c) => createSecureContext(contextOptions(m, c)));
    this.fallback = contexts[0] as SecureContext;
    // The first certificate to name a host wins (config order).
    m.certificates.forEach((c, i) => {
      for (const n of c.names) {
        const map = n.startsWith('*.') ? this.wild : this.exact;
        const k = n.startsWith('*.') ? n.slice(2) : n;
        if (!map.has(k)) map.set(k, contexts[i] as SecureContext);
      }
    });
  }

  pick(servername: string): SecureContext {
    const n = servername.toLowerCase();
    const hit = this.exact.get(n);
    if (hit !== undefined) return hit;
    const dot = n.indexOf('.');
    return (dot > 0 ? this.wild.get(n.slice(dot + 1)) : undefined) ?? this.fallback;
  }
}
