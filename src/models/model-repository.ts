// The served models and their versions (engines/models/<name>[/<version>]),
// and their lifecycle in Triton's shape: index, load, unload, and in poll mode
// a rescan of the folder. A load builds and self-tests the new copies beside
// the ones serving; requests move to a copy only once it passed, and a
// replaced copy drains the requests it accepted before its engines are
// released, so a reload drops no request. A request resolves its model and
// version once (acquire) and holds that copy until it finishes (release).
// One loaded copy, from load to drain, is model-instance.ts.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { BaseLogger } from 'pino';
import type { Variant } from '../backends/backend.js';
import { artifactPath } from '../backends/backend-factory.js';
import type { EncodedImages, SubmitOptions } from '../batching/batcher.js';
import { loadAddon } from '../native/addon.js';
import { ServeError } from '../errors.js';
import { modelReady } from '../observability/metrics.js';
import { ModelConfigError } from './model-json.js';
import {
  ModelInstances,
  WithdrawnError,
  type GpuMemory,
  type InferOutcome,
  type LoadedModel,
  type RepositoryOptions,
  type VariantSlot,
} from './model-instance.js';
import { compareVersions, readModelVersions, type VersionSource } from './model-versions.js';
import type { ModelStatus } from '../service/service-types.js';

export { VARIANTS, type InferOutcome, type LoadedModel, type RepositoryOptions, type VariantSlot } from './model-instance.js';

/** Memory a GPU copy needs beyond its artifact files (activations, workspaces, CUDA graphs): an estimate. */
export const GPU_HEADROOM_BYTES = 256 * 1024 * 1024;

export type ModelState = 'READY' | 'UNAVAILABLE' | 'LOADING' | 'UNLOADING';

/** One row of the repository index (Triton's RepositoryIndexResponse.ModelIndex). */
export interface IndexEntry {
  name: string;
  version: string;
  state: ModelState;
  reason: string;
}

interface ModelEntry {
  readonly name: string;
  /** Serving copies by version. */
  readonly versions: Map<string, LoadedModel>;
  /** Copies draining after a reload or unload. */
  readonly draining: Set<LoadedModel>;
  /** Versions being loaded now (the index shows them LOADING). */
  readonly loading: Set<string>;
  /** Why the last load of a version failed (its old copy, if any, still serves). */
  readonly failed: Map<string, string>;
}

export class ModelRepository {
  private readonly models = new Map<string, ModelEntry>();
  /** Models being unloaded, while their copies drain (index: UNLOADING). */
  private readonly unloading = new Map<string, ModelEntry>();
  /** Why a model's last load failed, for the index, while it has no copy. */
  private readonly failures = new Map<string, string>();
  /** Load and unload of one model run one after the other. */
  private readonly ops = new Map<string, Promise<unknown>>();
  private readonly instances: ModelInstances;
  private readonly opts: RepositoryOptions;
  private readonly log: BaseLogger;
  private pollTimer?: NodeJS.Timeout;
  private fingerprints = new Map<string, string>();
  private closed = false;

  private constructor(opts: RepositoryOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.instances = new ModelInstances(opts);
  }

  /**
   * Loads the models selected at start (MODELS, else every folder with a model.json or
   * version folders). A bad model.json, or a selected model that does not exist, throws
   * (a configuration mistake); an engine that fails to load or to pass its self-test only
   * leaves that variant (or model) not ready, and it is re-tested later.
   */
  static async load(opts: RepositoryOptions): Promise<ModelRepository> {
    const repo = new ModelRepository(opts);
    const { modelsDir, models } = opts.config;
    const names = models.length > 0 ? models : await discover(modelsDir);
    if (names.length === 0) throw new ModelConfigError(`no models found: no ${modelsDir}/*/model.json`);
    for (const name of names) {
      const dir = path.resolve(modelsDir, name);
      const { versions, missing } = await readModelVersions(dir);
      repo.warnMissing(name, missing);
      await repo.install(name, versions, true);
      repo.fingerprints.set(name, await fingerprint(dir));
    }
    if (opts.config.modelControlMode === 'poll') repo.startPolling();
    return repo;
  }

  /** Every serving copy (every version of every model). */
  list(): LoadedModel[] {
    return [...this.models.values()].flatMap((e) => [...e.versions.values()]);
  }

