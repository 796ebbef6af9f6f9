// Reads engines/models/<name>/model.json and checks it against the types in
// model-config.ts, so a wrong file fails at startup with the file and the
// field named ("model.json: architecture.img_size must be a positive integer"),
// not later with a shape error inside an engine.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelConfig } from './model-config.js';

export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelConfigError';
  }
}

type Json = Record<string, unknown>;

class Checker {
  readonly problems: string[] = [];
  constructor(private readonly root: Json) {}

  get(p: string): unknown {
    return p.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Json)[k] : undefined), this.root);
  }
  private bad(p: string, what: string): false {
    this.problems.push(`${p} ${what}`);
    return false;
  }
  object(p: string): boolean {
    const v = this.get(p);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? true : this.bad(p, 'must be an object');
  }
  string(p: string, optional = false): boolean {
    const v = this.get(p);
    if (v === undefined && optional) return true;
    return typeof v === 'string' && v.length > 0 ? true : this.bad(p, 'must be a non-empty string');
  }
  posInt(p: string, optional = false): boolean {
    const v = this.get(p);
    if (v === undefined && optional) return true;
    return Number.isInteger(v) && (v as number) > 0 ? true : this.bad(p, 'must be a positive integer');
  }
  nonNegative(p: string): boolean {
    const v = this.get(p);
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? true : this.bad(p, 'must be a number >= 0');
  }
  oneOf(p: string, values: readonly string[]): boolean {
    return values.includes(this.get(p) as string) ? true : this.bad(p, `must be one of ${values.join(', ')}`);
  }
  numbers(p: string, len?: number, optional = false): boolean {
    const v = this.get(p);
    if (v === undefined && optional) return true;
    const ok = Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x)) && (len === undefined || v.length === len);
    return ok ? true : this.bad(p, len === undefined ? 'must be an array of numbers' : `must be an array of ${len} numbers`);
  }
  check(ok: boolean, p: string, what: string): void {
    if (!ok) this.bad(p, what);
  }
}

/** batching.priority_levels, default_priority_level, default_queue_policy, priority_queue_policy (all optional). */
function checkQueuePolicies(c: Checker): void {
  c.posInt('batching.priority_levels', true);
  const levels = (c.get('batching.priority_levels') as number | undefined) ?? 1;
  if (c.posInt('batching.default_priority_level', true) && c.get('batching.default_priority_level') !== undefined) {
    c.check(
      (c.get('batching.default_priority_level') as number) <= levels,
      'batching.default_priority_level',
      'must be within 1..priority_levels',
    );
  }
  const policy = (p: string) => {
    if (c.get(p) === undefined || !c.object(p)) return;
    for (const k of Object.keys(c.get(p) as Json)) {
      c.check(
        ['max_queue_size', 'default_timeout_ms', 'max_timeout_ms', 'allow_timeout_override', 'timeout_action'].includes(k),
        `${p}.${k}`,
        'is not a queue policy field',
      );
    }
    for (const k of ['max_queue_size', 'default_timeout_ms', 'max_timeout_ms'])
      if (c.get(`${p}.${k}`) !== undefined) c.nonNegative(`${p}.${k}`);
    if (c.get(`${p}.allow_timeout_override`) !== undefined)
      c.check(typeof c.get(`${p}.allow_timeout_override`) === 'boolean', `${p}.allow_timeout_override`, 'must be true or false');
    if (c.get(`${p}.timeout_action`) !== undefined) c.oneOf(`${p}.timeout_action`, ['reject', 'delay']);
  };
  policy('batching.default_queue_policy');
  const per = c.get('batching.priority_queue_policy');
  if (per !== undefined && c.object('batching.priority_queue_policy')) {
    for (const level of Object.keys(per as Json)) {
      c.check(
        /^[1-9]\d*$/.test(level) && Number(level) <= levels,
        `batching.priority_queue_policy.${level}`,
        'is not a level within 1..priority_levels',
      );
      policy(`batching.priority_queue_policy.${level}`);
    }
  }
}

/** version_policy: exactly one of latest {num_versions}, specific {versions}, all {}. */
function checkVersionPolicy(c: Checker): void {
  const p = c.get('version_policy');
  if (p === undefined || !c.object('version_policy')) return;
  const keys = Object.keys(p as Json);
  if (keys.length !== 1 || !['latest', 'specific', 'all'].includes(keys[0])) {
    c.check(false, 'version_policy', 'must have exactly one of latest, specific, all');
    return;
  }
  if (keys[0] === 'latest') c.posInt('version_policy.latest.num_versions');
  if (keys[0] === 'specific') {
    const v = c.get('version_policy.specific.versions');
    c.check(
      Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && (x as number) >= 0),
      'version_policy.specific.versions',
      'must be a non-empty array of version numbers',
    );
  }
  if (keys[0] === 'all') c.object('version_policy.all');
}

