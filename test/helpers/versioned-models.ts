// A model repository with numeric version folders (<root>/<model>/<n>/) around
// the fake model and FakeBackend engines, served by the real repository,
// service, HTTP app and gRPC server: for the lifecycle tests (index, load,
// unload, version swaps). Each version folder holds self-test data the fake
// engine passes; `modes[version]` makes a version's engines fail instead.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { startGrpcServer, type GrpcServerHandle } from '../../src/api/grpc/grpc-server.js';
import { buildApp } from '../../src/api/http/app.js';
import { CoreInferenceService } from '../../src/service/inference-service.js';
import type { ModelConfig } from '../../src/models/model-config.js';
import type { GpuMemory } from '../../src/models/model-instance.js';
import { ModelRepository } from '../../src/models/model-repository.js';
import { FakeBackend, fakeLogits, uniformImages, type FakeMode } from './fake-backend.js';
import { fakeModelConfig } from './fake-model.js';

export const IMAGE_BYTES = 8 * 8 * 3;

export interface VersionedEngine {
  version: string;
  backend: FakeBackend;
  /** run() calls that started after dispose(): must stay 0 (a drained copy gets no work). */
  runsAfterDispose: number;
}

export interface VersionedRepo {
  root: string;
  app: FastifyInstance;
  service: CoreInferenceService;
  repo: ModelRepository;
  grpc: GrpcServerHandle;
  engines: VersionedEngine[];
  /** Engine behaviour by version folder, read when an engine is created. */
  modes: Record<string, FakeMode | 'load'>;
  /** What the fake GPU query answers. */
  gpus: GpuMemory[];
  /** Engine creation of a version waits for this promise (to see a load in progress). */
  gates: Record<string, Promise<void>>;
  addVersion(model: string, version: number, over?: Partial<ModelConfig>): void;
  close(): Promise<void>;
}

/** Writes <root>/<model>/model.json (model-level) and the version folders. */
export function writeVersionedModel(root: string, model: string, versions: number[], over: Partial<ModelConfig> = {}): void {
  const dir = path.join(root, model);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ ...fakeModelConfig({ name: model }), ...over }));
  for (const v of versions) writeVersionFolder(dir, v);
}

function writeVersionFolder(modelDir: string, v: number): void {
  const dir = path.join(modelDir, String(v));
  mkdirSync(dir, { recursive: true });
  const images = uniformImages([25, 100], IMAGE_BYTES);
  const logits = fakeLogits(images, 2, IMAGE_BYTES, 10);
  writeFileSync(path.join(dir, 'selftest.u8'), images);
  writeFileSync(path.join(dir, 'selftest.json'), JSON.stringify([Array.from(logits.subarray(0, 10)), Array.from(logits.subarray(10, 20))]));
}

export async function versionedRepo(
  models: Record<string, number[]>,
  env: Record<string, string> = {},
  over: Partial<ModelConfig> = {},
  backendKind: 'onnxruntime' | 'cuda' = 'onnxruntime',
): Promise<VersionedRepo> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'swin-versions-'));
  for (const [m, vs] of Object.entries(models)) writeVersionedModel(root, m, vs, over);
  const engines: VersionedEngine[] = [];
  const modes: Record<string, FakeMode | 'load'> = {};
  const gpus: GpuMemory[] = [{ index: 0, memoryFreeBytes: 64 * 2 ** 30 }];
  const gates: Record<string, Promise<void>> = {};
  const config = loadConfig([], {
    MODELS_DIR: root,
    LOG_LEVEL: 'silent',
    SELFTEST_RETRY_MS: '60000',
    REPOSITORY_POLL_SECS: '3600',
    ...env,
  });
  const repo = await ModelRepository.load({
    config,
    logger: pino({ level: 'silent' }),
    gpuInfo: async () => gpus,
    createBackend: async (req) => {
      const version = path.basename(path.dirname(req.path));
      await gates[version];
      const mode = modes[version] ?? 'ok';
      if (mode === 'load') throw new Error(`injected load failure of version ${version}`);
      const backend = new FakeBackend({
        variant: req.variant,
        kind: backendKind,
        imageBytes: IMAGE_BYTES,
        maxBatchSize: req.opts.maxBatchSize,
        delayMs: 2,
        mode,
      });
      const engine: VersionedEngine = { version, backend, runsAfterDispose: 0 };
      const run = backend.run.bind(backend);
      backend.run = (images, n) => {
        if (backend.disposed) engine.runsAfterDispose++;
        return run(images, n);
      };
      engines.push(engine);
      return backend;
    },
  });
  const service = new CoreInferenceService(repo, config);
  const app = await buildApp(config, service, { logger: false });
  await app.ready();
  const grpc = await startGrpcServer(service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
  return {
    root,
    app,
    service,
    repo,
    grpc,
    engines,
    modes,
    gpus,
    gates,
    addVersion: (model, v) => writeVersionFolder(path.join(root, model), v),
    async close() {
      await app.close();
      await grpc.close(1000);
      await service.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
