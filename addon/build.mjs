#!/usr/bin/env node
// Builds the native addon into addon/build/Release/swin_addon.node with cmake-js.
//
//   node addon/build.mjs                 build; exit 1 on failure   (npm run build:addon)
//   node addon/build.mjs --if-possible   never fails                (npm install hook)
//   node addon/build.mjs --debug         Debug configuration
//
// --if-possible is for installs: where cmake or a C++ compiler is missing, or
// the build fails, it says so in one line, writes the reason to
// addon/build/BUILD-FAILED.txt (the service's log quotes it) and exits 0; the
// service then runs on onnxruntime. SWIN_SKIP_ADDON=1 skips the build.
// Optional pieces are found by CMake: CUDAToolkit_ROOT (or nvcc on PATH),
// TENSORRT_ROOT; see docs/addon.md.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const addonDir = dirname(fileURLToPath(import.meta.url));
const buildDir = join(addonDir, 'build');
const failureFile = join(buildDir, 'BUILD-FAILED.txt');
const args = new Set(process.argv.slice(2));
const soft = args.has('--if-possible');

function giveUp(reason, log = '') {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(failureFile, `${reason}\n${log ? `\n${log}` : ''}`);
  if (soft) {
    console.warn(`swin-serve: native addon not built (${reason}); the service will use onnxruntime. Details: ${failureFile}`);
    process.exit(0);
  }
  console.error(`swin-serve: native addon build failed: ${reason}`);
  process.exit(1);
}

function works(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { stdio: 'ignore' });
  return r.status === 0;
}

if (process.env.SWIN_SKIP_ADDON === '1') giveUp('SWIN_SKIP_ADDON=1');
if (!works('cmake', ['--version'])) giveUp('cmake not found (apt-get install cmake)');
const cxx = process.env.CXX || 'c++';
if (!works(cxx, ['--version'])) giveUp(`no C++ compiler (${cxx}) found (apt-get install g++)`);

let cmakeJs;
try {
  cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
} catch {
  giveUp('the cmake-js package is not installed (npm install)');
}

const cmd = [cmakeJs, 'build', '--directory', addonDir, '--out', buildDir, '--parallel', String(availableParallelism())];
if (args.has('--debug')) cmd.push('--debug');
// In soft mode the output is kept for the failure file and only the lines that
// say what was found are shown; otherwise it streams.
const r = spawnSync(process.execPath, cmd, { stdio: soft ? 'pipe' : 'inherit', encoding: 'utf8' });
const out = soft ? `${r.stdout ?? ''}${r.stderr ?? ''}` : '';
if (soft) {
  for (const line of out.split('\n')) {
    if (/^-- (CUDA|cuBLASLt|nvcc|TensorRT|CUDA engine|nvJPEG)/.test(line)) console.log(`swin-serve addon: ${line.slice(3)}`);
  }
}
if (r.status !== 0) giveUp(`cmake-js exited with ${r.status ?? r.signal}`, out.slice(-20000));
rmSync(failureFile, { force: true });
console.log(`swin-serve: native addon built: ${join(buildDir, 'Release', 'swin_addon.node')}`);
