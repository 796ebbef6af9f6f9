// model.json's priority levels and queue policies (with the service's
// overrides) as the batcher takes them. The vocabulary is Triton's
// dynamic_batching (priority_levels, default_priority_level,
// default_queue_policy, priority_queue_policy), with times in ms.
import type { BatcherOptions, LevelPolicy } from './batcher.js';
import type { Config } from '../config.js';
import { ServeError } from '../errors.js';
import type { BatchingConfig, QueuePolicyConfig } from '../models/model-config.js';

/** model.json batching with the settings that override its priority and default policy applied. */
export function withPolicyOverrides(b: BatchingConfig, o: Config['queuePolicy']): BatchingConfig {
  const policy: QueuePolicyConfig = {
    ...b.default_queue_policy,
    ...(o.defaultTimeoutMs !== undefined && { default_timeout_ms: o.defaultTimeoutMs }),
    ...(o.maxTimeoutMs !== undefined && { max_timeout_ms: o.maxTimeoutMs }),
    ...(o.timeoutAction !== undefined && { timeout_action: o.timeoutAction }),
  };
  return {
    ...b,
    ...(o.priorityLevels !== undefined && { priority_levels: o.priorityLevels }),
    ...(o.defaultPriorityLevel !== undefined && { default_priority_level: o.defaultPriorityLevel }),
    ...(Object.keys(policy).length > 0 && { default_queue_policy: policy }),
  };
}

function levelPolicy(p: QueuePolicyConfig | undefined): Partial<LevelPolicy> {
  if (!p) return {};
  return {
    ...(p.max_queue_size !== undefined && { maxQueueSize: p.max_queue_size }),
    ...(p.default_timeout_ms !== undefined && { defaultTimeoutMs: p.default_timeout_ms }),
    ...(p.max_timeout_ms !== undefined && { maxTimeoutMs: p.max_timeout_ms }),
    ...(p.allow_timeout_override !== undefined && { allowTimeoutOverride: p.allow_timeout_override }),
    ...(p.timeout_action !== undefined && { timeoutAction: p.timeout_action }),
  };
}

/** The batcher's priority options for a model's batching config. */
export function batcherPriorityOptions(b: BatchingConfig): Pick<BatcherOptions, 'priorityLevels' | 'defaultPriority' | 'policies'> {
  const levels = b.priority_levels ?? 1;
  return {
    priorityLevels: levels,
    defaultPriority: Math.min(b.default_priority_level ?? levels, levels),
    policies: Array.from({ length: levels }, (_, i) => ({
      ...levelPolicy(b.default_queue_policy),
      ...levelPolicy(b.priority_queue_policy?.[String(i + 1)]),
    })),
  };
}

/**
 * A request's priority and timeout as every front end reads them (the query
 * string, JSON or multipart fields, Predict fields, KServe parameters):
 * absent or 0 means the model's default. Whether the priority exists is the
 * batcher's call (it knows the model's levels). `names` are the parameter names
 * the client used, for the message.
 */
export function requestPolicy(
  priority: unknown,
  timeoutMs: unknown,
  names: { priority: string; timeout: string },
): { priority?: number; timeoutMs?: number } {
  const num = (v: unknown) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v);
  const p = num(priority);
  const t = num(timeoutMs);
  if (p !== undefined && (typeof p !== 'number' || !Number.isInteger(p) || p < 0)) {
    throw new ServeError(
      'SWIN_BAD_REQUEST',
      `${names.priority} must be a whole number (1 runs first; 0 or absent: the model's default), got ${JSON.stringify(priority).slice(0, 40)}`,
    );
  }
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t < 0)) {
    throw new ServeError(
      'SWIN_BAD_REQUEST',
      `${names.timeout} must be a number >= 0 (0 or absent: the model's default), got ${JSON.stringify(timeoutMs).slice(0, 40)}`,
    );
  }
  return { ...(p ? { priority: p } : {}), ...(t ? { timeoutMs: t } : {}) };
}
