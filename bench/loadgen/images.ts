// The request bodies of a benchmark: encoded image files read once into memory
// and sent as they are (the server decodes them; the client never does).
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';

export interface BenchImage {
  name: string;
  /** encoded bytes, sent as the request body */
  data: Buffer;
  /** Content-Type of the body */
  mime: string;
}

const MIME: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
};

export async function loadImages(dir: string, max = 0): Promise<BenchImage[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new Error(`cannot read image folder ${dir}: ${(err as Error).message} (build it with: npm run bench:images)`, { cause: err });
  }
  const files = names.filter((n) => MIME[extname(n).toLowerCase()] !== undefined).sort();
  const chosen = max > 0 ? files.slice(0, max) : files;
  if (chosen.length === 0) throw new Error(`no .jpg/.jpeg/.png/.webp files in ${dir}`);
  return Promise.all(
    chosen.map(async (name) => ({ name, data: await readFile(join(dir, name)), mime: MIME[extname(name).toLowerCase()] })),
  );
}

/** Small deterministic PRNG (mulberry32) so runs with the same --seed send the same order and arrivals. */
export function rng(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