  /** Models with at least one loaded version (one on its first load is not listed yet). */
  names(): string[] {
    return [...this.models.values()].filter((e) => e.versions.size > 0).map((e) => e.name);
  }

  /**
   * The copy a request for (name, version) uses: the named version, else the newest
   * version with a serving variant (else the newest). Throws SWIN_MODEL_NOT_FOUND /
   * SWIN_MODEL_VERSION_NOT_FOUND.
   */
  get(name: string, version?: string): LoadedModel {
    const e = this.models.get(name);
    if (!e) throw new ServeError('SWIN_MODEL_NOT_FOUND', JSON.stringify(name).slice(0, 100), this.names().join(', ') || 'none');
    const sorted = [...e.versions.keys()].sort(compareVersions);
    if (version !== undefined && version !== '') {
      const m = e.versions.get(version);
      if (!m) throw new ServeError('SWIN_MODEL_VERSION_NOT_FOUND', name, JSON.stringify(version).slice(0, 50), sorted.join(', ') || 'none');
      return m;
    }
    const pick = sorted.map((v) => e.versions.get(v)!).find((m) => m.active !== null) ?? e.versions.get(sorted[0]);
    if (!pick) throw new ServeError('SWIN_MODEL_NOT_READY', name, e.loading.size > 0 ? 'loading' : 'no version loaded');
    return pick;
  }

  /** get(), holding the copy until release(): a copy being replaced waits for it before it unloads. */
  acquire(name: string, version?: string): LoadedModel {
    const m = this.get(name, version);
    m.inflight++;
    return m;
  }

  release(m: LoadedModel): void {
    m.inflight--;
    if (m.inflight === 0 && m.retired) m.onIdle?.();
  }

  status(name: string, version?: string): ModelStatus {
    const m = this.get(name, version);
    return {
      name: m.name,
      version: m.version,
      versions: [...this.models.get(name)!.versions.keys()].sort(compareVersions),
      ready: m.active !== null,
      active_variant: m.active,
      variants: [...m.variants.values()].map((s) => ({
        variant: s.variant,
        backend: s.kind,
        ready: s.ready,
        ...(s.ready ? {} : { reason: s.reason ?? 'not loaded' }),
        ...(s.devices && { devices: s.devices }),
      })),
      // Batching as it is in effect (model.json with the service's overrides).
      config: { ...m.config, batching: m.batching },
    };
  }

  /** Every loaded version of every loaded model has a serving variant (a model still on its first load does not count yet). */
  isReady(): boolean {
    return !this.closed && this.list().every((m) => m.active !== null);
  }

  /** The variant a request would use; throws SWIN_VARIANT_NOT_FOUND / SWIN_MODEL_NOT_READY. */
  resolveVariant(m: LoadedModel, variant: Variant | undefined): VariantSlot {
    // A retired copy still serves the requests that acquired it before it left the map: no check here.
    if (variant !== undefined) {
      const slot = m.variants.get(variant);
      if (!slot) throw new ServeError('SWIN_VARIANT_NOT_FOUND', m.name, String(variant).slice(0, 50), [...m.variants.keys()].join(', '));
      if (!slot.ready || !slot.batcher)
        throw new ServeError('SWIN_MODEL_NOT_READY', m.name, `variant ${variant}: ${slot.reason ?? 'not loaded'}`);
      return slot;
    }
    const slot = m.active === null ? undefined : m.variants.get(m.active);
    if (!slot || !slot.ready || !slot.batcher) {
      const why = [...m.variants.values()].map((s) => `${s.variant}: ${s.reason ?? 'not loaded'}`).join('; ');
      throw new ServeError('SWIN_MODEL_NOT_READY', m.name, why);
    }
    return slot;
  }

  /** n preprocessed images (uint8 NHWC) -> logits, through the variant's batcher of copy m (from acquire). */
  async infer(
    m: LoadedModel,
    variant: Variant | undefined,
    pixels: Uint8Array | EncodedImages,
    n: number,
    opts: SubmitOptions,
  ): Promise<InferOutcome> {
    for (let attempt = 0; ; attempt++) {
      const slot = this.resolveVariant(m, variant);
      try {
        const r = await slot.batcher!.submit(pixels, n, opts);
        return { ...r, variant: slot.variant, backend: slot.kind! };
      } catch (err) {
        // Queued behind a batch that took the variant down: try the variant now serving, once.
        if (err instanceof WithdrawnError && variant === undefined && attempt === 0) continue;
        throw err;
      }
    }
  }

