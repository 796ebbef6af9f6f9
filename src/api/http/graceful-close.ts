// HTTP side of graceful shutdown: nothing a client fully wrote before SIGTERM
// is lost to a connection reset. Node's server.close() destroys every
// connection it considers idle, and a keep-alive connection whose next request
// sits unread in the socket buffer counts as idle: 1-5 of 12 such requests got
// ECONNRESET in a burst (issue 15). Here, from the start of close:
//   - the listener stops accepting (server.close), but open connections stay;
//   - every reply carries Connection: close, so a connection ends after the
//     reply it is writing, and a request that arrives on an open connection is
//     read and answered 503 SWIN_SHUTTING_DOWN (app.ts) with Connection: close;
//   - a connection with no request in flight and no bytes received for
//     IDLE_CLOSE_MS is ended (what was written before the signal has long been
//     read by then), so close() does not wait for the keep-alive timeout.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** How long a connection must be quiet (no request in flight, no bytes in) before close ends it, ms. */
export const IDLE_CLOSE_MS = 300;

interface Conn {
  active: number;
  bytesRead: number;
  quietSince: number;
}

export function registerGracefulClose(app: FastifyInstance): void {
  const server = app.server as Server;
  const conns = new Map<Socket, Conn>();
  const track = (socket: Socket) => {
    conns.set(socket, { active: 0, bytesRead: 0, quietSince: Date.now() });
    socket.once('close', () => conns.delete(socket));
  };
  // HTTPS requests come on the TLS socket, not the TCP one 'connection' reports.
  server.on('setSecureContext' in server ? 'secureConnection' : 'connection', track);
  server.on('request', (req, res) => {
    const c = conns.get(req.socket);
    if (!c) return;
    c.active++;
    res.once('close', () => {
      c.active--;
      c.quietSince = Date.now();
    });
  });

  let closing = false;
  let sweep: NodeJS.Timeout | undefined;
  app.addHook('onSend', async (_request, reply) => {
    if (closing) void reply.header('connection', 'close');
  });
  app.addHook('preClose', async () => {
    closing = true;
    // server.close() (called by fastify next) would destroy "idle" connections with unread requests.
    server.closeIdleConnections = () => {};
    sweep = setInterval(() => {
      if (conns.size === 0 && !server.listening) clearInterval(sweep); // nothing left to end
      const now = Date.now();
      for (const [socket, c] of conns) {
        if (socket.bytesRead !== c.bytesRead) {
          c.bytesRead = socket.bytesRead;
          c.quietSince = now;
        } else if (c.active === 0 && now - c.quietSince >= IDLE_CLOSE_MS) {
          socket.end();
          socket.destroySoon();
        }
      }
    }, 50);
    sweep.unref();
  });
  server.once('close', () => clearInterval(sweep)); // every connection has ended
}
