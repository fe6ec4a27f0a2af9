import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadSync } from '@grpc/proto-loader';
import { type PbMessage, type PbValue, parsePbtxt } from '../orchestrator/src/protocol/pbtxt.js';
import { MODEL_REPOSITORY, ROOT, waitFor } from './support/stack.js';
import { startTriton, type TritonServer } from './support/triton-server.js';

/**
 * The bundled models' config.pbtxt files are ones Triton accepts — the promise behind "the model
 * repository loads unchanged in a real Triton server" and behind docker-compose's `triton` service
 * sharing it. Checked twice: statically, every field name, nesting, repetition and enum value
 * against the field table of Triton's own model_config.proto (tests/fixtures/triton-model-config.json);
 * and by a real tritonserver 2.51 (CPU, Python backend only) loading each model. Triton parses
 * config.pbtxt before it looks for the backend, so for the ONNX models the one acceptable failure
 * is the missing onnxruntime backend (or, for a model of a worker-only backend such as llama_cpp,
 * that one); the Python-backend model loads and runs.
 */

interface FieldSpec {
  number: number;
  type: string;
  repeated?: boolean;
  map_key?: string;
  oneof?: string;
}

interface ConfigSchema {
  source: { repository: string; path: string; commit: string };
  root: string;
  scalars: string[];
  enums: Record<string, string[]>;
  messages: Record<string, Record<string, FieldSpec>>;
}

const SCHEMA = JSON.parse(readFileSync(path.join(ROOT, 'tests', 'fixtures', 'triton-model-config.json'), 'utf8')) as ConfigSchema;

const INTEGER_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

/**
 * Checks a parsed config.pbtxt against Triton's ModelConfig field table the way protobuf's text
 * parser would: unknown field names, a non-repeated field given twice, two members of one oneof,
 * enum names that do not exist, numbers where messages belong and the reverse. Returns one line per
 * problem, each naming the path (`input[0].data_type`).
 */
function validateModelConfig(config: PbMessage, schema: ConfigSchema = SCHEMA): string[] {
  const problems: string[] = [];
  const checkValue = (value: PbValue, type: string, where: string): void => {
    if (schema.messages[type] !== undefined) {
      if (typeof value !== 'object') problems.push(`${where}: expected a ${type} message { … }, got ${JSON.stringify(value)}`);
      else checkMessage(value, type, where);
      return;
    }
    const enumValues = schema.enums[type];
    if (enumValues !== undefined) {
      if (typeof value !== 'string' || !enumValues.includes(value)) {
        problems.push(`${where}: ${JSON.stringify(value)} is not a ${type} (one of ${enumValues.join(', ')})`);
      }
      return;
    }
    if (!schema.scalars.includes(type)) throw new Error(`the field table names an unknown type ${type}`);
    if (typeof value === 'object') {
      problems.push(`${where}: expected a ${type}, got a message`);
    } else if (type === 'bool') {
      if (!['true', 'false', 'True', 'False', 't', 'f', 0, 1].includes(value)) problems.push(`${where}: ${JSON.stringify(value)} is not a bool`);
    } else if (type === 'string') {
      if (typeof value !== 'string') problems.push(`${where}: expected a string, got ${value}`);
    } else if (type === 'float' || type === 'double') {
      if (typeof value !== 'number' && !['inf', '-inf', 'nan'].includes(value)) problems.push(`${where}: ${JSON.stringify(value)} is not a ${type}`);
    } else {
      const [min, max] = INTEGER_RANGES[type]!;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        problems.push(`${where}: ${JSON.stringify(value)} is not a ${type}`);
      }
    }
  };
  const checkMessage = (message: PbMessage, type: string, where: string): void => {
    const fields = schema.messages[type]!;
    const oneofs = new Map<string, string>();
    for (const [name, values] of Object.entries(message)) {
      const at = where === '' ? name : `${where}.${name}`;
      const spec = fields[name];
      if (spec === undefined) {
        problems.push(`${at}: message ${type} has no field named "${name}"`);
        continue;
      }
      if (values.length > 1 && spec.repeated !== true && spec.map_key === undefined) {
        problems.push(`${at}: given ${values.length} times, but ${type}.${name} is not repeated`);
      }
      if (spec.oneof !== undefined) {
        const other = oneofs.get(spec.oneof);
        if (other !== undefined) problems.push(`${at}: ${other} and ${name} are both set, but they are members of oneof ${spec.oneof}`);
        oneofs.set(spec.oneof, name);
      }
      values.forEach((value, i) => {
        const item = values.length > 1 || spec.repeated === true || spec.map_key !== undefined ? `${at}[${i}]` : at;
        if (spec.map_key === undefined) {
          checkValue(value, spec.type, item);
          return;
        }
        // A map<K, V> field is written as repeated entries `{ key: … value: … }`.
        if (typeof value !== 'object') {
          problems.push(`${item}: a map entry must be { key: … value: … }`);
          return;
        }
        for (const key of Object.keys(value)) if (key !== 'key' && key !== 'value') problems.push(`${item}.${key}: a map entry has only key and value`);
        if (value['key']?.length !== 1) problems.push(`${item}: a map entry needs exactly one key`);
        else checkValue(value['key'][0]!, spec.map_key, `${item}.key`);
        for (const v of value['value'] ?? []) checkValue(v, spec.type, `${item}.value`);
      });
    }
  };
  checkMessage(config, schema.root, '');
  return problems;
}

