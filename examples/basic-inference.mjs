#!/usr/bin/env node
// Basic inference against a running Inferneo (`npm start`), with nothing but Node's fetch:
// server and model metadata, a JSON request to each classifier version, a binary-tensor request,
// and the Python (BYTES) model.
//
//   node examples/basic-inference.mjs [--url http://127.0.0.1:8000]
const i = process.argv.indexOf('--url');
const url = i > 0 ? process.argv[i + 1] : process.env.INFERNEO_URL ?? 'http://127.0.0.1:8000';

async function call(path, init) {
  const res = await fetch(url + path, init);
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res;
}
const post = (path, body) => call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const server = await (await call('/v2')).json();
console.log(`server: ${server.name} ${server.version}`);
const meta = await (await call('/v2/models/classifier')).json();
console.log(`classifier: versions ${meta.versions.join(', ')}; input ${meta.inputs[0].name} ${meta.inputs[0].datatype} [${meta.inputs[0].shape}]`);

// One sample of 16 features, as JSON.
const features = Array.from({ length: 16 }, (_, k) => Math.sin(k));
for (const version of meta.versions) {
  const out = await (await post(`/v2/models/classifier/versions/${version}/infer`, {
    inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: features }],
  })).json();
  const probs = out.outputs.find((o) => o.name === 'probabilities').data;
  const label = out.outputs.find((o) => o.name === 'label').data[0];
  console.log(`classifier v${out.model_version}: label ${label}, probabilities ${probs.map((p) => p.toFixed(4)).join(' ')}`);
}

// The same with Triton's binary tensor extension: raw float32 bytes after the JSON header.
const raw = Buffer.from(new Float32Array(features).buffer);
const header = Buffer.from(JSON.stringify({
  inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], parameters: { binary_data_size: raw.length } }],
  outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
}));
const res = await call('/v2/models/classifier/infer', {
  method: 'POST',
  headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
  body: Buffer.concat([header, raw]),
});
const body = Buffer.from(await res.arrayBuffer());
const headerLength = Number(res.headers.get('inference-header-content-length'));
const binaryProbs = new Float32Array(body.buffer.slice(body.byteOffset + headerLength, body.byteOffset + body.length));
console.log(`binary: model_version ${JSON.parse(body.subarray(0, headerLength)).model_version}, probabilities ${Array.from(binaryProbs, (p) => p.toFixed(4)).join(' ')}`);

// The Python model takes strings (BYTES).
const text = await (await post('/v2/models/text_stats/infer', {
  inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [2, 1], data: ['hello inferneo', 'grüße'] }],
})).json();
const upper = text.outputs.find((o) => o.name === 'UPPER').data;
const length = text.outputs.find((o) => o.name === 'LENGTH').data;
console.log(`text_stats: ${upper.map((u, k) => `${u} (${length[k]} chars)`).join(', ')}`);
