// Entry point: `node dist/src/main.js [--flag value ...]` (see docs/configuration.md).
// libuv's thread pool runs sharp's decoding; its size must be fixed before the
// first task is queued, hence this file sets it and only then loads the server.
import os from 'node:os';

process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, os.availableParallelism()));

const { startServer } = await import('./server.js');
await startServer();
