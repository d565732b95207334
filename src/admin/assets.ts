/** The live page's static files, read once at start from dist/admin/assets (copied by `npm run build`). */
import { readFileSync } from 'node:fs';
import type { StaticAsset } from './server.js';

const FILES: [string, string, string][] = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/dashboard.js', 'dashboard.js', 'text/javascript; charset=utf-8'],
  ['/dashboard.css', 'dashboard.css', 'text/css; charset=utf-8'],
];

export function loadAssets(dir = new URL('./assets/', import.meta.url)): Map<string, StaticAsset> {
  const m = new Map<string, StaticAsset>();
  for (const [path, file, type] of FILES) m.set(path, { type, body: readFileSync(new URL(file, dir)) });
  return m;
}
