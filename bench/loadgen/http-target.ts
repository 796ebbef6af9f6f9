// POST <url><path> with the raw image as the body, over keep-alive node:http
// connections. Per request: one Buffer write, response chunks collected only
// when they are needed (errors, --check), no JSON work on the hot path.
import http from 'node:http';
import type { BenchImage } from './images.js';

/** What one request came to: ok, or the code it is counted under. */
export interface Outcome {
  ok: boolean;
  /** "HTTP 503 SWIN_QUEUE_FULL", "timeout", "ECONNREFUSED", "grpc RESOURCE_EXHAUSTED" */
  code?: string;
  /** top-1 label when --check asked for it */
  top1?: string;
}

export interface Target {
  send(image: BenchImage): Promise<Outcome>;
  /** Resize the connection pool before a step. */
  setConnections(n: number): void;
  close(): Promise<void>;
}

export interface HttpTargetOptions {
  url: string;
  path: string;
  model?: string;
  topK?: number;
  timeoutMs: number;
  check: boolean;
}

/** The error code a non-200 reply is counted under: status plus the body's stable `code` if it has one. */
export function httpErrorCode(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { code?: unknown };
    if (parsed && typeof parsed.code === 'string') return `HTTP ${status} ${parsed.code}`;
  } catch {
    // not JSON: the status alone
  }
  return `HTTP ${status}`;
}

/** Top-1 label of a /classify reply: {predictions: [[{label, ...}, ...]]}. */
export function top1Label(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { predictions?: Array<Array<{ label?: string }>> };
    return parsed.predictions?.[0]?.[0]?.label;
  } catch {
    return undefined;
  }
}

export class HttpTarget implements Target {
  private agent: http.Agent;
  private readonly host: string;
  private readonly port: number;
  private readonly requestPath: string;

  constructor(private readonly opts: HttpTargetOptions) {
    const u = new URL(opts.url);
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(u.port || 80);
    const q = new URLSearchParams();
    if (opts.model) q.set('model', opts.model);
    if (opts.topK) q.set('top_k', String(opts.topK));
    const qs = q.toString();
    this.requestPath = u.pathname.replace(/\/+$/, '') + opts.path + (qs ? `?${qs}` : '');
    this.agent = this.makeAgent(1);
  }

  private makeAgent(n: number): http.Agent {
    // keepAlive with maxSockets = in-flight count: each in-flight request owns a
    // connection; LIFO reuse keeps the warm ones busy.
    return new http.Agent({ keepAlive: true, maxSockets: n, maxFreeSockets: n, scheduling: 'lifo', noDelay: true } as http.AgentOptions);
  }

  setConnections(n: number): void {
    this.agent.destroy();
    this.agent = this.makeAgent(n);
  }

  send(image: BenchImage): Promise<Outcome> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (o: Outcome): void => {
        if (!settled) {
          settled = true;
          resolve(o);
        }
      };
      const req = http.request(
        {
          agent: this.agent,
          host: this.host,
          port: this.port,
          method: 'POST',
          path: this.requestPath,
          headers: { 'content-type': image.mime, 'content-length': image.data.length, accept: 'application/json' },
          timeout: this.opts.timeoutMs,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const keep = status !== 200 || this.opts.check;
          const chunks: Buffer[] = [];
          if (keep) res.on('data', (c: Buffer) => chunks.push(c));
          else res.resume();
          res.on('end', () => {
            if (status === 200) {
              done({ ok: true, top1: this.opts.check ? top1Label(Buffer.concat(chunks).toString('utf8')) : undefined });
            } else {
              done({ ok: false, code: httpErrorCode(status, Buffer.concat(chunks).toString('utf8')) });
            }
          });
          res.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, code: err.code ?? 'response_error' }));
        },
      );
      req.on('timeout', () => {
        done({ ok: false, code: 'timeout' });
        req.destroy();
      });
      req.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, code: err.code ?? err.message }));
      req.end(image.data);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
