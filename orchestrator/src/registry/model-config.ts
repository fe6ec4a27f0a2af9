import { InvalidArgumentError } from '../errors.js';
import { type Datatype, datatypeFromConfigType } from '../protocol/datatypes.js';
import { type PbMessage, type PbValue, parsePbtxt, PbtxtSyntaxError } from '../protocol/pbtxt.js';

/**
 * A model's configuration, read from Triton's `config.pbtxt` with Triton's field names, so that the
 * same model directory loads in Triton and in Inferneo, and `GET /v2/models/{m}/config` answers what
 * Triton would. Fields Inferneo does not interpret are kept in `json` untouched.
 */

export interface TensorConfig {
  name: string;
  /** Triton's `TYPE_*` name as written in the config. */
  data_type: string;
  /** The same type as a KServe-v2 datatype. */
  datatype: Datatype;
  /** Dimensions without the batch dimension; -1 is variable. */
  dims: number[];
  optional: boolean;
}

export type VersionPolicy =
  | { latest: { num_versions: number } }
  | { all: Record<string, never> }
  | { specific: { versions: number[] } };

export interface InstanceGroup {
  name?: string;
  kind: string;
  count: number;
}

export interface ModelConfig {
  name: string;
  platform: string;
  backend: string;
  /** 0 = the model takes no batch dimension; N > 0 = batches of up to N along a leading dimension. */
  max_batch_size: number;
  input: TensorConfig[];
  output: TensorConfig[];
  version_policy: VersionPolicy;
  instance_group: InstanceGroup[];
  /** The whole config as Triton renders it in JSON, for `.../config`. */
  json: Record<string, unknown>;
}

export class ModelConfigError extends InvalidArgumentError {}

/** Fields of Triton's ModelConfig (and nested messages) that are repeated; everything else is singular. */
const REPEATED = new Set([
  'input',
  'output',
  'dims',
  'shape',
  'instance_group',
  'gpus',
  'preferred_batch_size',
  'versions',
  'priority_queue_policy',
  'model_warmup',
  'batch_input',
  'batch_output',
  'source_input',
  'ensemble_scheduling',
  'step',
  'secondary_devices',
]);

/** Known boolean fields: text format writes them as identifiers. */
function toJsonValue(value: PbValue): unknown {
  if (typeof value === 'object') return messageToJson(value);
  if (value === 'true') return true;
  if (value === 'false') return false;
  return value;
}

/** A protobuf map field (`parameters`, warm-up `inputs`, …): text format writes repeated `{ key value }` entries. */
function isMapEntries(values: PbValue[]): values is PbMessage[] {
  return (
    values.length > 0 &&
    values.every(
      (v) =>
        typeof v === 'object' &&
        (typeof v['key']?.[0] === 'string' || typeof v['key']?.[0] === 'number') &&
        Object.keys(v).every((k) => k === 'key' || k === 'value'),
    )
  );
}

function messageToJson(message: PbMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, values] of Object.entries(message)) {
    if (isMapEntries(values)) {
      const map: Record<string, unknown> = {};
      for (const entry of values) {
        const val = entry['value']?.[0];
        map[String(entry['key']![0])] = val === undefined ? null : toJsonValue(val);
      }
      out[field] = map;
    } else if (REPEATED.has(field)) {
      out[field] = values.map(toJsonValue);
    } else {
      out[field] = toJsonValue(values[values.length - 1]!);
    }
  }
  return out;
}

