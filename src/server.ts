// Starts the service: configuration, models, HTTP and gRPC listeners, and
// graceful shutdown (SIGTERM/SIGINT: not ready, SHUTDOWN_DELAY_MS of normal
// service, then stop accepting, answer every request already written (HTTP:
// src/api/http/graceful-close.ts; gRPC: tryShutdown, forceShutdown at the drain
// timeout), release engines, exit 0; exit 1 if that takes longer than
// DRAIN_TIMEOUT_MS). With FRONTEND_WORKERS the listeners are on worker threads
// (src/api/workers/) and this thread keeps the models, batchers and engines.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { LOG_REDACT_PATHS } from './api/access/http-access.js';
import { BodyBudget } from './api/body-budget.js';
import { buildFrontEnd } from './api/front-end.js';
import { FrontEndWorkers } from './api/workers/front-end-workers.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { CoreInferenceService } from './service/inference-service.js';
import { ModelRepository } from './models/model-repository.js';
import { ModelConfigError } from './models/model-json.js';
import { initTracing, shutdownTracing } from './observability/tracing.js';
import { packageInfo } from './package-info.js';

export async function startServer(argv = process.argv.slice(2), env = process.env): Promise<void> {
  let config;
  try {
    config = loadConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`swin-serve: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // `npx swin-serve` from another folder: the default repository is the one shipped in the package.
  const shipped = packageInfo().root;
  if (config.modelsDir === 'engines/models' && !existsSync(config.modelsDir) && shipped)
    config.modelsDir = path.join(shipped, 'engines/models');
  const logger = pino({ level: config.logLevel, redact: LOG_REDACT_PATHS });
  logger.info({ node: process.version, threadpool: process.env.UV_THREADPOOL_SIZE, backend: config.backend }, 'swin-serve starting');
  // SIGHUP: API keys (AUTH_API_KEYS and its file) and the TLS certificate of both servers are
  // read again; open connections keep going, new TLS handshakes get the new certificate.
  // Handled from here on: a worker may answer ready before this thread has its front ends,
  // and SIGHUP's default action would end the process. One that comes while starting is
  // carried out once the front ends run (the files may have changed after they were read).
  let front: RunningFrontEnds | null = null;
  let reloadWhenStarted = false;
  process.on('SIGHUP', () => {
    if (front) front.reload();
    else reloadWhenStarted = true;
  });
  // Before the models load: the batchers are built with or without batch spans.
  const tracing = initTracing(env);
  if (tracing.enabled) logger.info(tracing, 'OpenTelemetry tracing on');

  let repo: ModelRepository;
  try {
    repo = await ModelRepository.load({ config, logger });
  } catch (err) {
    if (err instanceof ModelConfigError) {
      logger.fatal(err.message);
      process.exit(2);
    }
    throw err;
  }
  const service = new CoreInferenceService(repo, config, {
    onDecodeFallback: (reason) => logger.warn({ reason }, 'JPEG decoded with sharp instead of on the GPU'),
    onDecodeProcessExit: (info) =>
      info.retired
        ? logger.info(
            info,
            'a decode process was retired: its request was gone and its decode dear; its other images were handed to another',
          )
        : logger.error(info, 'a decode process exited; its images were handed to another'),
  });
  if (service.decodePool) {
    await service.decodePool.ready();
    logger.info({ processes: service.decodePool.pids.length, asked: config.decodeProcesses }, 'decode processes ready');
  }
  const warmedDecoders = await service.warmDecoders();
  if (warmedDecoders > 0) logger.info({ decoders: warmedDecoders }, 'GPU JPEG decoders opened and warmed');
  // The protocol front end: on this thread, or on FRONTEND_WORKERS worker threads feeding this one.
  const frontEnds = await startFrontEnds(config, service, argv, env, logger);
  front = frontEnds;
  if (reloadWhenStarted) {
    logger.info('SIGHUP came while starting: reloading now');
    frontEnds.reload();
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    // SHUTDOWN_DELAY_MS: readiness goes 503 (HTTP and gRPC health) while requests are still
    // served, so load balancers stop sending before the listeners close (a pre-stop hook's sleep).
    service.beginDrain();
    frontEnds.drain();
    if (config.shutdownDelayMs > 0) {
      logger.info(
        { signal, shutdownDelayMs: config.shutdownDelayMs },
        'shutdown requested: not ready; serving until the shutdown delay has passed',
      );
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
    }
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'shutting down: no new connections; finishing accepted requests');
    const timer = setTimeout(() => {
      logger.error({ drainTimeoutMs: config.drainTimeoutMs }, 'drain timeout passed with work still running; exiting 1');
      process.exit(1);
    }, config.drainTimeoutMs);
    timer.unref();
    try {
      // Listeners first (in-flight requests finish and reply), then the batchers and engines.
      await frontEnds.close(config.drainTimeoutMs);
      await service.close();
      await shutdownTracing().catch((err: unknown) => logger.warn({ err }, 'flushing traces failed'));
      logger.info({ ms: Date.now() - started }, 'shutdown complete');
      logger.flush?.();
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

interface RunningFrontEnds {
  drain(): void;
  reload(): void;
  close(graceMs: number): Promise<void>;
}

async function startFrontEnds(
  config: Config,
  service: CoreInferenceService,
  argv: string[],
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<RunningFrontEnds> {
  if (config.frontendWorkers > 0) {
    const workers = await FrontEndWorkers.start(config, service, argv, { ...env }, logger);
    logger.info({ workers: config.frontendWorkers, ...workers.ports }, 'front-end workers listening (HTTP and gRPC, SO_REUSEPORT)');
    return {
      drain: () => workers.drain(),
      reload: () => {
        workers.reload();
        logger.info({ workers: config.frontendWorkers }, 'SIGHUP: front-end workers told to reload API keys and certificates');
      },
      close: (graceMs) => workers.close(graceMs),
    };
  }
  // One budget of request bodies in flight for HTTP and gRPC (BODY_MEMORY_BUDGET_BYTES).
  const bodyBudget = new BodyBudget(config.bodyMemoryBudgetBytes);
  logger.info({ bodyMemoryBudgetBytes: config.bodyMemoryBudgetBytes }, 'request bodies in flight are bounded');
  const frontEnd = await buildFrontEnd(config, service, { logger, bodyBudget });
  await frontEnd.listen(config.port, config.grpcPort);
  return {
    drain: () => undefined,
    reload: () => frontEnd.reload(env),
    close: (graceMs) => frontEnd.close(graceMs),
  };
}