function bundledModels(): string[] {
  return readdirSync(MODEL_REPOSITORY, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(MODEL_REPOSITORY, d.name, 'config.pbtxt')))
    .map((d) => d.name)
    .sort();
}

function readConfig(model: string, repository = MODEL_REPOSITORY): PbMessage {
  return parsePbtxt(readFileSync(path.join(repository, model, 'config.pbtxt'), 'utf8'));
}

/** The one value of a non-repeated string field, or undefined. */
function stringField(config: PbMessage, name: string): string | undefined {
  const value = config[name]?.[0];
  return typeof value === 'string' ? value : undefined;
}

/** One request to Triton on a connection of its own, so that stopping Triton waits for no idle keep-alive connection. */
async function triton(server: TritonServer, method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.httpUrl}${urlPath}`, {
    method,
    headers: { connection: 'close', 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** Triton's backend for a platform name (model_config.proto documents the mapping), else the `backend` field. */
const PLATFORM_BACKENDS: Record<string, string> = {
  onnxruntime_onnx: 'onnxruntime',
  tensorrt_plan: 'tensorrt',
  pytorch_libtorch: 'pytorch',
  tensorflow_graphdef: 'tensorflow',
  tensorflow_savedmodel: 'tensorflow',
};

function backendOf(config: PbMessage): string {
  const backend = stringField(config, 'backend');
  if (backend !== undefined && backend !== '') return backend;
  const platform = stringField(config, 'platform') ?? '';
  return PLATFORM_BACKENDS[platform] ?? platform;
}

const backendMissing = (backend: string): RegExp => new RegExp(`unable to find backend library for backend '${backend.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`);
/** What Triton says when config.pbtxt itself is wrong: its text parser fails while polling the repository. */
const CONFIG_REJECTED = /failed to poll from model repository|failed to read text proto|Error parsing text-format/;

