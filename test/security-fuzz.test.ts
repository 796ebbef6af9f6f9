// schemathesis (PyPI) against the running server's own /openapi.json, for a
// bounded time: no 5xx, every reply matches the document (status codes,
// content types, schemas), schema-violating requests are rejected.
// scripts/fuzz.sh runs longer (FUZZ_SECONDS); docs/reliability.md quotes it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/reliability-harness.js';

const st = join(ROOT, '.venv/bin/schemathesis');
const missing = !existsSync(st);

test(
  'schemathesis finds no failure',
  {
    skip: missing && !process.env.SWIN_REQUIRE_TOOLS ? 'schemathesis not installed in .venv (scripts/test.sh installs it)' : false,
    timeout: 240_000,
  },
  async () => {
    assert.ok(!missing, 'schemathesis is required (SWIN_REQUIRE_TOOLS is set) but .venv/bin/schemathesis is missing');
    const dir = mkdtempSync(join(tmpdir(), 'swin-fuzz-'));
    try {
      const code = await new Promise<number>((resolve) => {
        const p = spawn('bash', [join(ROOT, 'scripts/fuzz.sh')], {
          cwd: ROOT,
          env: { ...process.env, FUZZ_SECONDS: process.env.FUZZ_SECONDS ?? '45', FUZZ_REPORT_DIR: dir },
          stdio: 'ignore',
        });
        p.on('exit', (c) => resolve(c ?? -1));
      });
      const summary = readFileSync(join(dir, 'summary.txt'), 'utf8');
      const tail = summary.slice(summary.indexOf('SUMMARY'));
      console.log(
        tail
          .split('\n')
          .map((l) => `# ${l}`)
          .join('\n'),
      );
      // What the server logged at error level (its faults, with the request's line): the failing case's cause.
      const log = join(dir, 'server.log');
      const serverErrors = existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l.includes('"level":50'))
            .slice(0, 5)
            .join('\n')
        : '';
      assert.equal(code, 0, `${tail}\nserver errors:\n${serverErrors}`);
      assert.match(tail, /(\d+) generated, \1 passed/);
      assert.doesNotMatch(tail, /Failures:/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