function asInt(value: unknown, what: string, modelName: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new ModelConfigError(`model '${modelName}': ${what} must be an integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function tensorConfigs(raw: unknown, role: 'input' | 'output', modelName: string): TensorConfig[] {
  if (raw === undefined) return [];
  return (raw as Record<string, unknown>[]).map((t, i) => {
    const name = t['name'];
    if (typeof name !== 'string' || name === '') {
      throw new ModelConfigError(`model '${modelName}': ${role}[${i}] needs a name`);
    }
    const dataType = t['data_type'];
    const datatype = typeof dataType === 'string' ? datatypeFromConfigType(dataType) : undefined;
    if (datatype === undefined) {
      throw new ModelConfigError(`model '${modelName}': ${role} '${name}' has unknown data_type ${JSON.stringify(dataType)}`);
    }
    const dims = ((t['dims'] as unknown[] | undefined) ?? []).map((d) => asInt(d, `${role} '${name}' dims`, modelName));
    return { name, data_type: dataType as string, datatype, dims, optional: t['optional'] === true };
  });
}

function versionPolicy(raw: unknown, modelName: string): VersionPolicy {
  if (raw === undefined) return { latest: { num_versions: 1 } };
  const policy = raw as Record<string, Record<string, unknown> | undefined>;
  if (policy['all'] !== undefined) return { all: {} };
  if (policy['specific'] !== undefined) {
    const versions = (policy['specific']['versions'] as unknown[] | undefined) ?? [];
    return { specific: { versions: versions.map((v) => asInt(v, 'version_policy.specific.versions', modelName)) } };
  }
  const n = policy['latest']?.['num_versions'] ?? 1;
  return { latest: { num_versions: asInt(n, 'version_policy.latest.num_versions', modelName) } };
}

/**
 * Parses a `config.pbtxt`. `modelName` is the directory name: Triton requires `name`, when present,
 * to equal it.
 */
export function parseModelConfig(text: string, modelName: string): ModelConfig {
  let message: PbMessage;
  try {
    message = parsePbtxt(text);
  } catch (err) {
    if (err instanceof PbtxtSyntaxError) {
      throw new ModelConfigError(`model '${modelName}': config.pbtxt: ${err.message}`);
    }
    throw err;
  }
  const json = messageToJson(message);
  if (json['name'] !== undefined && json['name'] !== modelName) {
    throw new ModelConfigError(
      `model '${modelName}': config.pbtxt names the model ${JSON.stringify(json['name'])}; it must match the directory name`,
    );
  }
  return modelConfigFromJson(json, modelName);
}

/**
 * A model configuration from its JSON form: the one `parseModelConfig` builds from config.pbtxt, or
 * the one a Triton server reports (`GET /v2/models/{m}/config`) for a model it hosts. `json` is
 * copied, not changed.
 */
export function modelConfigFromJson(source: Record<string, unknown>, modelName: string): ModelConfig {
  const json = { ...source };
  const platform = typeof json['platform'] === 'string' ? json['platform'] : '';
  let backend = typeof json['backend'] === 'string' ? json['backend'] : '';
  if (backend === '' && platform === 'onnxruntime_onnx') backend = 'onnxruntime';
  if (platform === '' && backend === '') {
    throw new ModelConfigError(`model '${modelName}': config.pbtxt must set 'platform' or 'backend'`);
  }
  const maxBatchSize = asInt(json['max_batch_size'] ?? 0, 'max_batch_size', modelName);
  if (maxBatchSize < 0) throw new ModelConfigError(`model '${modelName}': max_batch_size must be >= 0, got ${maxBatchSize}`);
  const input = tensorConfigs(json['input'], 'input', modelName);
  const output = tensorConfigs(json['output'], 'output', modelName);
  const policy = versionPolicy(json['version_policy'], modelName);
  const rawGroups = (json['instance_group'] as Record<string, unknown>[] | undefined) ?? [{}];
  const groups = rawGroups.map((g) => {
    const group: InstanceGroup = {
      kind: typeof g['kind'] === 'string' ? g['kind'] : 'KIND_CPU',
      count: asInt(g['count'] ?? 1, 'instance_group.count', modelName),
    };
    if (typeof g['name'] === 'string') group.name = g['name'];
    return group;
  });
  Object.assign(json, {
    name: modelName,
    platform,
    backend,
    max_batch_size: maxBatchSize,
    version_policy: policy,
    // Every field the config gave (gpus, host_policy, …), with Triton's defaults filled in.
    instance_group: rawGroups.map((g, i) => ({ ...g, ...groups[i] })),
  });
  return { name: modelName, platform, backend, max_batch_size: maxBatchSize, input, output, version_policy: policy, instance_group: groups, json };
}

/** Shape as model metadata reports it: with a leading -1 batch dimension when the model batches. */
export function metadataShape(config: ModelConfig, tensor: TensorConfig): number[] {
  return config.max_batch_size > 0 ? [-1, ...tensor.dims] : [...tensor.dims];
}
