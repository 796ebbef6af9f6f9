// Docs, examples and evidence must work from any clone: no tracked file names the absolute
// path of the checkout it sits in (captured logs and native error messages used to carry it;
// the addon now prints repository-relative source paths, addon/CMakeLists.txt).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ROOT } from './helpers/reliability-harness.js';

test("no tracked file names this checkout's absolute path", () => {
  let hits = '';
  try {
    hits = execFileSync('git', ['grep', '-n', '-I', '--fixed-strings', `${ROOT}/`], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch (err) {
    if ((err as { status?: number }).status !== 1) throw err; // 1: no match
  }
  assert.equal(hits, '', `replace with paths relative to the repository root:\n${hits}`);
});
