// The container health check (Dockerfile HEALTHCHECK runs `node dist/src/healthcheck.js`):
// GET /health/ready on this process's own HTTP port over loopback; exit 0 on 200,
// 1 otherwise. It follows TLS the way the server does: with TLS_CERT_FILE and
// TLS_KEY_FILE set it speaks HTTPS. The certificate is not verified: the probe
// asks the service on its own loopback whether it is ready, and the server's
// certificate usually names the public host, not 127.0.0.1.
import http from 'node:http';
import https from 'node:https';

const port = Number(process.env.PORT || 8080);
const tls = Boolean(process.env.TLS_CERT_FILE && process.env.TLS_KEY_FILE);
const get = tls ? https.get : http.get;
const req = get({ host: '127.0.0.1', port, path: '/health/ready', timeout: 2500, rejectUnauthorized: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', () => process.exit(1));
