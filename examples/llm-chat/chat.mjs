#!/usr/bin/env node
// Chat with the bundled LLM (SmolLM2-135M on llama.cpp, `model-repository/smollm2`) through a running
// Inferneo (`npm start`) with OpenAI's own client — a whole answer, then a streamed one, token by
// token — and the same model through Triton's generate extension with plain fetch. An A/B route
// between the model's two versions (two system prompts) shows sticky routing per `user`.
//
//   node examples/llm-chat/chat.mjs [--url http://127.0.0.1:8000] [--token ADMIN_TOKEN] [--question "…"]
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const option = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const url = option('url', process.env.INFERNEO_URL ?? 'http://127.0.0.1:8000');
const question = option('question', 'What is the capital of France? Answer in one sentence.');
const token = option('token', process.env.INFERNEO_ADMIN_TOKEN ?? (() => {
  try {
    return readFileSync('.inferneo/admin-token', 'utf8').trim();
  } catch {
    return undefined;
  }
})());

// Any OpenAI client works: point it at Inferneo's /v1. No API key is checked.
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused' });

const models = await client.models.list();
console.log(`models: ${models.data.map((m) => m.id).join(', ')}`);

// 1. A whole answer. `temperature: 0` makes it deterministic.
const { data: answer, response } = await client.chat.completions
  .create({ model: 'smollm2', messages: [{ role: 'user', content: question }], max_tokens: 40, temperature: 0 })
  .withResponse();
console.log(`answer (${answer.system_fingerprint}, arm ${response.headers.get('x-inferneo-arm')}): ${answer.choices[0].message.content.trim()}`);
console.log(`usage: ${answer.usage.prompt_tokens} prompt + ${answer.usage.completion_tokens} completion tokens, finish_reason ${answer.choices[0].finish_reason}`);

// 2. Streamed: server-sent events, printed as they come.
const started = performance.now();
let firstToken;
let pieces = 0;
process.stdout.write('streamed: ');
const stream = await client.chat.completions.create({
  model: 'smollm2',
  messages: [{ role: 'user', content: 'Name three colours.' }],
  max_tokens: 30,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let streamedTokens = 0;
for await (const chunk of stream) {
  const text = chunk.choices[0]?.delta?.content ?? '';
  if (text !== '') {
    firstToken ??= performance.now() - started;
    pieces++;
    process.stdout.write(text);
  }
  if (chunk.usage) streamedTokens = chunk.usage.completion_tokens;
}
process.stdout.write('\n');
console.log(`stream: ${pieces} pieces, ${streamedTokens} tokens, first token after ${Math.round(firstToken)} ms`);

// 3. Triton's generate extension, as tritonclient-free HTTP.
const generated = await (await fetch(`${url}/v2/models/smollm2/generate`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ text_input: 'The capital of France is', exclude_input_in_output: true, parameters: { max_tokens: 4, temperature: 0 } }),
})).json();
console.log(`generate: model ${generated.model_name} v${generated.model_version}: ${JSON.stringify(generated.text_output)}`);

// 4. An A/B route between the two versions (each has its own system prompt), sticky per user.
if (token !== undefined) {
  const admin = (method, path, body) =>
    fetch(`${url}/admin${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const put = await admin('PUT', '/routes/assistant', {
    arms: [{ name: 'friendly', model: 'smollm2', version: '1', weight: 50 }, { name: 'terse', model: 'smollm2', version: '2', weight: 50 }],
    sticky: true,
  });
  if (!put.ok) throw new Error(`PUT /admin/routes/assistant: HTTP ${put.status} ${await put.text()}`);
  const arms = [];
  for (const user of ['alice', 'bob', 'carol', 'alice']) {
    const { response: r } = await client.chat.completions
      .create({ model: 'assistant', user, messages: [{ role: 'user', content: 'Hi!' }], max_tokens: 1 })
      .withResponse();
    arms.push(`${user}→${r.headers.get('x-inferneo-arm')}`);
  }
  console.log(`route assistant: ${arms.join(' ')} (alice twice: same arm: ${arms[0].split('→')[1] === arms[3].split('→')[1]})`);
  await admin('DELETE', '/routes/assistant');
}
