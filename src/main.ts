#!/usr/bin/env node
// Entry point: `swin-serve [--flag value ...]`, `node dist/src/main.js ...`
// (see docs/configuration.md); `--help` and `--version` print and exit.
// libuv's thread pool runs sharp's decoding; its size must be fixed before the
// first task is queued, hence this file sets it and only then loads the server.
import os from 'node:os';
import { cliAction, helpText, versionText } from './cli.js';

const action = cliAction(process.argv.slice(2));
if (action !== null) {
  process.stdout.write(action === 'help' ? helpText() : versionText());
} else {
  process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, os.availableParallelism()));
  const { startServer } = await import('./server.js');
  await startServer();
}
