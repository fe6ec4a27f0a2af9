import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Loads Inferneo's copy of Triton's gRPC protocol (`orchestrator/proto/grpc_service.proto`, package
 * `inference`) for both sides: the data plane's gRPC server and any gRPC client to a Triton server.
 * Decoded messages follow PROTO_LOADER_OPTIONS: proto field names (`raw_input_contents`), 64-bit
 * integers as decimal strings (exact; callers convert), enums as their names, defaults filled in
 * (repeated = [], absent messages = null), the set member of a oneof named in its oneof field, and
 * bytes as Buffers that are views of the received message (never copied).
 */

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  bytes: Buffer,
};

export const GRPC_SERVICE_NAME = 'inference.GRPCInferenceService';

/**
 * The folder holding the .proto files: found by walking up from this module, so it is the same
 * from `orchestrator/src/protocol` (sources) and `dist/orchestrator/src/protocol` (compiled).
 */
export function protoDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'orchestrator', 'proto');
    if (existsSync(path.join(candidate, 'grpc_service.proto'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find orchestrator/proto/grpc_service.proto above ${path.dirname(fileURLToPath(import.meta.url))}`);
    dir = parent;
  }
}

let cached: protoLoader.PackageDefinition | undefined;

/** The parsed protocol (parsed once per process). */
export function inferencePackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync('grpc_service.proto', { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
  return cached;
}

/** The service definition, for `grpc.Server.addService`. */
export function inferenceServiceDefinition(): grpc.ServiceDefinition {
  return inferencePackageDefinition()[GRPC_SERVICE_NAME] as grpc.ServiceDefinition;
}

/** A client class for the service: `new (inferenceClientConstructor())('host:8001', credentials)`. */
export function inferenceClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeClientConstructor(inferenceServiceDefinition(), GRPC_SERVICE_NAME);
}