describe('bundled model configurations against Triton', function () {
  const models = bundledModels();

  describe("Triton's model-config field table (tests/fixtures/triton-model-config.json)", () => {
    it('resolves every type it names', () => {
      for (const [message, fields] of Object.entries(SCHEMA.messages)) {
        for (const [name, spec] of Object.entries(fields)) {
          const known = SCHEMA.scalars.includes(spec.type) || SCHEMA.messages[spec.type] !== undefined || SCHEMA.enums[spec.type] !== undefined;
          assert.ok(known, `${message}.${name} has unknown type ${spec.type}`);
        }
        const numbers = Object.values(fields).map((f) => f.number);
        assert.equal(new Set(numbers).size, numbers.length, `${message} repeats a field number`);
      }
      assert.ok(SCHEMA.messages[SCHEMA.root], 'the root message is in the table');
    });

    it("agrees with Inferneo's own copy of the schema (orchestrator/proto/model_config.proto), field by field", () => {
      // Inferneo's copy is a subset (it leaves out what it never reads) that must keep Triton's
      // names, numbers and types, so that a ModelConfigResponse decodes with either file.
      const definitions = loadSync(path.join(ROOT, 'orchestrator', 'proto', 'model_config.proto'), { keepCase: true });
      const scalarOf: Record<string, string> = {
        TYPE_STRING: 'string',
        TYPE_BOOL: 'bool',
        TYPE_INT32: 'int32',
        TYPE_INT64: 'int64',
        TYPE_UINT32: 'uint32',
        TYPE_UINT64: 'uint64',
        TYPE_FLOAT: 'float',
        TYPE_DOUBLE: 'double',
      };
      interface Descriptor {
        name: string;
        field: { name: string; number: number; label: string; type: string; typeName: string }[];
        nestedType: (Descriptor & { options: { mapEntry?: boolean } | null })[];
        enumType: { name: string; value: { name: string }[] }[];
      }
      let checked = 0;
      const visit = (descriptor: Descriptor, fullName: string): void => {
        const table: Record<string, FieldSpec> | undefined = SCHEMA.messages[fullName];
        assert.ok(table, `Inferneo's model_config.proto has message ${fullName}, which Triton's has not`);
        for (const e of descriptor.enumType) {
          const values = SCHEMA.enums[`${fullName}.${e.name}`];
          assert.ok(values, `enum ${fullName}.${e.name} is not Triton's`);
          for (const v of e.value) assert.ok(values.includes(v.name), `${fullName}.${e.name}.${v.name} is not Triton's`);
        }
        const mapEntries = new Map(descriptor.nestedType.filter((n) => n.options?.mapEntry === true).map((n) => [n.name, n]));
        for (const field of descriptor.field) {
          const spec: FieldSpec | undefined = table[field.name];
          assert.ok(spec, `${fullName}.${field.name} is not a field of Triton's ${fullName}`);
          assert.equal(field.number, spec.number, `${fullName}.${field.name}: field number`);
          const entry = mapEntries.get(field.typeName);
          if (entry !== undefined) {
            assert.ok(spec.map_key !== undefined, `${fullName}.${field.name} is a map in Inferneo's copy only`);
            const value = entry.field.find((f) => f.name === 'value')!;
            assert.equal(scalarOf[value.type] ?? value.typeName.split('.').pop(), spec.type.split('.').pop(), `${fullName}.${field.name}: map value type`);
          } else {
            assert.equal(field.label === 'LABEL_REPEATED', spec.repeated === true, `${fullName}.${field.name}: repeated`);
            assert.equal(scalarOf[field.type] ?? field.typeName.split('.').pop(), spec.type.split('.').pop(), `${fullName}.${field.name}: type`);
          }
          checked++;
        }
        for (const nested of descriptor.nestedType) if (nested.options?.mapEntry !== true) visit(nested, `${fullName}.${nested.name}`);
      };
      for (const [name, definition] of Object.entries(definitions)) {
        const type = (definition as { type?: Descriptor & { value?: unknown } }).type;
        if (!('format' in definition) || type === undefined) continue;
        const short = name.replace(/^inference\./, '');
        if ((definition as { format: string }).format.includes('EnumDescriptorProto')) {
          const values = SCHEMA.enums[short];
          assert.ok(values, `enum ${short} is not Triton's`);
          for (const v of (type as unknown as { value: { name: string }[] }).value) assert.ok(values.includes(v.name), `${short}.${v.name} is not Triton's`);
          continue;
        }
        visit(type, short);
      }
      assert.ok(checked > 50, `only ${checked} fields compared`);
    });

    it('catches misspelled fields, wrong enum values, repeated scalars, oneof clashes and bad map entries', () => {
      const config = parsePbtxt(`
        name: "m" platform: "onnxruntime_onnx" max_batch_sise: 8
        max_batch_size: 4 max_batch_size: 8
        input [{ name: "x" data_type: TYPE_FLOAT32 dims: [ 4 ] }]
        output { name: "y" data_type: TYPE_FP32 dims: [ -1 ] reshape { shape: [ 2, 2 ] } }
        instance_group [{ kind: KIND_CPU count: 1.5 }]
        version_policy { latest { num_versions: 1 } all { } }
        parameters { key: "threads" value { string_value: "2" } }
        parameters { key: "bad" value { int_value: 2 } }
        dynamic_batching { max_queue_delay_microseconds: -5 }
      `);
      const problems = validateModelConfig(config);
      const expected = [
        /^max_batch_sise: .*no field named "max_batch_sise"/,
        /^max_batch_size: given 2 times/,
        /^input\[0\]\.data_type: "TYPE_FLOAT32" is not a DataType/,
        /^instance_group\[0\]\.count: 1\.5 is not a int32/,
        /^version_policy\.all: latest and all are both set/,
        /^parameters\[1\]\.value\.int_value: .*no field named "int_value"/,
        /^dynamic_batching\.max_queue_delay_microseconds: -5 is not a uint64/,
      ];
      for (const pattern of expected) assert.ok(problems.some((p) => pattern.test(p)), `no problem matching ${pattern} in:\n${problems.join('\n')}`);
      assert.equal(problems.length, expected.length, problems.join('\n'));
    });
  });

  describe('every bundled config.pbtxt', () => {
    it('finds the bundled models', () => {
      for (const model of ['classifier', 'mlp_tiny', 'mlp_wide', 'text_stats']) assert.ok(models.includes(model), `${model} is missing from ${models.join(', ')}`);
    });

    for (const model of bundledModels()) {
      it(`${model}: uses only Triton's field names, nesting and enum values`, () => {
        const config = readConfig(model);
        assert.deepEqual(validateModelConfig(config), []);
        // Triton requires the name to match the directory, and one of platform/backend to pick the backend.
        assert.equal(stringField(config, 'name'), model);
        assert.ok(stringField(config, 'platform') !== undefined || stringField(config, 'backend') !== undefined, `${model} names neither platform nor backend`);
      });
    }
  });

  describe('loaded by a real tritonserver 2.51 (explicit model control, CPU, Python backend only)', function () {
    this.timeout(120_000);
    let server: TritonServer;
    let scratch: string;

    before(async function () {
      this.timeout(120_000);
      // A copy of the repository plus two broken models, so that the control cases load beside the real ones.
      scratch = mkdtempSync(path.join(os.tmpdir(), 'inferneo-triton-config-'));
      cpSync(MODEL_REPOSITORY, scratch, { recursive: true });
      const broken = (name: string, from: string, edit: (text: string) => string): void => {
        cpSync(path.join(MODEL_REPOSITORY, from), path.join(scratch, name), { recursive: true });
        const file = path.join(scratch, name, 'config.pbtxt');
        writeFileSync(file, edit(readFileSync(file, 'utf8').replace(`name: "${from}"`, `name: "${name}"`)));
      };
      broken('control_misspelled_field', 'mlp_tiny', (t) => t.replace('max_batch_size:', 'max_batch_sise:'));
      broken('control_bad_enum', 'mlp_tiny', (t) => t.replace('TYPE_FP32', 'TYPE_FLOAT32'));
      server = await startTriton({ modelRepository: scratch });
    });

    after(async () => {
      await server?.stop();
      if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
    });

    for (const model of bundledModels()) {
      const config = readConfig(model);
      const backend = backendOf(config);
      if (backend === 'python') {
        it(`${model}: loads for real (Python backend) and answers an inference`, async () => {
          const load = await triton(server, 'POST', `/v2/repository/models/${model}/load`);
          assert.equal(load.status, 200, `Triton refused ${model}: ${JSON.stringify(load.body)}\n${server.log().slice(-3000)}`);
          const infer = await triton(server, 'POST', `/v2/models/${model}/infer`, {
            inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [2, 1], data: ['héllo', 'triton'] }],
          });
          assert.equal(infer.status, 200, JSON.stringify(infer.body));
          const outputs = Object.fromEntries((infer.body['outputs'] as { name: string; data: unknown[] }[]).map((o) => [o.name, o.data]));
          assert.deepEqual(outputs, { UPPER: ['HÉLLO', 'TRITON'], LENGTH: [5, 6] });
        });
      } else {
        // This Triton build has the Python backend only: ONNX models (and any other backend) get as far
        // as looking for their backend, which is the first step after parsing config.pbtxt.
        it(`${model}: Triton parses the config; only the missing ${backend} backend stops the load`, async () => {
          const load = await triton(server, 'POST', `/v2/repository/models/${model}/load`);
          const error = String(load.body['error'] ?? '');
          assert.notEqual(load.status, 200, `${model} loaded, but this Triton has no ${backend} backend`);
          assert.doesNotMatch(error, CONFIG_REJECTED, `Triton rejected ${model}'s config.pbtxt: ${error}`);
          assert.match(error, backendMissing(backend), `Triton failed ${model} for another reason than the missing ${backend} backend: ${error}`);
          // Every version got as far as the backend lookup.
          const index = await triton(server, 'POST', '/v2/repository/index');
          const entries = (index.body as unknown as { name: string; version?: string; state?: string; reason?: string }[]).filter((e) => e.name === model);
          assert.ok(entries.length > 0, `${model} is not in Triton's repository index`);
          for (const entry of entries) assert.match(entry.reason ?? '', backendMissing(backend), `${model} v${entry.version}: ${entry.reason}`);
        });
      }
    }

    it('tells a broken config.pbtxt apart from a missing backend (control)', async () => {
      for (const [model, detail] of [
        ['control_misspelled_field', /has no field named "max_batch_sise"/],
        ['control_bad_enum', /Unknown enumeration value of "TYPE_FLOAT32"/],
      ] as const) {
        const load = await triton(server, 'POST', `/v2/repository/models/${model}/load`);
        const error = String(load.body['error'] ?? '');
        assert.match(error, CONFIG_REJECTED, `${model}: ${error}`);
        assert.doesNotMatch(error, /unable to find backend library/);
        // Triton's log names the exact mistake (its stderr may trail the HTTP answer a little).
        await waitFor(`Triton's log to name the mistake in ${model}`, () => detail.test(server.log()), 5_000);
        // The static check finds the same mistakes.
        assert.notDeepEqual(validateModelConfig(readConfig(model, scratch)), []);
      }
    });
  });
});
