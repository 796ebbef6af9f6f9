// Loads proto/ at run time with @grpc/proto-loader. LOADER_OPTIONS must match
// the flags scripts/gen-proto-types.mjs passes to proto-loader-gen-types: the
// generated types in src/generated/ describe the objects this loader yields
// (snake_case fields, int64 as number, enums as strings, defaults filled in).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import type { ProtoGrpcType as ClassifierProto } from '../../generated/classifier.js';
import type { ProtoGrpcType as KServeProto } from '../../generated/grpc_service.js';

export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const CLASSIFIER_PROTO = 'swin/v1/classifier.proto';
export const KSERVE_PROTO = 'kserve/grpc_service.proto';

/** proto/ at the repository root, found from src/grpc/ (tsx) or dist/src/grpc/ (tsc build). */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'proto', CLASSIFIER_PROTO))) return join(dir, 'proto');
    dir = dirname(dir);
  }
  throw new Error('proto/ not found above ' + fileURLToPath(import.meta.url));
}

export interface LoadedProtos {
  /** Both files in one definition: what server reflection describes. */
  definition: PackageDefinition;
  classifier: ClassifierProto;
  kserve: KServeProto;
}

let cached: LoadedProtos | undefined;

export function loadProtos(): LoadedProtos {
  if (cached) return cached;
  const includeDirs = [protoDir()];
  const definition = loadSync([CLASSIFIER_PROTO, KSERVE_PROTO], { ...LOADER_OPTIONS, includeDirs });
  const grpcObject: GrpcObject = loadPackageDefinition(definition);
  cached = {
    definition,
    classifier: grpcObject as unknown as ClassifierProto,
    kserve: grpcObject as unknown as KServeProto,
  };
  return cached;
}
