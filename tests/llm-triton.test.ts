import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { admin, ROOT, startStack } from './support/stack.js';
import { startTriton, type TritonServer } from './support/triton-server.js';

/**
 * LLMs served by a real tritonserver (2.51, CPU, Python backend): `tri_llm`
 * (tests/llm/triton-models) is a decoupled model shaped like Triton's vLLM backend. Triton's generate
 * extension passes through to Triton unchanged; OpenAI's /v1/completions is translated into Triton
 * generate_stream requests. SmolLM2 on the Python workers serves beside it, in the same route.
 */
describe('LLMs on Triton: generate pass-through and OpenAI /v1 (real tritonserver)', function () {
  this.timeout(180_000);
  let repo: string;
  let triton: TritonServer;
  let stack: Awaited<ReturnType<typeof startStack>>;
  let client: OpenAI;

  const post = (base: string, p: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  before(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'inferneo-triton-llm-'));
    cpSync(path.join(ROOT, 'tests', 'llm', 'triton-models'), repo, { recursive: true });
    triton = await startTriton({ modelRepository: repo });
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.triton.endpoints = [triton.httpUrl];
      c.triton.models = ['tri_llm'];
      c.models.startup = ['tri_llm', 'smollm2'];
    });
    client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await stack?.close();
    await triton?.stop();
    if (repo !== undefined) rmSync(repo, { recursive: true, force: true });
  });

  it('passes generate and generate_stream through to Triton unchanged, errors included', async () => {
    const body = { text_input: 'Count:', sampling_parameters: '{"max_tokens": 3}' };
    const direct = await (await post(triton.httpUrl, '/v2/models/tri_llm/generate', body)).text();
    const via = await post(stack.url, '/v2/models/tri_llm/generate', body);
    assert.equal(via.status, 200);
    assert.equal(via.headers.get('x-inferneo-arm'), 'tri_llm-v1');
    assert.equal(await via.text(), direct);
    assert.deepEqual(JSON.parse(direct), { model_name: 'tri_llm', model_version: '1', text_output: 'Count: one two three' });

    const streamed = { ...body, stream: true };
    const directStream = await (await post(triton.httpUrl, '/v2/models/tri_llm/generate_stream', streamed)).text();
    const viaStream = await post(stack.url, '/v2/models/tri_llm/versions/1/generate_stream', streamed);
    assert.match(viaStream.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(await viaStream.text(), directStream);
    assert.equal(directStream.split('\n\n').filter((e) => e.startsWith('data: ')).length, 3);

    const refused = await post(stack.url, '/v2/models/tri_llm/generate_stream', { text_input: 'x', stream: true, sampling_parameters: '{"max_tokens": 0}' });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /max_tokens must be at least 1/);
    assert.equal((await post(stack.url, '/v2/models/tri_llm/versions/7/generate', body)).status, 404);
  });

  it('translates OpenAI completions into Triton generate_stream requests', async () => {
    assert.deepEqual(
      (await client.models.list()).data.map((m) => m.id),
      ['smollm2', 'tri_llm'],
    );
    const whole = await client.completions.create({ model: 'tri_llm', prompt: 'Count:', max_tokens: 3 });
    assert.equal(whole.choices[0]!.text, ' one two three');
    assert.equal(whole.choices[0]!.finish_reason, 'length');
    assert.equal(whole.usage!.completion_tokens, 3);
    let text = '';
    for await (const chunk of await client.completions.create({ model: 'tri_llm', prompt: 'Count:', max_tokens: 5, stream: true })) text += chunk.choices[0]?.text ?? '';
    assert.equal(text, ' one two three four five');
    const all = await client.completions.create({ model: 'tri_llm', prompt: 'Count:', max_tokens: 100 });
    assert.equal(all.choices[0]!.finish_reason, 'stop');
    await assert.rejects(
      client.chat.completions.create({ model: 'tri_llm', messages: [{ role: 'user', content: 'hi' }] }),
      (err: Error) => err instanceof OpenAI.BadRequestError && /applies no chat template/.test(err.message),
    );
  });

  it('routes between an LLM on the workers and one on Triton, per arm', async () => {
    const put = await admin(stack.url, 'PUT', '/routes/mixed', {
      arms: [
        { name: 'local', model: 'smollm2', version: '2', weight: 50 },
        { name: 'triton', model: 'tri_llm', version: '1', weight: 50 },
      ],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    for (const arm of ['local', 'triton']) {
      const res = await post(stack.url, '/v2/models/mixed/generate', { text_input: 'Count:', sampling_parameters: '{"max_tokens": 2}' }, { 'x-inferneo-arm': arm });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-inferneo-arm'), arm);
      const out = (await res.json()) as { model_name: string; text_output: string };
      assert.equal(out.model_name, arm === 'local' ? 'smollm2' : 'tri_llm');
      if (arm === 'triton') assert.equal(out.text_output, 'Count: one two');
    }
    const stats = await admin<{ arms: { arm: string; requests: number }[] }>(stack.url, 'GET', '/routes/mixed/stats');
    assert.deepEqual(
      stats.body.arms.map((a) => [a.arm, a.requests]),
      [
        ['local', 1],
        ['triton', 1],
      ],
    );
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    assert.match(metrics, /^inferneo_time_to_first_token_seconds_count\{model="tri_llm",version="1"\} [1-9]/m);
  });
});
