// A complete service (model repository, batcher, HTTP app) around the fake
// model and FakeBackend engines, for HTTP tests that need no ONNX model.
// The model folder is written to a temporary directory with a self-test that
// the fake engine passes.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Variant } from '../../src/backends/backend.js';
import { loadConfig, type Config } from '../../src/config.js';
import { buildApp } from '../../src/api/http/app.js';
import { CoreInferenceService } from '../../src/service/inference-service.js';
import { ModelRepository } from '../../src/models/model-repository.js';
import type { ModelConfig } from '../../src/models/model-config.js';
import { FakeBackend, fakeLogits, uniformImages, type FakeMode } from './fake-backend.js';
import { fakeModelConfig } from './fake-model.js';
import { pino } from 'pino';

export interface FakeServiceOptions {
  env?: Record<string, string>;
  model?: Partial<ModelConfig>;
  /** Mode of each variant's engine when it is created (before its self-test). */
  modes?: Partial<Record<Variant, FakeMode>>;
  delayMs?: number;
}

export interface FakeService {
  app: FastifyInstance;
  service: CoreInferenceService;
  config: Config;
  backends: Map<Variant, FakeBackend>;
  close(): Promise<void>;
}

export function writeFakeModel(root: string, cfg: ModelConfig): void {
  const dir = path.join(root, cfg.name);
  mkdirSync(dir, { recursive: true });
  const bytes = cfg.architecture.img_size ** 2 * 3;
  const images = uniformImages([0, 125], bytes); // classes 0 and 5
  const logits = fakeLogits(images, 2, bytes, cfg.architecture.num_classes);
  writeFileSync(path.join(dir, cfg.selftest.input), images);
  writeFileSync(
    path.join(dir, cfg.selftest.expected_logits),
    JSON.stringify([...Array(2)].map((_, i) => [...logits.subarray(i * 10, i * 10 + 10)])),
  );
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(cfg, null, 2));
}

export async function fakeService(o: FakeServiceOptions = {}): Promise<FakeService> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'swin-fake-'));
  const cfg = { ...fakeModelConfig(), ...o.model, selftest: { ...fakeModelConfig().selftest, count: 2 } };
  writeFakeModel(root, cfg);
  const config = loadConfig([], { MODELS_DIR: root, LOG_LEVEL: 'silent', SELFTEST_RETRY_MS: '50', ...o.env });
  const backends = new Map<Variant, FakeBackend>();
  const repo = await ModelRepository.load({
    config,
    logger: pino({ level: 'silent' }),
    createBackend: async (req) => {
      const b = new FakeBackend({
        variant: req.variant,
        imageBytes: cfg.architecture.img_size ** 2 * 3,
        numClasses: 10,
        maxBatchSize: req.opts.maxBatchSize,
        delayMs: o.delayMs,
        mode: o.modes?.[req.variant] ?? 'ok',
      });
      backends.set(req.variant, b);
      return b;
    },
  });
  const service = new CoreInferenceService(repo, config);
  const app = await buildApp(config, service, { logger: false });
  await app.ready();
  return {
    app,
    service,
    config,
    backends,
    async close() {
      await app.close();
      await service.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
