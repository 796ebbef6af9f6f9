// API-key checking shared by HTTP and gRPC. Keys are kept only as SHA-256
// digests; a presented key is hashed and compared with every stored digest by
// crypto.timingSafeEqual, so neither the key length nor the position of the
// first differing byte nor which key matched shows in the timing.
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export class ApiKeyChecker {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = [...new Set(keys)].map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** True when `presented` is one of the keys. Always compares against all of them. */
  check(presented: string | undefined): boolean {
    if (presented === undefined || presented.length === 0) return false;
    const d = digest(presented);
    let ok = false;
    for (const stored of this.digests) ok = timingSafeEqual(d, stored) || ok;
    return ok;
  }

  /** Short stable id of a key for rate-limit buckets and logs: never the key itself. */
  static keyId(presented: string): string {
    return 'key:' + digest(presented).subarray(0, 8).toString('hex');
  }
}

/**
 * The key a client presented: `Authorization: Bearer <key>` (scheme
 * case-insensitive) or `x-api-key: <key>`. Header values may be arrays
 * (repeated headers in HTTP, repeated metadata in gRPC); the first is used.
 */
export function presentedKey(authorization: string | string[] | undefined, xApiKey: string | string[] | undefined): string | undefined {
  const auth = Array.isArray(authorization) ? authorization[0] : authorization;
  if (auth !== undefined) {
    const m = /^\s*bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = Array.isArray(xApiKey) ? xApiKey[0] : xApiKey;
  if (x !== undefined && x.trim().length > 0) return x.trim();
  return undefined;
}
