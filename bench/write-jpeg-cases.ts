// Writes the JPEG cases of the hostile corpus (truncated, header only, corrupt Huffman
// table, declared 65000x65000) and the unusual valid JPEGs (1x1, CMYK, grey, progressive,
// EXIF-rotated) into a folder with a manifest of the reply each must get, for
// bench/jpeg_refusal_check.py: the GPU decode path must answer each one as the CPU path does.
//
//   npx tsx bench/write-jpeg-cases.ts [--out bench/.images/jpeg-cases]
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostileCorpus, unusualValidImages } from '../test/fixtures/hostile/generate.js';

async function main(): Promise<void> {
  const i = process.argv.indexOf('--out');
  const out = i >= 0 ? process.argv[i + 1] : 'bench/.images/jpeg-cases';
  const corpus = await hostileCorpus({
    canaryUrl: 'http://127.0.0.1:1/',
    canaryFile: '/nonexistent',
    maxBodyBytes: 16 << 20,
    maxImagesPerRequest: 64,
  });
  const cases = [...corpus, ...(await unusualValidImages())].filter((c) => c.contentType === 'image/jpeg' && !c.query);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const manifest = cases.map((c, k) => ({ file: `${String(k).padStart(2, '0')}.jpg`, name: c.name, expect: c.expect }));
  for (const [k, c] of cases.entries()) await writeFile(join(out, manifest[k].file), c.body);
  await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest, null, 1));
  console.log(`jpeg cases: ${cases.length} in ${out}`);
}

main().catch((err) => {
  console.error(`write-jpeg-cases: ${(err as Error).message}`);
  process.exitCode = 1;
});
