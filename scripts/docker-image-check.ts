// Checks a running swin-serve from outside (scripts/docker-image-test.sh runs
// it against the built image): /health/ready within 120 s, self-test image 0
// of swin-fmnist as a PNG through POST /classify (top-1 must be the reference
// logits' top-1), and grpc.health.v1 SERVING.
//
//   node --import tsx scripts/docker-image-check.ts HTTP_PORT GRPC_PORT
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import sharp from 'sharp';

const [httpPort, grpcPort] = process.argv.slice(2).map(Number);
if (!httpPort || !grpcPort) throw new Error('usage: docker-image-check.ts HTTP_PORT GRPC_PORT');
const base = `http://127.0.0.1:${httpPort}`;
const dir = 'engines/models/swin-fmnist';

function fail(msg: string): never {
  console.error(`docker-image-check: ${msg}`);
  process.exit(1);
}

const started = Date.now();
for (;;) {
  const r = await fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
  if (r?.status === 200) break;
  if (Date.now() - started > 120_000) fail(`/health/ready not 200 after 120 s (last: ${r?.status ?? 'no answer'})`);
  await new Promise((res) => setTimeout(res, 250));
}
console.log(`docker-image-check: /health/ready 200 after ${Date.now() - started} ms`);

const model = JSON.parse(readFileSync(`${dir}/model.json`, 'utf8')) as { labels: string[]; architecture: { img_size: number } };
const size = model.architecture.img_size;
const raw = readFileSync(`${dir}/swin-fmnist.selftest.u8`).subarray(0, size * size * 3);
const expected = (JSON.parse(readFileSync(`${dir}/swin-fmnist.selftest.logits.json`, 'utf8')) as number[][])[0];
const want = model.labels[expected.indexOf(Math.max(...expected))];
const png = await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
  .png()
  .toBuffer();
const res = await fetch(`${base}/classify?top_k=1`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
const body = (await res.json()) as { model?: string; backend?: string; predictions?: { label: string; score: number }[][] };
if (res.status !== 200) fail(`POST /classify: ${res.status} ${JSON.stringify(body)}`);
const got = body.predictions?.[0]?.[0];
if (body.model !== 'swin-fmnist' || got?.label !== want) fail(`POST /classify: expected ${want}, got ${JSON.stringify(body)}`);
console.log(`docker-image-check: classified as ${got.label} (${got.score.toFixed(3)}) on ${body.backend}`);

const def = loadSync(healthProtoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const Health = (grpc.loadPackageDefinition(def) as any).grpc.health.v1.Health;
const client = new Health(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
const status = await new Promise<string>((resolve, reject) =>
  client.Check({ service: '' }, { deadline: Date.now() + 10_000 }, (err: Error | null, r: { status: string }) =>
    err ? reject(err) : resolve(r.status),
  ),
).catch((err: Error) => fail(`gRPC health: ${err.message}`));
client.close();
if (status !== 'SERVING') fail(`gRPC health: ${status}`);
console.log(`docker-image-check: gRPC health ${status}`);
