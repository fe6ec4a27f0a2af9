import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePbtxt } from '../src/protocol/pbtxt.js';
import { metadataShape, parseModelConfig } from '../src/registry/model-config.js';
import { scanRepository, servedVersions } from '../src/registry/model-repository.js';
import { ROOT } from './helpers.js';

const CLASSIFIER = `
name: "clf"   # trailing comment
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { all { } }
input [
  { name: "x", data_type: TYPE_FP32, dims: [ 4 ] }
]
output { name: "y" data_type: TYPE_INT64 dims: [ 1 ] }
output { name: "s" data_type: TYPE_STRING dims: [ -1, 2 ] }
instance_group [ { count: 2, kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
parameters { key: "k" value: { string_value: "v" } }
`;

describe('pbtxt', () => {
  it('parses messages, lists, repeated fields, enums, strings and numbers', () => {
    const m = parsePbtxt(`a: 1 b: -2.5e3 c: "x\\n\\"y" 'z' d: TYPE_FP32 e { f: [1, 2] f: 3 } g: < h: true > i: 0x1F j: []`);
    assert.deepEqual(m['a'], [1]);
    assert.deepEqual(m['b'], [-2500]);
    assert.deepEqual(m['c'], ['x\n"yz']);
    assert.deepEqual(m['d'], ['TYPE_FP32']);
    assert.deepEqual(m['e'], [{ f: [1, 2, 3] }]);
    assert.deepEqual(m['g'], [{ h: ['true'] }]);
    assert.deepEqual(m['i'], [31]);
    assert.deepEqual(m['j'], []);
    assert.deepEqual(parsePbtxt(`s: "\\101\\x41" n: -inf t: nan_mode`)['s'], ['AA']);
  });

  it('reports syntax errors with line and column', () => {
    assert.throws(() => parsePbtxt('a: 1\nb: {\n'), /expected '}' before the end of the text at line 3/);
    assert.throws(() => parsePbtxt('a 1'), /expected ':' or '\{' after field 'a' at line 1, column 3/);
    assert.throws(() => parsePbtxt('a: "open'), /unterminated string at line 1/);
    assert.throws(() => parsePbtxt('a: $'), /unexpected character "\$" at line 1, column 4/);
    assert.throws(() => parsePbtxt('a: [1 2]'), /expected ',' or ']'/);
    assert.deepEqual(parsePbtxt('a [{ b: 1 }]')['a'], [{ b: [1] }]);
    assert.throws(() => parsePbtxt('a: }'), /expected a value/);
    assert.throws(() => parsePbtxt('a: "\\q"'), /unknown escape/);
  });
});

