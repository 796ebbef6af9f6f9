// Worker thread that owns one onnxruntime InferenceSession. onnxruntime-node
// runs session.run() synchronously on the calling thread (its async API only
// defers it with setImmediate), so the service runs it here to keep the event
// loop free. Messages in:  {id, images: Uint8Array (n*H*W*3), n}
//               out: {id, logits: Float32Array (n*classes)} | {id, error}
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

export interface WorkerInit {
  path: string;
  inputName: string;
  outputName: string;
  /** H, W of the NHWC input. */
  height: number;
  width: number;
  intraOpThreads: number;
  interOpThreads: number;
}

export type WorkerRequest = { id: number; images: Uint8Array; n: number };
export type WorkerReply =
  | { type: 'ready'; inputNames: string[]; outputNames: string[] }
  | { type: 'init-error'; message: string }
  | { id: number; logits: Float32Array }
  | { id: number; error: string };

const init = workerData as WorkerInit;
const port = parentPort!;

async function main(): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.path, {
      intraOpNumThreads: init.intraOpThreads,
      interOpNumThreads: init.interOpThreads,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Idle onnxruntime threads spin by default. In the service the cores are shared with
      // sharp, the HTTP server and other sessions, and spinning threads steal them: on the
      // 2-core VM swin-fmnist batch 8 with 2 intra-op threads ran 11.5-13.7 images/s
      // spinning and 18.5-20.4 without (alternating runs, same process).
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  } catch (err) {
    port.postMessage({ type: 'init-error', message: (err as Error).message } satisfies WorkerReply);
    return;
  }
  port.on('message', (msg: WorkerRequest | { type: 'close' }) => {
    if ('type' in msg) {
      void session.release().finally(() => port.close());
      return;
    }
    const { id, images, n } = msg;
    try {
      const input = new ort.Tensor('uint8', images, [n, init.height, init.width, 3]);
      // session.run's promise resolves after a setImmediate; the work is synchronous on this thread.
      session.run({ [init.inputName]: input }, [init.outputName]).then(
        (out) => {
          const logits = out[init.outputName].data as Float32Array;
          port.postMessage({ id, logits } satisfies WorkerReply, [logits.buffer as ArrayBuffer]);
        },
        (err: Error) => port.postMessage({ id, error: err.message } satisfies WorkerReply),
      );
    } catch (err) {
      port.postMessage({ id, error: (err as Error).message } satisfies WorkerReply);
    }
  });
  port.postMessage({ type: 'ready', inputNames: [...session.inputNames], outputNames: [...session.outputNames] } satisfies WorkerReply);
}

void main();
