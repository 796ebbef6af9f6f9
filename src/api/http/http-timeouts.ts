// Slow clients: the HTTP server's header, body and idle timeouts, enforced at
// their configured values. Node checks header and body timeouts on a timer
// (connectionsCheckingInterval, 30 s by default, which let a body sent at
// 1 byte/s run 58-82 s against a 35 s setting); it is shortened here so the
// cut comes within half a second of the setting. The 408 it sends carries the
// error table's body instead of fastify's code-less one.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ServeError, httpErrorBody, httpReason } from '../../errors.js';

export interface HttpTimeouts {
  /** Request line and headers must arrive within this, ms from the request's first byte. */
  headersTimeoutMs: number;
  /** The whole request (headers and body) must arrive within this, ms. */
  bodyTimeoutMs: number;
  /** An idle keep-alive connection is closed after this, ms. */
  idleTimeoutMs: number;
}

/** How often Node looks for requests past their timeout, ms: the enforcement's granularity. */
export const TIMEOUT_CHECK_MS = 500;

/** Sets the timeouts on a server that has not started listening yet. */
export function applyHttpTimeouts(server: Server, t: HttpTimeouts): void {
  server.headersTimeout = t.headersTimeoutMs;
  server.requestTimeout = t.bodyTimeoutMs;
  server.keepAliveTimeout = t.idleTimeoutMs;
  // Read by Node when the server starts listening.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = TIMEOUT_CHECK_MS;
}

/**
 * fastify's clientErrorHandler: a timed-out request gets 408 SWIN_REQUEST_TIMEOUT naming the
 * part that did not arrive in time; other malformed requests 400 SWIN_BAD_REQUEST.
 * `requests` maps each socket to the request being read on it (see trackRequests).
 */
export function clientErrorHandler(t: HttpTimeouts, requests: WeakMap<Socket, IncomingMessage>) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let se: ServeError;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      const req = requests.get(socket);
      const inBody = req !== undefined && !req.complete;
      se = new ServeError('SWIN_REQUEST_TIMEOUT', inBody ? 'body' : 'headers', inBody ? t.bodyTimeoutMs : t.headersTimeoutMs);
    } else {
      se = new ServeError('SWIN_BAD_REQUEST', err.code === 'HPE_HEADER_OVERFLOW' ? 'request headers too large' : 'malformed HTTP request');
    }
    // A reply already under way (an early 413, say) is not interleaved with this one.
    const res = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (socket.writable && !res?.headersSent) {
      const body = JSON.stringify(httpErrorBody(se));
      socket.write(
        `HTTP/1.1 ${se.httpStatus} ${httpReason(se.httpStatus)}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}

/** Remembers which request each socket is reading, so a timeout can tell headers from body. */
export function trackRequests(server: Server, requests: WeakMap<Socket, IncomingMessage>): void {
  server.on('request', (req: IncomingMessage) => requests.set(req.socket, req));
}
