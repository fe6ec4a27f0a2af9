import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GenerationEvent } from '../src/backends/generation.js';
import { TritonGenerate, type TritonGenerateOptions } from '../src/llm/triton-generate.js';
import { CancelSource } from '../src/scheduling/cancel-signal.js';

/** TritonGenerate against a fake Triton (node:http) that records what it is asked and answers as told. */
describe('triton-generate', () => {
  let server: http.Server;
  let url: string;
  let seen: { path: string; body: Record<string, unknown> }[];
  let answer: (res: http.ServerResponse, body: Record<string, unknown>) => void;

  beforeEach(async () => {
    seen = [];
    server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
        seen.push({ path: req.url ?? '', body });
        answer(res, body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const make = (inputs: string[], extra: Partial<TritonGenerateOptions> = {}): TritonGenerate =>
    new TritonGenerate({ endpoints: () => [{ endpoint: `${url}/`, state: 'closed', outstanding: 0 }], protocol: 'http', inputsOf: () => inputs, timeoutMs: 2000, ...extra });
  const collect = async (events: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> => {
    const out: GenerationEvent[] = [];
    for await (const e of events) out.push(e);
    return out;
  };
  const sse = (res: http.ServerResponse, events: unknown[]): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
    res.end();
  };

  it('shapes requests for a vLLM-style model and streams its pieces', async () => {
    answer = (res) => sse(res, [{ text_output: 'a' }, { text_output: ['b', 'c'] }]);
    const events = await collect(make(['text_input', 'stream', 'sampling_parameters', 'exclude_input_in_output']).generate('m', '2', { prompt: 'p', parameters: { max_tokens: 2, temperature: 0 } }));
    assert.deepEqual(seen[0], {
      path: '/v2/models/m/versions/2/generate_stream',
      body: { text_input: 'p', stream: true, exclude_input_in_output: true, sampling_parameters: '{"max_tokens":2,"temperature":0}' },
    });
    assert.deepEqual(events, [
      { type: 'delta', text: 'a', tokens: 1 },
      { type: 'delta', text: 'bc', tokens: 1 },
      { type: 'final', text: '', finishReason: 'length', usage: { prompt_tokens: 0, completion_tokens: 2 } },
    ]);
    assert.deepEqual(make([]).generationInfo('m', '2'), { info: { contextLength: 0, maxSequences: 64, defaultMaxTokens: 0, chatTemplate: false }, hosts: 1 });
  });

  it('maps sampling fields to inputs of their own name (TensorRT-LLM style)', async () => {
    answer = (res) => sse(res, [{ text_output: 'x' }]);
    const trt = make(['text_input', 'max_tokens', 'stop_words']);
    const events = await collect(trt.generate('m', '1', { prompt: 'p', parameters: { max_tokens: 5, stop: ['.'] } }));
    assert.deepEqual(seen[0]!.body, { text_input: 'p', max_tokens: 5, stop_words: ['.'] });
    assert.equal((events.at(-1) as { finishReason: string }).finishReason, 'stop');
    await assert.rejects(collect(trt.generate('m', '1', { prompt: 'p', parameters: { temperature: 1 } })), { code: 'UNSUPPORTED', message: /^temperature: model 'm' \(on Triton\) has no input to take it/ });
    await assert.rejects(collect(trt.generate('m', '1', { messages: [{ role: 'user', content: 'hi' }], parameters: {} })), { code: 'UNSUPPORTED', message: /^messages: / });
  });

  it('turns Triton errors into coded errors, before and during the stream', async () => {
    const statuses: [number, string][] = [
      [400, 'INVALID_ARGUMENT'],
      [404, 'NOT_FOUND'],
      [429, 'RESOURCE_EXHAUSTED'],
      [503, 'UNAVAILABLE'],
      [500, 'INTERNAL'],
    ];
    for (const [status, code] of statuses) {
      answer = (res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(status === 500 ? 'plain failure' : JSON.stringify({ error: `no (${status})` }));
      };
      await assert.rejects(collect(make(['text_input']).generate('m', '1', { prompt: 'p', parameters: {} })), (err: Error & { code: string }) => {
        assert.equal(err.code, code);
        assert.match(err.message, status === 500 ? /plain failure/ : new RegExp(`no \\(${status}\\)`));
        return true;
      });
    }
    answer = (res) => sse(res, [{ text_output: 'a' }, { error: 'engine died' }]);
    await assert.rejects(collect(make(['text_input']).generate('m', '1', { prompt: 'p', parameters: {} })), /Triton failed the generation: engine died/);
  });

  it('forwards a request unchanged and relays the answer', async () => {
    answer = (res, body) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ echoed: body }));
    };
    const reply = await make([]).forward('m', '1', false, Buffer.from('{"text_input":"x","weird":1}'));
    assert.equal(reply.status, 201);
    assert.equal(reply.contentType, 'application/json');
    let text = '';
    for await (const chunk of reply.body) text += chunk.toString();
    assert.deepEqual(JSON.parse(text), { echoed: { text_input: 'x', weird: 1 } });
    assert.equal(seen[0]!.path, '/v2/models/m/versions/1/generate');
  });

  it('refuses gRPC endpoints and open circuits, and reports unreachable or abandoned requests', async () => {
    await assert.rejects(make([], { protocol: 'grpc' }).forward('m', '1', true, Buffer.from('{}')), { code: 'UNSUPPORTED', message: /HTTP only/ });
    const open = make([], { endpoints: () => [{ endpoint: url, state: 'open', outstanding: 0 }] });
    assert.equal(open.generationInfo('m', '1'), undefined);
    await assert.rejects(open.forward('m', '1', true, Buffer.from('{}')), { code: 'UNAVAILABLE', message: /every circuit is open/ });
    const gone = make([], { endpoints: () => [{ endpoint: 'http://127.0.0.1:1', state: 'closed', outstanding: 0 }] });
    await assert.rejects(gone.forward('m', '1', true, Buffer.from('{}')), { code: 'UNAVAILABLE', message: /cannot reach Triton/ });
    answer = () => undefined; // never answers
    const signal = new CancelSource();
    const pending = make([]).forward('m', '1', true, Buffer.from('{}'), signal);
    await new Promise((r) => setTimeout(r, 50));
    signal.cancel();
    await assert.rejects(pending, { code: 'CANCELLED' });
  });
});
