// Unknown request fields are refused, never ignored: a misspelled `?topK=3`
// or `"topk": 3` would otherwise be answered with defaults the client did not
// ask for. One check for every front end that can see field names (HTTP query
// strings, /classify JSON and multipart fields, KServe REST JSON). Protobuf
// decoding drops unknown fields before our handlers run, so gRPC cannot be
// checked here (docs/grpc.md says so).
import { ServeError } from '../errors.js';

/** Throws SWIN_UNKNOWN_FIELD naming every key of `given` not in `known`. */
export function rejectUnknownFields(given: Iterable<string>, known: readonly string[], where: string): void {
  const unknown: string[] = [];
  for (const k of given) if (!known.includes(k) && !unknown.includes(k)) unknown.push(k);
  if (unknown.length === 0) return;
  const names = unknown.slice(0, 8).map((k) => JSON.stringify(k.slice(0, 40)));
  if (unknown.length > 8) names.push(`and ${unknown.length - 8} more`);
  throw new ServeError('SWIN_UNKNOWN_FIELD', where, names.join(', '), known.length > 0 ? known.join(', ') : 'none');
}
