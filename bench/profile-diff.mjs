// Compare two profiles written by bench/profile.mjs: µs per request by function, largest gaps first.
// Usage: node bench/profile-diff.mjs [a=sluice] [b=bare] [--top N]
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'results', 'profile');
const argv = process.argv.slice(2);
const top = argv.includes('--top') ? Number(argv[argv.indexOf('--top') + 1]) : 40;
const [an = 'sluice', bn = 'bare'] = argv.filter((x, i) => !x.startsWith('--') && argv[i - 1] !== '--top');
const a = JSON.parse(readFileSync(join(dir, `${an}.json`), 'utf8')).perRequest;
const b = JSON.parse(readFileSync(join(dir, `${bn}.json`), 'utf8')).perRequest;
const sum = (o) =>
  Object.entries(o)
    .filter(([k]) => k !== '(idle) :0')
    .reduce((s, [, v]) => s + v, 0);
console.log(`busy µs/req: ${an} ${sum(a).toFixed(2)}, ${bn} ${sum(b).toFixed(2)}, gap ${(sum(a) - sum(b)).toFixed(2)}`);
const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
keys.delete('(idle) :0');
const rows = [...keys]
  .map((k) => [k, (a[k] ?? 0) - (b[k] ?? 0), a[k] ?? 0, b[k] ?? 0])
  .sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
for (const [k, d, x, y] of rows.slice(0, top))
  console.log(
    `${d >= 0 ? '+' : ''}${d.toFixed(3).padStart(7)}  ${x.toFixed(3).padStart(6)} ${y.toFixed(3).padStart(6)}  ${k}`,
  );
