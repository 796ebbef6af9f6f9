// Which versions of a model folder serve. A model is either one folder
// (engines/models/<name>/model.json + artifacts: one version, named by
// model.json "version") or a folder of numeric version folders
// (<name>/<n>/ with the artifacts and self-test data of version n). A version
// folder's own model.json, when present, replaces the model-level one for that
// version; without one it uses <name>/model.json with "version" set to n.
// The model-level (else the newest version's) version_policy picks which serve.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ModelConfig, VersionPolicy } from './model-config.js';
import { ModelConfigError, readModelConfig } from './model-json.js';

export interface VersionSource {
  version: string;
  /** Folder the version's artifacts and self-test files are resolved against. */
  dir: string;
  config: ModelConfig;
}

export interface ModelVersions {
  versions: VersionSource[];
  /** Versions the policy names that have no folder (logged, not fatal). */
  missing: string[];
}

const NUMERIC = /^\d+$/;

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** Numeric sub-folders of a model folder, ascending. */
export async function versionFolders(modelDir: string): Promise<number[]> {
  let entries;
  try {
    entries = await readdir(modelDir, { withFileTypes: true });
  } catch (err) {
    throw new ModelConfigError(`${modelDir}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return entries
    .filter((e) => e.isDirectory() && NUMERIC.test(e.name))
    .map((e) => Number(e.name))
    .sort((a, b) => a - b);
}

/** The versions of `modelDir` that the version policy keeps; throws ModelConfigError for a bad model.json. */
export async function readModelVersions(modelDir: string): Promise<ModelVersions> {
  const numbers = await versionFolders(modelDir);
  const topFile = path.join(modelDir, 'model.json');
  const top = (await isFile(topFile)) ? await readModelConfig(modelDir) : null;
  if (numbers.length === 0) {
    if (!top) throw new ModelConfigError(`${topFile}: cannot read (ENOENT) and there are no version folders`);
    return { versions: [{ version: top.version, dir: modelDir, config: top }], missing: [] };
  }
  const all: VersionSource[] = [];
  for (const n of numbers) {
    const dir = path.join(modelDir, String(n));
    const own = (await isFile(path.join(dir, 'model.json'))) ? await readModelConfig(dir) : null;
    const cfg = own ?? top;
    if (!cfg) throw new ModelConfigError(`${path.join(dir, 'model.json')}: cannot read (ENOENT) and ${topFile} does not exist either`);
    // The folder name is the version; a "version" field inside says nothing more.
    all.push({ version: String(n), dir, config: { ...cfg, version: String(n) } });
  }
  const policy = top?.version_policy ?? all[all.length - 1].config.version_policy;
  return applyPolicy(all, policy);
}

/** Triton's default is the latest version only. */
export function applyPolicy(all: VersionSource[], policy: VersionPolicy | undefined): ModelVersions {
  if (!policy || 'latest' in policy) {
    const n = policy && 'latest' in policy ? policy.latest.num_versions : 1;
    return { versions: all.slice(-n), missing: [] };
  }
  if ('all' in policy) return { versions: all, missing: [] };
  const wanted = policy.specific.versions.map(String);
  return {
    versions: all.filter((v) => wanted.includes(v.version)),
    missing: wanted.filter((w) => !all.some((v) => v.version === w)),
  };
}

/** Versions newest first: numeric order where both are numbers, else string order. */
export function compareVersions(a: string, b: string): number {
  if (NUMERIC.test(a) && NUMERIC.test(b)) return Number(b) - Number(a);
  return b.localeCompare(a);
}