  /** Triton's repository index: every model folder, loaded or not, one row per version. */
  async index(readyOnly = false): Promise<IndexEntry[]> {
    const rows: IndexEntry[] = [];
    const names = new Set([
      ...(await discover(this.opts.config.modelsDir).catch(() => [])),
      ...this.models.keys(),
      ...this.unloading.keys(),
    ]);
    for (const name of [...names].sort()) {
      const e = this.models.get(name) ?? this.unloading.get(name);
      if (!e) {
        rows.push({ name, version: '', state: 'UNAVAILABLE', reason: this.failures.get(name) ?? 'unloaded' });
        continue;
      }
      for (const [version, m] of [...e.versions].sort((a, b) => compareVersions(b[0], a[0]))) {
        const why = [...m.variants.values()].map((s) => `${s.variant}: ${s.reason ?? 'not loaded'}`).join('; ');
        rows.push({
          name,
          version,
          state: m.active !== null ? 'READY' : 'UNAVAILABLE',
          reason: m.active !== null ? (e.failed.get(version) ?? '') : why,
        });
      }
      for (const [v, why] of e.failed)
        if (!e.versions.has(v) && !e.loading.has(v)) rows.push({ name, version: v, state: 'UNAVAILABLE', reason: why });
      for (const v of e.loading) if (!e.versions.has(v)) rows.push({ name, version: v, state: 'LOADING', reason: '' });
      for (const m of e.draining) rows.push({ name, version: m.version, state: 'UNLOADING', reason: '' });
      if (e.versions.size === 0 && e.loading.size === 0 && e.draining.size === 0 && e.failed.size === 0)
        rows.push({ name, version: '', state: 'UNAVAILABLE', reason: this.failures.get(name) ?? 'unloaded' });
    }
    return readyOnly ? rows.filter((r) => r.state === 'READY') : rows;
  }

  /**
   * Loads (or reloads) a model folder: the versions its policy keeps are loaded and
   * self-tested beside the copies serving; each takes over only when it passed.
   * Throws SWIN_MODEL_LOAD_FAILED naming every version that did not, after the
   * others took over; a failed version's old copy keeps serving.
   */
  loadModel(name: string): Promise<void> {
    return this.serial(name, async () => {
      const dir = await this.modelDir(name);
      let sources;
      try {
        sources = await readModelVersions(dir);
      } catch (err) {
        if (!(err instanceof ModelConfigError)) throw err;
        this.noteFailure(name, err.message);
        throw new ServeError('SWIN_MODEL_LOAD_FAILED', name, err.message);
      }
      this.warnMissing(name, sources.missing);
      const failed = await this.install(name, sources.versions, false);
      this.fingerprints.set(name, await fingerprint(dir));
      if (failed.length > 0) throw new ServeError('SWIN_MODEL_LOAD_FAILED', name, failed.join('; '));
    });
  }

