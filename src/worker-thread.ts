// Starts a worker thread from a module URL. Under tsx (tests, `npm run dev`) the
// module is TypeScript, and loader hooks do not reach worker threads on every
// Node line, so tsx is registered inside the worker before the module loads.
import { Worker } from 'node:worker_threads';

export function startWorkerThread(url: URL, workerData: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  return new Worker(
    `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`,
    { eval: true, workerData },
  );
}
