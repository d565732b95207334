/**
 * Parity with nginx split_clients: for the same keys and percentages, nginx and sluice choose the
 * same pool. Runs only where nginx is installed (it is optional; `npm run bench:setup` installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { bucketOf } from '../../src/data/murmur.js';
import { makeTable, poolNameOf } from '../../src/data/table.js';
import { poolForBucket } from '../../src/data/select.js';
import { deadPort } from '../helpers/upstream.js';

const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => spawnSync(p, ['-v']).status === 0);
const WEIGHTS = [0.01, 10, 33.33, 50, 87.5];

describe.skipIf(nginxBin === undefined)('split parity with nginx split_clients', () => {
  let proc: ChildProcess;
  let port: number;

  beforeAll(async () => {
    port = await deadPort();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-nginx-'));
    const maps = WEIGHTS.map((w, i) => `split_clients "$http_x_key" $p${i} { ${w}% green; * blue; }`).join('\n');
    const body = WEIGHTS.map((_, i) => `$p${i}`).join(' ');
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
${maps}
server { listen 127.0.0.1:${port}; location / { return 200 "${body}"; } } }`,
    );
    proc = spawn(nginxBin as string, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      try {
        await request(`http://127.0.0.1:${port}/`).then((r) => r.body.text());
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('nginx did not start');
  });
  afterAll(() => {
    proc?.kill('SIGTERM');
  });

  it('chooses the same pool as nginx for 2,000 keys at every weight', async () => {
    let mismatches = 0;
    for (let k = 0; k < 2000; k++) {
      const key = k % 2 === 0 ? `10.${k >> 8}.${k & 255}.${(k * 7) & 255}` : `user-${k * 7919}`;
      const r = await request(`http://127.0.0.1:${port}/`, { headers: { 'x-key': key } });
      const theirs = (await r.body.text()).split(' ');
      WEIGHTS.forEach((w, i) => {
        const ours = poolNameOf(poolForBucket(makeTable(1, 'blue', { blue: 100 - w, green: w }), bucketOf(key)));
        if (ours !== theirs[i]) mismatches++;
      });
    }
    expect(mismatches).toBe(0);
  });
});