  /** Takes a model out of service: new requests get 404, accepted ones finish, then its engines are released. */
  unloadModel(name: string): Promise<void> {
    return this.serial(name, async () => {
      const e = this.models.get(name);
      if (!e) {
        await this.modelDir(name); // 404 for a folder that does not exist; unloading an unloaded model is fine
        return;
      }
      // Out of the map first: new requests get 404 at once; the index shows the draining copies.
      const copies = [...e.versions.values()];
      e.versions.clear();
      this.models.delete(name);
      this.unloading.set(name, e);
      try {
        await Promise.all(copies.map((m) => this.drain(e, m)));
      } finally {
        this.unloading.delete(name);
      }
      this.fingerprints.delete(name);
      for (const m of copies)
        for (const s of m.variants.values()) if (s.kind) modelReady.set({ model: name, variant: s.variant, backend: s.kind }, 0);
      this.log.info({ model: name }, `model ${name} unloaded`);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.instances.stop();
    await Promise.allSettled([...this.ops.values()]);
    const all = [...this.models.values(), ...this.unloading.values()].flatMap((e) => [...e.versions.values(), ...e.draining]);
    await Promise.all(all.map((m) => this.instances.retire(m)));
  }

  /**
   * Builds every version in `sources` beside what serves and swaps each in when it passed;
   * versions no longer wanted drain and unload. Returns why versions failed. `atStart`: a
   * version that fails with nothing else of the model serving is kept (not ready, re-tested
   * later, the server not ready meanwhile), as before there were loads; later a failed load
   * leaves nothing behind but its reason.
   */
  private async install(name: string, sources: VersionSource[], atStart: boolean): Promise<string[]> {
    let e = this.models.get(name);
    if (!e) {
      e = { name, versions: new Map(), draining: new Set(), loading: new Set(), failed: new Map() };
      this.models.set(name, e);
    }
    const failed: string[] = [];
    const replaced: LoadedModel[] = [];
    for (const src of sources) e.loading.add(src.version);
    for (const src of sources) {
      try {
        await this.checkGpuMemory(e, src);
        const m = await this.instances.create(name, src.version, src.dir, { ...src.config, name });
        const old = e.versions.get(src.version);
        if (m.active === null) {
          const why = [...m.variants.values()].map((s) => `${s.variant}: ${s.reason ?? 'not loaded'}`).join('; ');
          failed.push(`version ${src.version}: ${why}`);
          e.failed.set(src.version, `last load failed: ${why}`);
          const serving = [...e.versions.values()].some((x) => x.active !== null);
          this.log.error(
            { model: name, version: src.version },
            `model ${name} version ${src.version} failed to load${serving ? '; the copies loaded before keep serving' : ''}: ${why}`,
          );
          if (serving || !atStart) await this.instances.retire(m);
          else e.versions.set(src.version, m);
          continue;
        }
        e.failed.delete(src.version);
        e.versions.set(src.version, m);
        if (old) replaced.push(old);
        this.log.info(
          { model: name, version: src.version },
          `model ${name} version ${src.version} ${old ? 'reloaded; the previous copy drains' : 'loaded'}`,
        );
      } catch (err) {
        if (!(err instanceof ServeError)) throw err;
        failed.push(`version ${src.version}: ${err.message}`);
        e.failed.set(src.version, `last load failed: ${err.message}`);
        this.log.error({ model: name, version: src.version }, `model ${name} version ${src.version} not loaded: ${err.message}`);
      } finally {
        e.loading.delete(src.version);
      }
    }
    // Versions the policy no longer keeps go only once the wanted ones loaded: until then they serve.
    const wanted = new Set(sources.map((s) => s.version));
    for (const [v, m] of e.versions) {
      if (!wanted.has(v) && failed.length === 0) {
        e.versions.delete(v);
        replaced.push(m);
      }
    }
    if (failed.length > 0 && e.versions.size === 0) this.noteFailure(name, failed.join('; '));
    else this.failures.delete(name);
    if (e.versions.size === 0 && e.draining.size === 0 && replaced.length === 0) this.models.delete(name);
    await Promise.all(replaced.map((m) => this.drain(e, m)));
    return failed;
  }

  private async drain(e: ModelEntry, m: LoadedModel): Promise<void> {
    e.draining.add(m);
    try {
      await this.instances.retire(m);
    } finally {
      e.draining.delete(m);
    }
    this.log.info({ model: e.name, version: m.version }, `model ${e.name} version ${m.version}: previous copy drained and released`);
  }

  /**
   * A second copy of a model on the GPU (a reload, or another version) needs the memory of
   * its engine files plus GPU_HEADROOM_BYTES free on every GPU it would use; refused otherwise.
   */
  private async checkGpuMemory(e: ModelEntry, src: VersionSource): Promise<void> {
    // The kind that actually runs (backend.kind): a GPU copy now means a GPU copy next.
    const gpuSlots = [...e.versions.values()]
      .flatMap((m) => [...m.variants.values()])
      .filter((s) => s.backend && (s.backend.kind === 'tensorrt' || s.backend.kind === 'cuda'));
    if (gpuSlots.length === 0) return;
    let bytes = GPU_HEADROOM_BYTES;
    const counted = new Set<string>();
    for (const s of gpuSlots) {
      const file = s.kind && !counted.has(s.variant) ? artifactPath(src.dir, src.config, s.variant, s.kind) : undefined;
      counted.add(s.variant);
      if (file)
        bytes += await stat(file).then(
          (st) => st.size,
          () => 0,
        );
    }
    const gpus = await this.gpuMemory();
    const used = this.opts.config.devices.length > 0 ? gpus.filter((g) => this.opts.config.devices.includes(g.index)) : gpus;
    const short = used.find((g) => g.memoryFreeBytes < bytes);
    if (short) {
      const mib = (b: number) => Math.round(b / 1048576);
      throw new ServeError(
        'SWIN_MODEL_LOAD_FAILED',
        e.name,
        `not enough free GPU memory for another copy: about ${mib(bytes)} MiB needed (engine files + ${mib(GPU_HEADROOM_BYTES)} MiB), GPU ${short.index} has ${mib(short.memoryFreeBytes)} MiB free; the loaded copy keeps serving`,
      );
    }
  }

  private async gpuMemory(): Promise<GpuMemory[]> {
    if (this.opts.gpuInfo) return this.opts.gpuInfo();
    const loaded = loadAddon();
    return loaded.addon ? loaded.addon.gpuInfo() : [];
  }

  private async modelDir(name: string): Promise<string> {
    const dir = path.resolve(this.opts.config.modelsDir, name);
    const ok =
      !name.includes('/') &&
      !name.includes('\\') &&
      !name.startsWith('.') &&
      (await stat(dir).then(
        (s) => s.isDirectory(),
        () => false,
      ));
    if (!ok)
      throw new ServeError(
        'SWIN_MODEL_NOT_FOUND',
        JSON.stringify(name).slice(0, 100),
        (await discover(this.opts.config.modelsDir).catch(() => [])).join(', ') || 'none',
      );
    return dir;
  }

  private serial<T>(name: string, op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new ServeError('SWIN_SHUTTING_DOWN'));
    const run = (this.ops.get(name) ?? Promise.resolve()).catch(() => undefined).then(op);
    this.ops.set(name, run);
    void run
      .finally(() => {
        if (this.ops.get(name) === run) this.ops.delete(name);
      })
      .catch(() => undefined);
    return run;
  }

  private noteFailure(name: string, why: string): void {
    this.failures.set(name, why);
    this.log.error({ model: name }, `model ${name} not loaded: ${why}`);
  }

  private warnMissing(name: string, missing: string[]): void {
    if (missing.length > 0)
      this.log.warn(
        { model: name, versions: missing },
        `model ${name}: version_policy names versions without a folder: ${missing.join(', ')}`,
      );
  }

  /** Poll mode: new folders load, removed ones unload, changed ones reload (the swap drops no request). */
  private startPolling(): void {
    const ms = this.opts.config.repositoryPollSecs * 1000;
    let running = false; // a slow load must not stack rescans behind it
    this.pollTimer = setInterval(() => {
      if (running) return;
      running = true;
      void this.poll()
        .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'repository poll failed'))
        .finally(() => (running = false));
    }, ms);
    this.pollTimer.unref();
  }

  /** One rescan of MODELS_DIR (MODELS, when set, limits which folders count). */
  async poll(): Promise<void> {
    const selected = this.opts.config.models;
    const found = (await discover(this.opts.config.modelsDir)).filter((n) => selected.length === 0 || selected.includes(n));
    for (const name of this.names()) if (!found.includes(name)) await this.unloadModel(name).catch(() => undefined);
    for (const name of found) {
      const print = await fingerprint(path.resolve(this.opts.config.modelsDir, name));
      if (this.fingerprints.get(name) === print) continue; // unchanged (a failed load is not retried until it changes)
      this.fingerprints.set(name, print);
      await this.loadModel(name).catch(() => undefined); // logged, and in the index
    }
  }
}

/** Model folders: those with a model.json or numeric version folders. */
async function discover(modelsDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(modelsDir);
  } catch (err) {
    throw new ModelConfigError(`MODELS_DIR ${modelsDir}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const names: string[] = [];
  for (const e of entries.sort()) {
    const dir = path.join(modelsDir, e);
    if (
      await stat(path.join(dir, 'model.json')).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      names.push(e);
    else if (
      await readdir(dir).then(
        (xs) => xs.some((x) => /^\d+$/.test(x)),
        () => false,
      )
    )
      names.push(e);
  }
  return names;
}

/** Names, sizes and modification times of a model folder's files, two levels deep: what poll mode compares. */
async function fingerprint(dir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const x of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, x.name);
      if (x.isDirectory()) {
        if (depth < 1) await walk(p, depth + 1);
        continue;
      }
      const s = await stat(p).catch(() => null);
      if (s) parts.push(`${path.relative(dir, p)}:${s.size}:${s.mtimeMs}`);
    }
  };
  await walk(dir, 0);
  return parts.join('|');
}