export function validateModelConfig(raw: unknown, file: string): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ModelConfigError(`${file}: must hold a JSON object`);
  const c = new Checker(raw as Json);
  c.string('name');
  c.string('version');
  if (c.object('architecture')) {
    c.oneOf('architecture.family', ['swin', 'swinv2']);
    for (const k of ['img_size', 'patch_size', 'window_size', 'embed_dim', 'num_classes']) c.posInt(`architecture.${k}`);
    c.numbers('architecture.depths');
    c.numbers('architecture.num_heads');
  }
  if (c.object('preprocess')) {
    c.oneOf('preprocess.mode', ['squash', 'shorter_side_crop']);
    c.posInt('preprocess.resize');
    c.posInt('preprocess.crop');
    c.oneOf('preprocess.kernel', ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3']);
    c.numbers('preprocess.mean', 3);
    c.numbers('preprocess.std', 3);
    c.numbers('preprocess.background', 3, true);
    c.check(c.get('preprocess.crop') === c.get('architecture.img_size'), 'preprocess.crop', 'must equal architecture.img_size');
    c.check(
      (c.get('preprocess.resize') as number) >= (c.get('preprocess.crop') as number),
      'preprocess.resize',
      'must be >= preprocess.crop',
    );
  }
  const labels = c.get('labels');
  c.check(Array.isArray(labels) && labels.every((l) => typeof l === 'string'), 'labels', 'must be an array of strings');
  c.check(
    Array.isArray(labels) && labels.length === c.get('architecture.num_classes'),
    'labels',
    'must have architecture.num_classes entries',
  );
  if (c.object('input')) {
    c.string('input.name');
    c.oneOf('input.datatype', ['UINT8']);
    c.oneOf('input.layout', ['NHWC']);
  }
  if (c.object('output')) {
    c.string('output.name');
    c.oneOf('output.datatype', ['FP32']);
  }
  if (c.object('batching')) {
    c.posInt('batching.max_batch_size');
    c.nonNegative('batching.max_queue_delay_ms');
    c.posInt('batching.max_queue_size');
    c.posInt('batching.instances');
    c.numbers('batching.preferred_batch_sizes', undefined, true);
    checkQueuePolicies(c);
  }
  c.oneOf('default_variant', ['fold', 'unfold']);
  if (c.object('artifacts')) {
    const arts = c.get('artifacts') as Json;
    for (const [variant, files] of Object.entries(arts)) {
      c.check(variant === 'fold' || variant === 'unfold', `artifacts.${variant}`, 'is not a variant (fold, unfold)');
      if (!c.object(`artifacts.${variant}`)) continue;
      for (const [kind, file] of Object.entries(files as Json)) {
        c.check(
          ['onnxruntime', 'tensorrt', 'cuda'].includes(kind),
          `artifacts.${variant}.${kind}`,
          'is not a backend (onnxruntime, tensorrt, cuda)',
        );
        c.check(
          typeof file === 'string' && file.length > 0 && !path.isAbsolute(file),
          `artifacts.${variant}.${kind}`,
          'must be a path relative to the model folder',
        );
      }
    }
    c.check(Object.keys(arts).length > 0, 'artifacts', 'must name at least one variant');
  }
  if (c.object('selftest')) {
    c.string('selftest.input');
    c.posInt('selftest.count');
    c.string('selftest.expected_logits');
    c.nonNegative('selftest.tolerance.fp32');
    c.nonNegative('selftest.tolerance.fp16');
  }
  const warmup = c.get('warmup');
  c.check(
    warmup === undefined || (Array.isArray(warmup) && warmup.every((b) => Number.isInteger(b) && (b as number) > 0)),
    'warmup',
    'must be an array of positive integers (batch sizes)',
  );
  checkVersionPolicy(c);
  if (c.problems.length > 0) throw new ModelConfigError(`${file}: ${c.problems.join('; ')}`);
  return raw as ModelConfig;
}

export async function readModelConfig(modelDir: string): Promise<ModelConfig> {
  const file = path.join(modelDir, 'model.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ModelConfigError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return validateModelConfig(raw, file);
}
