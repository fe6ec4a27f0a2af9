import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { metric, workerInferences } from './support/llm.js';
import { admin, startStack, waitFor } from './support/stack.js';

/**
 * LLM serving end to end: real Python workers running SmolLM2-135M (llama.cpp), the official
 * `openai` client and `curl -N` against /v1, plain HTTP against Triton's generate extension.
 * Generations stay short (a few dozen tokens): the machine is small and shared.
 */

type Stack = Awaited<ReturnType<typeof startStack>>;

function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

/** The `data:` payloads of a server-sent events body. */
function events(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
}

function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', ...args]);
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
  });
}

describe('LLM serving: OpenAI /v1 and Triton generate (real workers, SmolLM2)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let client: OpenAI;

  before(async () => {
    stack = await startStack();
    client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  });
  after(async () => {
    await stack?.close();
  });

  it('lists the models that generate text, and nothing else', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['smollm2'],
    );
    assert.equal(models.data[0]!.object, 'model');
    const one = await client.models.retrieve('smollm2');
    assert.equal(one.owned_by, 'inferneo');
    await assert.rejects(client.models.retrieve('classifier'), (err: Error) => err instanceof OpenAI.NotFoundError);
  });

  it('answers a chat completion through the openai client, with usage and the version that served', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'smollm2', messages: [{ role: 'user', content: 'What is the capital of France?' }], max_tokens: 12, temperature: 0 })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.match(data.id, /^chatcmpl-/);
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0]!.message.role, 'assistant');
    assert.match(data.choices[0]!.message.content ?? '', /Paris/);
    assert.ok(['stop', 'length'].includes(data.choices[0]!.finish_reason));
    assert.ok(data.usage!.prompt_tokens > 10);
    assert.ok(data.usage!.completion_tokens >= 1 && data.usage!.completion_tokens <= 12);
    assert.equal(data.usage!.total_tokens, data.usage!.prompt_tokens + data.usage!.completion_tokens);
    // The highest version serves a plain model name.
    assert.equal(data.system_fingerprint, 'smollm2-v2');
    assert.equal(response.headers.get('x-inferneo-arm'), 'smollm2-v2');
  });

  it('streams a chat completion through the openai client, with the usage chunk last', async () => {
    const stream = await client.chat.completions.create({
      model: 'smollm2',
      messages: [{ role: 'user', content: 'Count from one to five.' }],
      max_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice !== undefined) {
        role ??= choice.delta.role;
        text += choice.delta.content ?? '';
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(role, 'assistant');
    assert.ok(chunks >= 3, `only ${chunks} chunks`);
    assert.ok(text.length > 0);
    assert.ok(finish === 'stop' || finish === 'length');
    assert.ok(usage !== undefined && usage !== null);
    assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 16);
  });

  it('answers completions whole, echoed and streamed; 16 tokens unless told', async () => {
    const whole = await client.completions.create({ model: 'smollm2', prompt: 'The capital of France is', temperature: 0, stop: ['.'] });
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.choices[0]!.text, ' Paris');
    assert.equal(whole.choices[0]!.finish_reason, 'stop');
    const echoed = await client.completions.create({ model: 'smollm2', prompt: 'Hello', echo: true, max_tokens: 3, temperature: 0 });
    assert.ok(echoed.choices[0]!.text.startsWith('Hello'));
    const capped = await client.completions.create({ model: 'smollm2', prompt: 'Once upon a time', seed: 7, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    assert.equal(capped.usage!.completion_tokens, 16);
    assert.equal(capped.choices[0]!.finish_reason, 'length');
    let text = '';
    for await (const chunk of await client.completions.create({ model: 'smollm2', prompt: 'The capital of France is', max_tokens: 4, temperature: 0, stream: true })) {
      text += chunk.choices[0]?.text ?? '';
    }
    assert.match(text, /Paris/);
  });

  it('streams to curl -N as server-sent events ending in data: [DONE]', async () => {
    const body = JSON.stringify({ model: 'smollm2', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8, stream: true });
    const { code, stdout } = await curl(['-N', '-X', 'POST', `${stack.url}/v1/chat/completions`, '-H', 'content-type: application/json', '-d', body]);
    assert.equal(code, 0);
    const data = events(stdout);
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: { finish_reason: string | null }[] });
    assert.ok(chunks.length >= 3);
    assert.ok(chunks.at(-1)!.choices[0]!.finish_reason !== null);
  });

  it('serves Triton generate and generate_stream, versions and routes included', async () => {
    const res = await post(stack.url, '/v2/models/smollm2/versions/1/generate', { id: 'g1', text_input: 'The capital of France is', parameters: { max_tokens: 4, temperature: 0 } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, string>;
    assert.deepEqual(Object.keys(body).sort(), ['id', 'model_name', 'model_version', 'text_output']);
    assert.equal(body['model_version'], '1');
    assert.ok(body['text_output']!.startsWith('The capital of France is Paris'));
    const excluded = (await (
      await post(stack.url, '/v2/models/smollm2/generate', { text_input: 'The capital of France is', exclude_input_in_output: true, sampling_parameters: '{"max_tokens": 2, "temperature": 0}' })
    ).json()) as Record<string, string>;
    assert.equal(excluded['text_output'], ' Paris.');

    const { code, stdout } = await curl([
      '-N',
      '-X',
      'POST',
      `${stack.url}/v2/models/smollm2/generate_stream`,
      '-d',
      JSON.stringify({ text_input: 'The capital of France is', max_tokens: 4, temperature: 0 }),
    ]);
    assert.equal(code, 0);
    const pieces = events(stdout).map((d) => JSON.parse(d) as Record<string, string>);
    assert.ok(pieces.length >= 2);
    for (const p of pieces) assert.equal(p['model_name'], 'smollm2');
    assert.match(pieces.map((p) => p['text_output']).join(''), /^ Paris/);

    const refused = await post(stack.url, '/v2/models/smollm2/generate', { text_input: 'x', max_tokens: 0 });
    assert.equal(refused.status, 400);
    assert.match(((await refused.json()) as { error: string }).error, /^max_tokens: must be at least 1/);
    assert.equal((await fetch(`${stack.url}/v2/models/smollm2/generate`)).status, 405);
    const unknownInput = await post(stack.url, '/v2/models/smollm2/generate', { text_input: 'x', image: 'y' });
    assert.match(((await unknownInput.json()) as { error: string }).error, /^image: unexpected inference input/);
    const tensorModel = await post(stack.url, '/v2/models/classifier/generate', { text_input: 'x' });
    assert.equal(tensorModel.status, 400);
    const decoupled = await post(stack.url, '/v2/models/smollm2/infer', { inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], data: ['hi'] }] });
    assert.equal(decoupled.status, 400);
    assert.match(((await decoupled.json()) as { error: string }).error, /decoupled text-generation model/);
  });

  it('refuses bad input with 400/404 naming the field, without disturbing a running sequence', async () => {
    // A sequence that runs while the bad requests come in; it must end as asked.
    const long = client.chat.completions.create({
      model: 'smollm2',
      messages: [{ role: 'user', content: 'Tell me a story.' }],
      max_tokens: 48,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    const chat = (extra: Record<string, unknown>): Record<string, unknown> => ({ model: 'smollm2', messages: [{ role: 'user', content: 'hi' }], ...extra });
    const cases: [Record<string, unknown>, number, string | null, RegExp][] = [
      [chat({ model: 'no-such-model' }), 404, null, /The model 'no-such-model' does not exist/],
      [chat({ max_tokens: 0 }), 400, 'max_tokens', /must be at least 1/],
      [chat({ max_tokens: 5000 }), 400, 'max_tokens', /exceed the model's context of 1024 tokens/],
      [chat({ messages: [{ role: 'user', content: 'word '.repeat(1200) }] }), 400, 'messages', /the prompt is \d+ tokens; the model's context holds 1024/],
      [chat({ messages: [{ role: 'user' }] }), 400, 'messages[0].content', /is required/],
      [chat({ messages: [{ role: 'wizard', content: 'x' }] }), 400, 'messages[0].role', /must be system, developer, user or assistant/],
      [chat({ messages: 'hi' }), 400, 'messages', /non-empty list/],
      [chat({ n: 2 }), 400, 'n', /n other than 1/],
      [chat({ temperature: -1 }), 400, 'temperature', /at least 0/],
      [chat({ logprobs: true }), 400, 'logprobs', /not supported/],
      [chat({ frobnicate: 1 }), 400, 'frobnicate', /unrecognized request argument/],
      [chat({ model: 'classifier' }), 400, null, /does not generate text/],
    ];
    for (const [body, status, param, message] of cases) {
      const res = await post(stack.url, '/v1/chat/completions', body);
      const error = ((await res.json()) as { error: { message: string; type: string; param: string | null; code: string } }).error;
      assert.equal(res.status, status, JSON.stringify(error));
      assert.equal(error.param, param, error.message);
      assert.match(error.message, message);
      assert.equal(error.type, status === 404 ? 'not_found_error' : 'invalid_request_error');
      assert.equal(typeof error.code, 'string');
    }
    const malformed = await fetch(`${stack.url}/v1/completions`, { method: 'POST', body: '{"model": ' });
    assert.equal(malformed.status, 400);
    assert.match(((await malformed.json()) as { error: { message: string } }).error.message, /not valid JSON/);
    assert.equal((await fetch(`${stack.url}/v1/embeddings`, { method: 'POST' })).status, 404);
    assert.equal((await fetch(`${stack.url}/v1/chat/completions`)).status, 405);
    await assert.rejects(
      client.chat.completions.create({ model: 'smollm2', messages: [{ role: 'user', content: 'hi' }], n: 3 }),
      (err: Error) => err instanceof OpenAI.BadRequestError && /n other than 1/.test(err.message),
    );

    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null = null;
    for await (const chunk of await long) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 48);
    assert.ok(text.length > 20);
  });

  it('stops the generation on the worker within a step when the client disconnects', async () => {
    const before = await workerInferences(stack);
    const metricsBefore = await (await fetch(`${stack.url}/metrics`)).text();
    const cancelledBefore = metric(metricsBefore, 'inferneo_request_failure_total', 'code="CANCELLED"') || 0;
    const abort = new AbortController();
    const res = await post(
      stack.url,
      '/v1/completions',
      { model: 'smollm2', prompt: 'Once upon a time', max_tokens: 1000, ignore_eos: true, stream: true },
      {},
      abort.signal,
    );
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 5) {
      const { value } = await reader.read();
      received += events(new TextDecoder().decode(value)).length;
    }
    const aborted = Date.now();
    abort.abort();
    // The worker ends the sequence (counted when it ends) long before 1000 tokens (~15 s here).
    let after = before;
    while (after === before && Date.now() - aborted < 5000) {
      await new Promise((r) => setTimeout(r, 50));
      after = await workerInferences(stack);
    }
    const stoppedMs = Date.now() - aborted;
    assert.equal(after, before + 1, 'the worker did not end the sequence');
    assert.ok(stoppedMs < 3000, `the worker took ${stoppedMs} ms to stop`);
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    assert.equal(metric(metrics, 'inferneo_request_failure_total', 'code="CANCELLED"'), cancelledBefore + 1);
    await waitFor('no request in flight', () => stack.pool.sessions().every((s) => s.inflight === 0), 5000);
  });

  it('does not hold a short request behind long generations (sequences are stepped together)', async () => {
    const long = (i: number): Promise<{ ms: number }> => {
      const t0 = Date.now();
      return client.completions
        .create({ model: 'smollm2', prompt: `Story number ${i}:`, max_tokens: 120, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming)
        .then(() => ({ ms: Date.now() - t0 }));
    };
    // Two long sequences per worker, then a short one beside them.
    const longs = [0, 1, 2, 3].map(long);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    let firstTokenMs = -1;
    const stream = await client.completions.create({ model: 'smollm2', prompt: 'The capital of France is', max_tokens: 4, temperature: 0, stream: true });
    for await (const chunk of stream) if (firstTokenMs < 0 && (chunk.choices[0]?.text ?? '') !== '') firstTokenMs = Date.now() - t0;
    const shortMs = Date.now() - t0;
    const longMs = (await Promise.all(longs)).map((l) => l.ms);
    console.log(`      short request: first token ${firstTokenMs} ms, done in ${shortMs} ms; long ones (120 tokens): ${longMs.join(', ')} ms`);
    assert.ok(shortMs < Math.min(...longMs) / 2, `the short request took ${shortMs} ms beside long ones of ${longMs.join(', ')} ms`);
  });

  it('splits an LLM route between two versions (system prompts), sticky per user, with per-arm statistics', async () => {
    const put = await admin(stack.url, 'PUT', '/routes/chat', {
      arms: [
        { name: 'friendly', model: 'smollm2', version: '1', weight: 50 },
        { name: 'terse', model: 'smollm2', version: '2', weight: 50 },
      ],
      sticky: true,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(
      (await client.models.list()).data.map((m) => m.id),
      ['chat', 'smollm2'],
    );
    const ask = async (user: string, headers: Record<string, string> = {}): Promise<{ arm: string; promptTokens: number }> => {
      const res = await post(stack.url, '/v1/chat/completions', { model: 'chat', user, messages: [{ role: 'user', content: 'Hi!' }], max_tokens: 1 }, headers);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { usage: { prompt_tokens: number }; system_fingerprint: string };
      const arm = res.headers.get('x-inferneo-arm')!;
      assert.equal(body.system_fingerprint, arm === 'friendly' ? 'smollm2-v1' : 'smollm2-v2');
      return { arm, promptTokens: body.usage.prompt_tokens };
    };
    const byUser = new Map<string, { arm: string; promptTokens: number }>();
    for (let i = 0; i < 12; i++) byUser.set(`user-${i}`, await ask(`user-${i}`));
    for (const [user, first] of [...byUser].slice(0, 4)) assert.equal((await ask(user)).arm, first.arm, `${user} changed arms`);
    const arms = new Set([...byUser.values()].map((r) => r.arm));
    assert.deepEqual([...arms].sort(), ['friendly', 'terse']);
    // Each version has its own system prompt, so the same message makes prompts of other lengths.
    const tokens = new Map([...byUser.values()].map((r) => [r.arm, r.promptTokens]));
    assert.notEqual(tokens.get('friendly'), tokens.get('terse'));
    // The route-key header wins over `user`, and is sticky the same way.
    const keyed = await ask('user-0', { 'x-inferneo-route-key': 'some-key' });
    assert.equal((await ask('user-5', { 'x-inferneo-route-key': 'some-key' })).arm, keyed.arm);

    const stats = await admin<{ arms: { arm: string; requests: number; errors: number }[] }>(stack.url, 'GET', '/routes/chat/stats');
    const perArm = Object.fromEntries(stats.body.arms.map((a) => [a.arm, a.requests]));
    assert.equal((perArm['friendly'] ?? 0) + (perArm['terse'] ?? 0), 18);
    const generate = await post(stack.url, '/v2/models/chat/generate', { text_input: 'Hi', max_tokens: 1 }, { 'x-inferneo-arm': 'friendly' });
    assert.equal(((await generate.json()) as { model_version: string }).model_version, '1');
    assert.equal((await admin(stack.url, 'DELETE', '/routes/chat')).status, 200);
  });

  it('exports time to first token, time per output token, tokens and requests running/waiting per model', async () => {
    const text = await (await fetch(`${stack.url}/metrics`)).text();
    const labels = 'model="smollm2",version="2"';
    assert.ok(metric(text, 'inferneo_time_to_first_token_seconds_count', labels) > 0);
    assert.ok(metric(text, 'inferneo_time_per_output_token_seconds_count', labels) > 0);
    assert.ok(metric(text, 'inferneo_e2e_request_latency_seconds_count', labels) > 0);
    assert.ok(metric(text, 'inferneo_generation_tokens_total', labels) > 100);
    assert.ok(metric(text, 'inferneo_prompt_tokens_total', labels) > 10);
    assert.ok(metric(text, 'inferneo_request_success_total', `${labels},finished_reason="length"`) > 0);
    assert.equal(metric(text, 'inferneo_num_requests_running', labels), 0);
    assert.equal(metric(text, 'inferneo_num_requests_waiting', labels), 0);
  });

  it('ends a stream with an error event when its worker dies, and serves again after the restart', async () => {
    const supervisor = stack.supervisor!;
    const res = await post(stack.url, '/v1/completions', { model: 'smollm2', prompt: 'Once upon a time', max_tokens: 600, ignore_eos: true, stream: true });
    const reader = res.body!.getReader();
    await reader.read();
    const victim = stack.pool.sessions().find((s) => s.inflight > 0)!;
    const pid = supervisor.pids().get(victim.id)!;
    process.kill(pid, 'SIGKILL');
    let body = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      body += new TextDecoder().decode(value);
    }
    const data = events(body);
    assert.equal(data.at(-1), '[DONE]');
    const error = JSON.parse(data.at(-2)!) as { error: { code: string; message: string } };
    assert.equal(error.error.code, 'unavailable');
    assert.match(error.error.message, /was lost/);
    await waitFor('the worker to come back with smollm2', () => stack.backend.generationInfo('smollm2', '2')?.hosts === 2, 60_000);
    const again = await client.completions.create({ model: 'smollm2', prompt: 'Hi', max_tokens: 2 });
    assert.equal(again.usage!.completion_tokens, 2);
  });
});
