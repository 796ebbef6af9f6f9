// swin.v1.Classifier/Predict with one image per call, over one HTTP/2
// connection per `connections` (grpc-js multiplexes calls on a channel; a few
// channels spread the framing work when many calls are in flight).
// The proto is loaded at run time with @grpc/proto-loader, so the client needs
// no generated code and follows the file the server ships.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { BenchImage } from './images.js';
import type { Outcome, Target } from './http-target.js';

export interface GrpcTargetOptions {
  target: string;
  proto: string;
  model?: string;
  topK?: number;
  timeoutMs: number;
  check: boolean;
}

interface PredictReply {
  predictions?: Array<{ classes?: Array<{ label?: string }> }>;
}

type PredictFn = (
  req: { images: Buffer[]; model: string; top_k: number },
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, reply?: PredictReply) => void,
) => void;

type ClientCtor = new (
  target: string,
  creds: grpc.ChannelCredentials,
  opts?: grpc.ChannelOptions,
) => grpc.Client & {
  Predict: PredictFn;
};

/** Channels used at most; calls are spread round-robin. */
const MAX_CHANNELS = 8;

/** "grpc RESOURCE_EXHAUSTED SWIN_QUEUE_FULL" from a failed call. */
export function grpcErrorCode(err: grpc.ServiceError): string {
  const name = grpc.status[err.code] ?? String(err.code);
  const swin = err.metadata?.get('swin-code')?.[0];
  return swin ? `grpc ${name} ${String(swin)}` : `grpc ${name}`;
}

export class GrpcTarget implements Target {
  private readonly Client: ClientCtor;
  private clients: Array<InstanceType<ClientCtor>> = [];
  private next = 0;

  private constructor(
    private readonly opts: GrpcTargetOptions,
    Client: ClientCtor,
  ) {
    this.Client = Client;
    this.setConnections(1);
  }

  static async create(opts: GrpcTargetOptions): Promise<GrpcTarget> {
    const def = await protoLoader.load(opts.proto, { keepCase: true, longs: Number, defaults: true, enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { swin?: { v1?: { Classifier?: ClientCtor } } };
    const Client = pkg.swin?.v1?.Classifier;
    if (!Client) throw new Error(`${opts.proto} defines no swin.v1.Classifier service`);
    return new GrpcTarget(opts, Client);
  }

  setConnections(n: number): void {
    for (const c of this.clients) c.close();
    const count = Math.max(1, Math.min(MAX_CHANNELS, Math.ceil(n / 16)));
    this.clients = Array.from(
      { length: count },
      (_, i) =>
        new this.Client(this.opts.target, grpc.credentials.createInsecure(), {
          // distinct options keep grpc-js from sharing one subchannel among the clients
          'grpc.bench_channel': i,
          'grpc.max_receive_message_length': 64 << 20,
          'grpc.max_send_message_length': 64 << 20,
        }),
    );
  }

  send(image: BenchImage): Promise<Outcome> {
    const client = this.clients[this.next++ % this.clients.length];
    return new Promise((resolve) => {
      client.Predict(
        { images: [image.data], model: this.opts.model ?? '', top_k: this.opts.topK ?? 0 },
        new grpc.Metadata(),
        { deadline: Date.now() + this.opts.timeoutMs },
        (err, reply) => {
          if (err) {
            resolve({
              ok: false,
              code: err.code === grpc.status.DEADLINE_EXCEEDED && !err.metadata?.get('swin-code')?.length ? 'timeout' : grpcErrorCode(err),
            });
          } else {
            resolve({ ok: true, top1: this.opts.check ? reply?.predictions?.[0]?.classes?.[0]?.label : undefined });
          }
        },
      );
    });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    this.clients = [];
  }
}
