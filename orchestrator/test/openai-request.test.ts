import assert from 'node:assert/strict';
import { COMPLETION_MAX_TOKENS, paramOf, parseChatRequest, parseCompletionRequest, parseSampling } from '../src/llm/openai-request.js';

/** Every field of OpenAI's request bodies, and an error naming the field for every bad one. */
describe('openai-request', () => {
  const chat = (extra: Record<string, unknown>): unknown => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra });

  it('reads a chat request with every sampling field', () => {
    const r = parseChatRequest(
      chat({
        stream: true,
        stream_options: { include_usage: true },
        max_completion_tokens: 12,
        temperature: 0.5,
        top_p: 0.9,
        top_k: 40,
        min_p: 0.1,
        presence_penalty: 1,
        frequency_penalty: -1,
        repetition_penalty: 1.2,
        stop: '\n',
        seed: -1,
        ignore_eos: true,
        n: 1,
        user: 'u-1',
        logprobs: false,
        response_format: { type: 'text' },
        tools: [],
        metadata: { a: 'b' },
        logit_bias: {},
      }),
    );
    assert.equal(r.model, 'm');
    assert.equal(r.stream, true);
    assert.equal(r.includeUsage, true);
    assert.equal(r.user, 'u-1');
    assert.deepEqual(r.generate.messages, [{ role: 'user', content: 'hi' }]);
    assert.deepEqual(r.generate.parameters, {
      max_tokens: 12,
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      min_p: 0.1,
      presence_penalty: 1,
      frequency_penalty: -1,
      repetition_penalty: 1.2,
      stop: ['\n'],
      seed: 2 ** 32 - 2,
      ignore_eos: true,
    });
  });

  it('maps developer messages to system and joins text parts', () => {
    const r = parseChatRequest(
      chat({
        messages: [
          { role: 'developer', content: 'be brief' },
          { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], name: 'x' },
          { role: 'assistant', content: 'ok', tool_calls: [] },
        ],
        top_k: -1,
        stop: null,
      }),
    );
    assert.deepEqual(r.generate.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'ab' },
      { role: 'assistant', content: 'ok' },
    ]);
    assert.deepEqual(r.generate.parameters, {});
    assert.equal(r.stream, false);
  });

  it('reads completions: one prompt, echo, and OpenAI\'s default of 16 tokens', () => {
    const r = parseCompletionRequest({ model: 'm', prompt: ['Once'], echo: true, stop: ['.', '!'], best_of: 1, suffix: null });
    assert.equal(r.generate.prompt, 'Once');
    assert.equal(r.echo, true);
    assert.deepEqual(r.generate.parameters, { max_tokens: COMPLETION_MAX_TOKENS, stop: ['.', '!'] });
    assert.equal(parseCompletionRequest({ model: 'm', prompt: 'x', max_tokens: 3 }).generate.parameters.max_tokens, 3);
  });

  const bad: [string, () => unknown, RegExp][] = [
    ['body', () => parseChatRequest([]), /^the request body must be a JSON object/],
    ['model', () => parseChatRequest({ messages: [] }), /^model: is required/],
    ['n', () => parseChatRequest(chat({ n: 2 })), /^n: n other than 1/],
    ['unknown', () => parseChatRequest(chat({ best_of: 2 })), /^best_of: unrecognized request argument/],
    ['max_tokens 0', () => parseChatRequest(chat({ max_tokens: 0 })), /^max_tokens: must be at least 1, got 0/],
    ['max_tokens type', () => parseChatRequest(chat({ max_tokens: 1.5 })), /^max_tokens: must be an integer/],
    ['temperature', () => parseChatRequest(chat({ temperature: 3 })), /^temperature: must be at least 0 and at most 2, got 3/],
    ['top_p', () => parseChatRequest(chat({ top_p: 0 })), /^top_p: must be greater than 0/],
    ['top_k', () => parseChatRequest(chat({ top_k: -5 })), /^top_k: must be -1/],
    ['stop', () => parseChatRequest(chat({ stop: ['a', 'b', 'c', 'd', 'e'] })), /^stop: must be/],
    ['stop empty', () => parseChatRequest(chat({ stop: [''] })), /^stop: must be/],
    ['seed', () => parseChatRequest(chat({ seed: 'x' })), /^seed: must be an integer/],
    ['stream', () => parseChatRequest(chat({ stream: 'yes' })), /^stream: must be true or false/],
    ['stream_options', () => parseChatRequest(chat({ stream_options: { include_usage: true } })), /^stream_options: is only allowed when stream is true/],
    ['stream_options key', () => parseChatRequest(chat({ stream: true, stream_options: { x: 1 } })), /^stream_options\.x: unrecognized/],
    ['logprobs', () => parseChatRequest(chat({ logprobs: true })), /^logprobs: logprobs is not supported/],
    ['tools', () => parseChatRequest(chat({ tools: [{ type: 'function' }] })), /^tools: tool calling is not supported/],
    ['response_format', () => parseChatRequest(chat({ response_format: { type: 'json_object' } })), /^response_format: /],
    ['messages empty', () => parseChatRequest(chat({ messages: [] })), /^messages: must be a non-empty list/],
    ['message type', () => parseChatRequest(chat({ messages: ['hi'] })), /^messages\[0\]: must be an object/],
    ['role', () => parseChatRequest(chat({ messages: [{ role: 'robot', content: 'x' }] })), /^messages\[0\]\.role: must be system, developer, user or assistant/],
    ['tool role', () => parseChatRequest(chat({ messages: [{ role: 'tool', content: 'x' }] })), /^messages\[0\]\.role: 'tool' messages are not supported/],
    ['content missing', () => parseChatRequest(chat({ messages: [{ role: 'user' }] })), /^messages\[0\]\.content: is required/],
    ['content type', () => parseChatRequest(chat({ messages: [{ role: 'user', content: 5 }] })), /^messages\[0\]\.content: must be a string or a list of text parts/],
    ['image', () => parseChatRequest(chat({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })), /^messages\[0\]\.content\[0\]: 'image_url' parts are not supported/],
    ['part', () => parseChatRequest(chat({ messages: [{ role: 'user', content: [7] }] })), /^messages\[0\]\.content\[0\]: this part are not supported/],
    ['message field', () => parseChatRequest(chat({ messages: [{ role: 'user', content: 'x', mood: 1 }] })), /^messages\[0\]\.mood: unrecognized message field/],
    ['tool_calls', () => parseChatRequest(chat({ messages: [{ role: 'assistant', content: 'x', tool_calls: [{}] }] })), /^messages\[0\]\.tool_calls: is not supported/],
    ['prompt list', () => parseCompletionRequest({ model: 'm', prompt: ['a', 'b'] }), /^prompt: exactly one prompt is supported/],
    ['prompt tokens', () => parseCompletionRequest({ model: 'm', prompt: [1, 2] }), /^prompt: exactly one prompt/],
    ['prompt token', () => parseCompletionRequest({ model: 'm', prompt: [[1, 2]] }), /^prompt: token ids are not supported/],
    ['prompt missing', () => parseCompletionRequest({ model: 'm' }), /^prompt: is required/],
    ['suffix', () => parseCompletionRequest({ model: 'm', prompt: 'x', suffix: 'y' }), /^suffix: /],
    ['echo', () => parseCompletionRequest({ model: 'm', prompt: 'x', echo: 1 }), /^echo: must be true or false/],
    ['user', () => parseCompletionRequest({ model: 'm', prompt: 'x', user: 3 }), /^user: must be a string/],
    ['ignore_eos', () => parseSampling({ ignore_eos: 'no' }), /^ignore_eos: must be true or false/],
  ];
  for (const [name, call, message] of bad) {
    it(`refuses a bad ${name}, naming the field`, () => {
      assert.throws(call, (err: Error & { code: string }) => {
        assert.equal(err.code, 'INVALID_ARGUMENT');
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it('finds the field an error names', () => {
    assert.equal(paramOf('max_tokens: must be at least 1'), 'max_tokens');
    assert.equal(paramOf('messages[0].content: is required'), 'messages[0].content');
    assert.equal(paramOf('the request body must be a JSON object'), null);
  });
});