describe('model-config', () => {
  it('reads Triton fields into a typed config and Triton JSON', () => {
    const c = parseModelConfig(CLASSIFIER, 'clf');
    assert.equal(c.backend, 'onnxruntime');
    assert.equal(c.max_batch_size, 8);
    assert.deepEqual(c.input, [{ name: 'x', data_type: 'TYPE_FP32', datatype: 'FP32', dims: [4], optional: false }]);
    assert.deepEqual(c.output.map((o) => o.datatype), ['INT64', 'BYTES']);
    assert.deepEqual(c.version_policy, { all: {} });
    assert.deepEqual(c.instance_group, [{ kind: 'KIND_CPU', count: 2 }]);
    assert.deepEqual(metadataShape(c, c.output[1]!), [-1, -1, 2]);
    assert.deepEqual(c.json['dynamic_batching'], { preferred_batch_size: [4, 8], max_queue_delay_microseconds: 100 });
    assert.deepEqual(c.json['parameters'], { k: { string_value: 'v' } });
    assert.deepEqual((c.json['input'] as unknown[])[0], { name: 'x', data_type: 'TYPE_FP32', dims: [4] });
  });

  it('writes singular message and string fields as Triton does, not as lists', () => {
    const c = parseModelConfig(
      `name: "s" backend: "python" max_batch_size: 0
       input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
       output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] label_filename: "labels.txt" } ]
       instance_group [ { kind: KIND_CPU count: 1 host_policy: "h" } ]
       model_transaction_policy { decoupled: true }
       response_cache { enable: true }`,
      's',
    );
    assert.deepEqual(c.json['model_transaction_policy'], { decoupled: true });
    assert.deepEqual(c.json['response_cache'], { enable: true });
    assert.equal((c.json['output'] as Record<string, unknown>[])[0]!['label_filename'], 'labels.txt');
    assert.equal((c.json['instance_group'] as Record<string, unknown>[])[0]!['host_policy'], 'h');
  });

  it('applies Triton defaults', () => {
    const c = parseModelConfig('backend: "python"', 'p');
    assert.equal(c.max_batch_size, 0);
    assert.deepEqual(c.version_policy, { latest: { num_versions: 1 } });
    assert.deepEqual(c.instance_group, [{ kind: 'KIND_CPU', count: 1 }]);
    assert.deepEqual(metadataShape(c, { name: 'a', data_type: 'TYPE_FP32', datatype: 'FP32', dims: [3], optional: false }), [3]);
    assert.deepEqual(parseModelConfig('backend: "python" version_policy { specific { versions: [1, 3] } }', 'p').version_policy, { specific: { versions: [1, 3] } });
    assert.deepEqual(parseModelConfig('backend: "python" version_policy { latest { num_versions: 2 } }', 'p').version_policy, { latest: { num_versions: 2 } });
  });

  it('rejects configs Triton would reject, naming the model', () => {
    assert.throws(() => parseModelConfig('name: "other" backend: "python"', 'p'), /model 'p': config.pbtxt names the model "other"/);
    assert.throws(() => parseModelConfig('max_batch_size: 1', 'p'), /must set 'platform' or 'backend'/);
    assert.throws(() => parseModelConfig('backend: "python" input [{ name: "a" data_type: TYPE_FP7 dims: [1] }]', 'p'), /input 'a' has unknown data_type "TYPE_FP7"/);
    assert.throws(() => parseModelConfig('backend: "python" max_batch_size: -1', 'p'), /max_batch_size must be >= 0/);
    assert.throws(() => parseModelConfig('backend: "python" max_batch_size: "x"', 'p'), /max_batch_size must be an integer/);
    assert.throws(() => parseModelConfig('backend: "python" output [{ data_type: TYPE_FP32 }]', 'p'), /output\[0\] needs a name/);
    assert.throws(() => parseModelConfig('backend: {', 'p'), /model 'p': config.pbtxt: .* at line 1/);
  });

  it('parses every bundled config.pbtxt', async () => {
    const models = await scanRepository(path.join(ROOT, 'model-repository'));
    assert.ok(models.length >= 2);
    for (const m of models) assert.equal(m.error, undefined, `${m.name}: ${m.error}`);
    const classifier = models.find((m) => m.name === 'classifier')!;
    assert.deepEqual(classifier.servedVersions, ['1', '2']);
    // Map fields (warm-up inputs) become JSON objects, repeated messages arrays, as in Triton's JSON.
    const warmup = classifier.config!.json['model_warmup'] as { name: string; inputs: Record<string, { dims: number[]; zero_data?: boolean }> }[];
    assert.equal(warmup[0]!.name, 'zeros_batch_4');
    assert.deepEqual(warmup[0]!.inputs['features']!.dims, [16]);
    assert.equal(warmup[0]!.inputs['features']!.zero_data, true);
  });
});

describe('model-repository', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'inferneo-repo-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lists versions numerically and applies the version policy', async () => {
    for (const v of ['1', '2', '10', 'notes']) mkdirSync(path.join(dir, 'm', v), { recursive: true });
    writeFileSync(path.join(dir, 'm', 'config.pbtxt'), 'backend: "python"');
    mkdirSync(path.join(dir, 'broken', '1'), { recursive: true });
    writeFileSync(path.join(dir, 'broken', 'config.pbtxt'), 'backend: {');
    mkdirSync(path.join(dir, 'noconfig', '1'), { recursive: true });
    mkdirSync(path.join(dir, '.hidden'));
    const [broken, m, noconfig] = await scanRepository(dir);
    assert.deepEqual(m!.versions, ['1', '2', '10']);
    assert.deepEqual(m!.servedVersions, ['10']);
    assert.match(broken!.error!, /config.pbtxt/);
    assert.match(noconfig!.error!, /has no config.pbtxt/);
    assert.deepEqual(servedVersions(parseModelConfig('backend: "python" version_policy { all {} }', 'm'), m!.versions), ['1', '2', '10']);
    await assert.rejects(scanRepository(path.join(dir, 'missing')), /is not a directory/);
  });
});
