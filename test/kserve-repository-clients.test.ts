// Triton's tritonclient (HTTP and gRPC) against the repository extension of the
// real server (src/main.ts, swin-fmnist on onnxruntime, MODEL_CONTROL_MODE=explicit):
// get_model_repository_index, unload_model and load_model as a Triton user calls
// them. Needs the .venv of scripts/test.sh; skips without it unless
// SWIN_REQUIRE_PYTHON_CLIENTS=1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, startServer } from './helpers/reliability-harness.js';

const run = promisify(execFile);
const PYTHON = process.env.SWIN_PYTHON ?? join(ROOT, '.venv/bin/python');
const skip =
  !existsSync(PYTHON) && process.env.SWIN_REQUIRE_PYTHON_CLIENTS !== '1' ? `${PYTHON} not found (scripts/test.sh creates it)` : false;

test('tritonclient: index, unload and load over HTTP and gRPC', { skip, timeout: 180_000 }, async () => {
  const server = await startServer({ MODELS: 'swin-fmnist', BACKEND: 'onnxruntime', MODEL_CONTROL_MODE: 'explicit', LOG_LEVEL: 'warn' });
  try {
    const { stdout } = await run(
      PYTHON,
      [join(ROOT, 'test/clients/check_triton_repository.py'), `127.0.0.1:${server.port}`, `127.0.0.1:${server.grpcPort}`, 'swin-fmnist'],
      { timeout: 150_000 },
    );
    const r = JSON.parse(stdout);
    const ready = { name: 'swin-fmnist', version: '1', state: 'READY', reason: '' };
    const unloaded = { name: 'swin-fmnist', version: '', state: 'UNAVAILABLE', reason: 'unloaded' };
    assert.deepEqual(r.http_index, [ready]);
    // tritonclient's gRPC JSON leaves out fields at their default (the empty reason).
    assert.deepEqual(r.grpc_index, [{ name: 'swin-fmnist', version: '1', state: 'READY' }]);
    assert.deepEqual(r.after_http_unload, [unloaded]);
    assert.equal(r.ready_after_unload, false);
    assert.deepEqual(r.after_grpc_load, [{ name: 'swin-fmnist', version: '1', state: 'READY' }]);
    assert.equal(r.grpc_ready_after_grpc_unload, 'StatusCode.NOT_FOUND');
    assert.equal(r.ready_after_http_load, true);
    assert.match(r.unknown_load, /Unknown model "no-such-model"/);
  } finally {
    server.proc.kill('SIGTERM');
    await Promise.race([server.exited, new Promise((res) => setTimeout(res, 20_000).unref())]);
  }
});
