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

/** The parts of a protobuf DescriptorProto (as proto-loader gives it) that `conformToMessage` reads. */
interface MessageDescriptor {
  name: string;
  field: { name: string; label: string; type: string; typeName: string }[];
  nestedType: MessageDescriptor[];
  options?: { mapEntry?: boolean } | null;
}

/** A message type and the messages enclosing it, innermost first (the scopes its type names resolve in). */
type Scoped = { type: MessageDescriptor; scopes: MessageDescriptor[] };

function findNested(from: Scoped, path: readonly string[]): Scoped | undefined {
  let cur: Scoped | undefined = from;
  for (const part of path) {
    const next: MessageDescriptor | undefined = cur.type.nestedType.find((t) => t.name === part);
    if (next === undefined) return undefined;
    cur = { type: next, scopes: [cur.type, ...cur.scopes] };
  }
  return cur;
}

/** Resolves a field's type name as protobuf does: in the enclosing messages, innermost first, then in the package. */
function resolveType(name: string, within: Scoped): Scoped | undefined {
  const parts = name.replace(/^\.inference\./, '').split('.');
  for (const [i, scope] of [within.type, ...within.scopes].entries()) {
    const found = findNested({ type: scope, scopes: within.scopes.slice(i) }, parts);
    if (found !== undefined) return found;
  }
  const top = inferencePackageDefinition()[`inference.${parts[0]}`] as { type?: MessageDescriptor } | undefined;
  return top?.type === undefined ? undefined : findNested({ type: top.type, scopes: [] }, parts.slice(1));
}

const INTEGER_KEY_TYPES = new Set(['TYPE_INT32', 'TYPE_UINT32', 'TYPE_SINT32', 'TYPE_FIXED32', 'TYPE_SFIXED32', 'TYPE_INT64', 'TYPE_UINT64', 'TYPE_SINT64', 'TYPE_FIXED64', 'TYPE_SFIXED64']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function conform(value: unknown, at: Scoped): Record<string, unknown> | undefined {
  if (!isPlainObject(value)) return undefined;
  const out: Record<string, unknown> = {};
  const element = (x: unknown, field: MessageDescriptor['field'][number]): unknown => {
    if (field.type !== 'TYPE_MESSAGE') return x;
    const sub = resolveType(field.typeName, at);
    return sub === undefined ? undefined : conform(x, sub);
  };
  for (const field of at.type.field) {
    const raw = value[field.name];
    if (raw === undefined || raw === null) continue;
    const sub = field.type === 'TYPE_MESSAGE' ? resolveType(field.typeName, at) : undefined;
    if (sub?.type.options?.mapEntry === true) {
      if (!isPlainObject(raw)) continue;
      const [keyField, valueField] = sub.type.field;
      const map: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(raw)) {
        // The encoder takes integer keys as decimal strings; anything else would encode as garbage.
        if (INTEGER_KEY_TYPES.has(keyField!.type) && !/^-?\d+$/.test(k)) continue;
        const v = element(x, valueField!);
        if (v !== undefined) map[k] = v;
      }
      out[field.name] = map;
    } else if (field.label === 'LABEL_REPEATED') {
      out[field.name] = (Array.isArray(raw) ? raw : [raw]).map((x) => element(x, field)).filter((x) => x !== undefined);
    } else {
      const v = element(Array.isArray(raw) ? raw[raw.length - 1] : raw, field);
      if (v !== undefined) out[field.name] = v;
    }
  }
  return out;
}

/**
 * Shapes a plain object (e.g. a model config parsed from text format) into what the encoder of
 * message `typeName` accepts: a list given for a singular field keeps its last element (text
 * format's "last one wins"), a single value given for a repeated field becomes a one-element list,
 * and fields the message does not have are dropped (as are nested values of the wrong kind and
 * non-integer keys of integer-keyed maps), so that encoding cannot fail on the object's shape.
 * (Decoding gives 64-bit map keys as protobufjs's 8-character hash strings, not decimals.)
 */
export function conformToMessage(typeName: string, value: unknown): Record<string, unknown> {
  const type = (inferencePackageDefinition()[typeName] as { type?: MessageDescriptor } | undefined)?.type;
  if (type === undefined) throw new Error(`unknown message type ${typeName}`);
  return conform(value, { type, scopes: [] }) ?? {};
}

/** A client class for the service: `new (inferenceClientConstructor())('host:8001', credentials)`. */
export function inferenceClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeClientConstructor(inferenceServiceDefinition(), GRPC_SERVICE_NAME);
}
