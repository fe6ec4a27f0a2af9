import assert from 'node:assert/strict';
import http from 'node:http';
import { binaryRequest, features, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Every kind of bad request gets a clear 4xx/503 naming the problem, and the server stays correct. */
describe('bad input (real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;
  const LIMIT = 64 * 1024;

  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.http.max_request_bytes = LIMIT;
    });
  });
  after(async () => {
    await stack?.close();
  });

  const good = { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array.from(features(16, 1)) }] };
  const send = async (path: string, body: string | Buffer, headers: Record<string, string> = {}, method = 'POST'): Promise<{ status: number; error: string }> => {
    const res = await fetch(stack.url + path, { method, body: method === 'GET' ? null : body, headers: { 'content-type': 'application/json', ...headers } });
    const text = await res.text();
    let error = '';
    if (text !== '') {
      const parsed = JSON.parse(text) as { error?: string };
      error = parsed.error ?? '';
    }
    return { status: res.status, error };
  };
  const infer = (body: unknown, model = 'classifier'): ReturnType<typeof send> => send(`/v2/models/${model}/infer`, JSON.stringify(body));

  const cases: [string, () => ReturnType<typeof send>, number, RegExp][] = [
    ['unknown model', () => infer(good, 'nope'), 404, /unknown model 'nope'/],
    ['unknown version', () => send('/v2/models/classifier/versions/9/infer', JSON.stringify(good)), 404, /unknown version '9' of model 'classifier'; its versions are 1, 2/],
    ['unknown version metadata', () => send('/v2/models/classifier/versions/9', '', {}, 'GET'), 404, /unknown version '9'/],
    ['unknown model config', () => send('/v2/models/nope/config', '', {}, 'GET'), 404, /unknown model 'nope'/],
    ['wrong datatype', () => infer({ inputs: [{ ...good.inputs[0], datatype: 'FP64' }] }), 400, /input 'features': datatype FP64 does not match the model's FP32/],
    ['wrong shape', () => infer({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 15], data: Array(15).fill(0) }] }), 400, /shape \[1,15\] does not match the model's \[-1,16\]/],
    ['wrong element count', () => infer({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array(15).fill(0) }] }), 400, /needs 16 elements, 'data' has 15/],
    ['wrong byte size', () => {
      const { body, headers } = binaryRequest({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], parameters: { binary_data_size: 60 } }] }, Buffer.alloc(60));
      return send('/v2/models/classifier/infer', body, headers);
    }, 400, /needs 64 bytes, 'binary_data_size' is 60/],
    ['missing input', () => infer({ inputs: [{ name: 'other', datatype: 'FP32', shape: [1], data: [1] }] }), 400, /unexpected input 'other'/],
    ['no inputs', () => infer({ inputs: [] }), 400, /non-empty 'inputs'/],
    ['malformed JSON', () => send('/v2/models/classifier/infer', '{"inputs": [{"name": '), 400, /malformed JSON/],
    ['truncated binary body', () => {
      const { body, headers } = binaryRequest({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], parameters: { binary_data_size: 64 } }] }, Buffer.alloc(64));
      return send('/v2/models/classifier/infer', body.subarray(0, body.length - 10), headers);
    }, 400, /binary data is truncated: expected 64 bytes, 54 remain/],
    ['header length past the body', () => send('/v2/models/classifier/infer', JSON.stringify(good), { 'inference-header-content-length': '100000' }), 400, /Inference-Header-Content-Length is 100000/],
    ['batch over max_batch_size', () => infer({ inputs: [{ name: 'features', datatype: 'FP32', shape: [65, 16], data: Array(65 * 16).fill(0) }] }), 400, /batch size 65 is outside 1\.\.64/],
    ['unknown output', () => infer({ ...good, outputs: [{ name: 'logits' }] }), 400, /unknown output 'logits'/],
    ['unsupported content encoding', () => send('/v2/models/classifier/infer', JSON.stringify(good), { 'content-encoding': 'br' }), 400, /Content-Encoding 'br' is not supported/],
    ['corrupt gzip body', () => send('/v2/models/classifier/infer', 'not gzip', { 'content-encoding': 'gzip' }), 400, /not valid gzip data/],
    ['wrong method', () => send('/v2/models/classifier/infer', '', {}, 'GET'), 405, /GET is not allowed on \/v2\/models\/classifier\/infer; use POST/],
    ['unknown endpoint', () => send('/v2/models/classifier/explode', '', {}, 'GET'), 404, /no such endpoint/],
    ['unknown repository model', () => send('/v2/repository/models/nope/load', '{}'), 404, /unknown model 'nope'/],
    ['bad index body', () => send('/v2/repository/index', '{"ready": "yes"}'), 400, /'ready' must be true or false/],
    ['body over the limit', () => send('/v2/models/classifier/infer', JSON.stringify({ ...good, pad: 'x'.repeat(LIMIT) })), 413, /exceeds the limit of 65536 bytes/],
    ['malformed URL', () => send('/v2/models/%E0%A4%A/infer', '{}'), 400, /malformed URL path/],
  ];
  for (const [what, run, status, message] of cases) {
    it(`${what} → ${status}`, async () => {
      const { status: got, error } = await run();
      assert.equal(got, status, error);
      assert.match(error, message);
    });
  }

  it('refuses an oversized chunked upload with 413 without reading it all', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${stack.url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 40 && req.write(chunk)) sent++;
        if (sent < 40) req.once('drain', pump);
        else req.end();
      };
      pump();
    });
    assert.equal(status, 413);
  });

  it('is still up and correct after all of that', async () => {
    const res = await fetch(`${stack.url}/v2/models/classifier/infer`, { method: 'POST', body: JSON.stringify(good) });
    assert.equal(res.status, 200);
    assert.equal((await fetch(`${stack.url}/v2/health/ready`)).status, 200);
  });
});

describe('no worker available (real orchestrator)', function () {
  this.timeout(60_000);
  it('answers 503 with the reason, and readiness says not ready', async () => {
    const stack = await startStack((c) => {
      c.workers.spawn = 0;
    });
    try {
      const res = await fetch(`${stack.url}/v2/models/classifier/infer`, {
        method: 'POST',
        body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array(16).fill(0) }] }),
      });
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { error: string }).error, /no worker is connected/);
      assert.equal((await fetch(`${stack.url}/v2/health/ready`)).status, 503);
      assert.equal((await fetch(`${stack.url}/v2/health/live`)).status, 200);
    } finally {
      await stack.close();
    }
  });
});
