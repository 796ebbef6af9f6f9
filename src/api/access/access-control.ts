// The one decision "may this request proceed?", shared by the HTTP hooks and
// the gRPC interceptor: authentication (API keys), then per-client rate
// limiting. Protocol code only extracts headers/metadata and renders the
// ServeError this returns.
import { ServeError } from '../../errors.js';
import type { AccessConfig } from './access-config.js';
import { ApiKeyChecker, presentedKey } from './api-keys.js';
import { RateLimiter, type TakeResult } from './token-bucket.js';

/** Where rate-limit tokens come from: this thread's buckets, or main's (a front-end worker asks it). */
export interface TokenSource {
  take(client: string): TakeResult | Promise<TakeResult>;
}

/** check()'s answer: at once, or later when the tokens are counted on another thread. */
export type AccessDecision = ServeError | null | Promise<ServeError | null>;

export interface AccessRequest {
  /** Health and metrics probes: exempt from rate limiting, and from auth when so configured. */
  kind: 'health' | 'metrics' | 'api';
  authorization: string | string[] | undefined;
  xApiKey: string | string[] | undefined;
  /** Remote address, used as the client id when no valid key was presented. */
  remoteAddress: string | undefined;
}

export class AccessController {
  private checker: ApiKeyChecker;
  readonly limiter: TokenSource | null;

  /** `tokens`: where RATE_LIMIT_RPS's buckets are (default: a RateLimiter of this thread's own). */
  constructor(
    readonly config: AccessConfig,
    tokens?: TokenSource,
  ) {
    this.checker = new ApiKeyChecker(config.apiKeys);
    this.limiter = config.rateLimitRps > 0 ? (tokens ?? new RateLimiter(config.rateLimitRps, config.rateLimitBurst)) : null;
  }

  get keys(): ApiKeyChecker {
    return this.checker;
  }

  /** Replaces the accepted keys (SIGHUP re-reads AUTH_API_KEYS_FILE); requests after it see the new set. */
  reloadKeys(apiKeys: readonly string[]): void {
    this.checker = new ApiKeyChecker(apiKeys);
  }

  /** null when the request may proceed, else the error to answer with (a Promise when the tokens are main's). */
  check(req: AccessRequest): AccessDecision {
    const probe = req.kind !== 'api';
    const exempt = (req.kind === 'health' && this.config.publicHealth) || (req.kind === 'metrics' && this.config.publicMetrics);
    if (!this.keys.enabled) return probe || this.limiter === null ? null : this.limit(clientOf(undefined, req.remoteAddress));
    if (exempt) return null;
    const key = presentedKey(req.authorization, req.xApiKey);
    const valid = this.keys.check(key);
    const unauthenticated = valid ? null : new ServeError('SWIN_UNAUTHENTICATED');
    if (probe || this.limiter === null) return unauthenticated;
    // Failed attempts are charged to the remote address, so guessing keys is rate limited too.
    const denied = this.limit(clientOf(valid ? key : undefined, req.remoteAddress));
    return denied instanceof Promise ? denied.then((d) => d ?? unauthenticated) : (denied ?? unauthenticated);
  }

  private limit(client: string): AccessDecision {
    const r = this.limiter!.take(client);
    return r instanceof Promise ? r.then(refusal) : refusal(r);
  }
}

function refusal(r: TakeResult): ServeError | null {
  return r.allowed ? null : new ServeError('SWIN_RATE_LIMITED').withRetryAfter(r.retryAfterSeconds);
}

/**
 * The client a request counts for, as the rate limiter names it: its API key's id when it
 * presents one, else its remote address. Decode admission takes turns by it
 * (src/decode-gate.ts). Call it after auth has accepted the request (a wrong key is then
 * impossible; with auth off a presented key still names the client).
 */
export function requestClient(
  authorization: string | string[] | undefined,
  xApiKey: string | string[] | undefined,
  remoteAddress: string | undefined,
): string {
  return clientOf(presentedKey(authorization, xApiKey), remoteAddress);
}

function clientOf(key: string | undefined, remoteAddress: string | undefined): string {
  return key !== undefined ? ApiKeyChecker.keyId(key) : 'ip:' + (remoteAddress ?? 'unknown');
}
