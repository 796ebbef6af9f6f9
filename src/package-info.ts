// Where swin-serve is installed and which version it is: the nearest
// package.json named swin-serve above this file (src/ under tsx, dist/src/
// once built, node_modules/swin-serve/dist/src/ under npx).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PackageInfo {
  /** Folder holding package.json; null when none was found (then version is 0.0.0). */
  root: string | null;
  version: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  cached = { root: null, version: '0.0.0' };
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (!existsSync(p)) continue;
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'swin-serve' && pkg.version) {
      cached = { root: dir, version: pkg.version };
      break;
    }
  }
  return cached;
}
