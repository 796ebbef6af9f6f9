// The standard gRPC error model seen by a client we did not write: grpcio with
// grpcio-status reads google.rpc.Status from grpc-status-details-bin, with
// ErrorInfo (our code as reason) and RetryInfo on a full queue. The full queue
// is a real Batcher's refusal; the server is the real gRPC server over the fake
// service. Runs from the Python venv scripts/test.sh builds; skips without it
// unless SWIN_REQUIRE_PYTHON_CLIENTS=1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Batcher } from '../src/batching/batcher.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import type { ClassifyResult, RequestOptions } from '../src/service/service-types.js';
import { FakeService } from './helpers/kserve-fake-service.js';
import { ROOT } from './helpers/reliability-harness.js';

const PYTHON = process.env.SWIN_PYTHON ?? join(ROOT, '.venv/bin/python');
const skip =
  !existsSync(PYTHON) && process.env.SWIN_REQUIRE_PYTHON_CLIENTS !== '1' ? `${PYTHON} not found (scripts/test.sh creates it)` : false;

/** Model "fake" sits behind a batcher whose one-image queue is already taken. */
class FullQueueService extends FakeService {
  readonly batcher = new Batcher({
    model: 'fake',
    variant: 'fold',
    backend: 'onnxruntime',
    maxBatchSize: 1,
    maxQueueDelayMs: 1,
    maxQueueSize: 1,
    instances: 1,
    imageBytes: 48,
    numClasses: 3,
    run: async () => new Float32Array(3),
  });
  readonly held = this.batcher.reserve(1);

  override async classify(model: string | undefined, images: Buffer[], opts: RequestOptions): Promise<ClassifyResult> {
    this.getModel(model ?? 'fake');
    this.batcher.reserve(images.length);
    return super.classify(model, images, opts);
  }
}

test('grpcio + grpcio-status read ErrorInfo and RetryInfo from grpc-status-details-bin', { skip, timeout: 120_000 }, async () => {
  const service = new FullQueueService();
  const server = await startGrpcServer(service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
  try {
    const { stdout } = await promisify(execFile)(
      PYTHON,
      [join(ROOT, 'test/clients/check_grpcio_status.py'), '--grpc', `127.0.0.1:${server.port}`],
      { timeout: 100_000 },
    ).catch((err) => {
      throw new Error(`check_grpcio_status.py failed:\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
    });
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!);
    assert.deepEqual(r, {
      queue_full: {
        code: 'UNAVAILABLE',
        details: 'Queue of model fake is full (1 requests); retry later',
        status_code: 14,
        error_info: { reason: 'SWIN_QUEUE_FULL', domain: 'swin-serve', metadata: { model: 'fake', max_queue_size: '1' } },
        retry_delay_s: 1,
      },
      unknown_model: {
        code: 'NOT_FOUND',
        details: 'Unknown model nope; loaded models: fake',
        status_code: 5,
        error_info: { reason: 'SWIN_MODEL_NOT_FOUND', domain: 'swin-serve', metadata: {} },
        retry_delay_s: null,
      },
    });
  } finally {
    service.held();
    await service.batcher.close();
    await server.close(1000);
  }
});
