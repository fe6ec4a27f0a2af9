import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeInferResponse, encodeInferRequest, TritonHttpClient } from '../src/backends/triton/client-http.js';
import { ErrorCode, type InferneoError } from '../src/errors.js';

type Handler = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;

/** A local HTTP server standing in for Triton; `handler` answers each request. */
async function fakeTriton(handler: Handler): Promise<{ url: string; close: () => Promise<void>; seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[] }> {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function rejection(p: Promise<unknown>): Promise<InferneoError> {
  try {
    await p;
  } catch (err) {
    return err as InferneoError;
  }
  assert.fail('expected a rejection');
}

const x = { name: 'X', datatype: 'FP32' as const, shape: [2, 2], data: Buffer.from(new Float32Array([1, 2, 3, 4]).buffer) };

describe('client-http', () => {
  it('encodes inference in the binary extension: JSON header, then the raw input bytes', () => {
    const { body, headerLength } = encodeInferRequest({ inputs: [x], outputs: ['Y'] });
    const header = JSON.parse(body.subarray(0, headerLength).toString()) as Record<string, unknown>;
    assert.deepEqual(header, { inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } }], outputs: [{ name: 'Y', parameters: { binary_data: true } }] });
    assert.deepEqual(body.subarray(headerLength), x.data);
    const all = encodeInferRequest({ inputs: [x], outputs: [] });
    assert.deepEqual((JSON.parse(all.body.subarray(0, all.headerLength).toString()) as { parameters: unknown }).parameters, { binary_data_output: true });
  });

  it('decodes binary and JSON outputs, and refuses malformed responses', () => {
    const head = Buffer.from(
      JSON.stringify({
        outputs: [
          { name: 'A', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
          { name: 'B', datatype: 'INT32', shape: [2], data: [7, 8] },
        ],
      }),
    );
    const a = Buffer.from(new Float32Array([0.5, 1.5]).buffer);
    const [outA, outB] = decodeInferResponse(Buffer.concat([head, a]), head.length, 'e');
    assert.deepEqual(outA, { name: 'A', datatype: 'FP32', shape: [1, 2], data: a });
    assert.deepEqual(outB!.data, Buffer.from(new Int32Array([7, 8]).buffer));
    assert.deepEqual(decodeInferResponse(Buffer.from('{}'), undefined, 'e'), []);
    const bad = (text: string, headerLength?: number, extra = Buffer.alloc(0)): InferneoError => {
      try {
        decodeInferResponse(Buffer.concat([Buffer.from(text), extra]), headerLength, 'e');
      } catch (err) {
        return err as InferneoError;
      }
      assert.fail('expected an error');
    };
    assert.match(bad('{oops').message, /Triton e sent a malformed inference response/);
    assert.match(bad('{"outputs":[{"name":"A","datatype":"NOPE","shape":[1]}]}').message, /malformed output tensor/);
    const beyond = '{"outputs":[{"name":"A","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":8}}]}';
    assert.match(bad(beyond, beyond.length, Buffer.alloc(4)).message, /binary_data_size 8 beyond the body/);
    assert.equal(bad(beyond, beyond.length).code, ErrorCode.INTERNAL);
  });

  it("speaks Triton's HTTP API: health, index, config, load with a config override, unload, infer", async () => {
    const out = Buffer.from(new Float32Array([9, 8]).buffer);
    const server = await fakeTriton((req, _body, res) => {
      if (req.url === '/v2/health/ready') return void res.writeHead(200).end();
      if (req.url === '/v2/repository/index') return void res.writeHead(200, { 'content-type': 'application/json' }).end('[{"name":"m","version":"1","state":"READY"}]');
      if (req.url === '/v2/models/m%2Fx/config') return void res.writeHead(200).end('{"name":"m/x","max_batch_size":4}');
      if (req.url!.endsWith('/load') || req.url!.endsWith('/unload')) return void res.writeHead(200).end();
      if (req.url === '/v2/models/m/versions/1/infer') {
        const head = Buffer.from(JSON.stringify({ model_name: 'm', outputs: [{ name: 'Y', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }] }));
        return void res.writeHead(200, { 'inference-header-content-length': String(head.length) }).end(Buffer.concat([head, out]));
      }
      res.writeHead(404).end('{"error":"no"}');
    });
    const client = new TritonHttpClient(server.url, { connections: 2 });
    try {
      assert.equal(await client.serverReady(1000), true);
      assert.deepEqual(await client.repositoryIndex(1000), [{ name: 'm', version: '1', state: 'READY' }]);
      assert.deepEqual(await client.modelConfig('m/x', 1000), { name: 'm/x', max_batch_size: 4 });
      await client.loadModel('m', { name: 'm', version_policy: { specific: { versions: [1] } } }, 1000);
      await client.loadModel('m', undefined, 1000);
      await client.unloadModel('m', 1000);
      const [y] = await client.infer('m', '1', { inputs: [x], outputs: [] }, 1000);
      assert.deepEqual(y, { name: 'Y', datatype: 'FP32', shape: [1, 2], data: out });
      const load = server.seen.find((s) => s.url === '/v2/repository/models/m/load')!;
      assert.deepEqual(JSON.parse(load.body.toString()), { parameters: { config: '{"name":"m","version_policy":{"specific":{"versions":[1]}}}' } });
      const infer = server.seen.find((s) => s.url.endsWith('/infer'))!;
      assert.equal(infer.headers['content-type'], 'application/octet-stream');
      const headerLength = Number(infer.headers['inference-header-content-length']);
      assert.deepEqual(infer.body.subarray(headerLength), x.data);
      assert.ok(server.seen.length >= 7);
      // Errors: Triton's status and message.
      const missing = await rejection(client.infer('nope', '1', { inputs: [x], outputs: [] }, 1000));
      assert.equal(missing.code, ErrorCode.NOT_FOUND);
      assert.equal(missing.message, `Triton ${server.url}: no`);
      assert.equal((await rejection(client.modelConfig('nope', 1000))).code, ErrorCode.NOT_FOUND);
    } finally {
      await client.close();
      await client.close();
      await server.close();
    }
  });

  it('reports not-ready, malformed JSON, timeouts and refused connections with stable codes', async () => {
    const server = await fakeTriton((req, _body, res) => {
      if (req.url === '/v2/health/ready') return void res.writeHead(503).end();
      if (req.url === '/v2/repository/index') return void res.writeHead(200).end('not json');
      if (req.url!.endsWith('/config')) return void res.writeHead(200).end();
      if (req.url!.endsWith('/load')) return; // never answers
      res.writeHead(200).end('[]');
    });
    const client = new TritonHttpClient(server.url);
    try {
      assert.equal(await client.serverReady(1000), false);
      assert.match((await rejection(client.repositoryIndex(1000))).message, /answered POST \/v2\/repository\/index with malformed JSON/);
      assert.equal(await client.modelConfig('m', 1000), undefined);
      const slow = await rejection(client.loadModel('m', undefined, 200));
      assert.equal(slow.code, ErrorCode.DEADLINE_EXCEEDED);
      assert.equal(slow.message, `Triton ${server.url} did not answer within 200 ms`);
    } finally {
      await client.close();
      await server.close();
    }
    const gone = new TritonHttpClient(server.url);
    const refused = await rejection(gone.serverReady(1000));
    assert.equal(refused.code, ErrorCode.UNAVAILABLE);
    assert.match(refused.message, /cannot be reached: .*ECONNREFUSED/);
    await gone.close();
  });
});
