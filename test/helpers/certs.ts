/** Certificates made at test time with openssl (Debian's): a self-signed one per call. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCert {
  cert: string;
  key: string;
  /** The PEM text, to trust it as a CA in a client. */
  pem: string;
}

let n = 0;

/** A self-signed P-256 certificate for `names` (the first is the CN), valid a day. */
export function makeCert(dir: string, names: string[]): TestCert {
  const id = `${process.pid}-${++n}`;
  const cert = join(dir, `cert-${id}.pem`);
  const key = join(dir, `key-${id}.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${names[0]}`,
      '-addext',
      `subjectAltName=${names.map((d) => `DNS:${d}`).join(',')}`,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}
