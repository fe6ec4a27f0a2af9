import type { ChatMessage, GenerateRequest, SamplingParameters } from '../backends/generation.js';
import { InvalidArgumentError } from '../errors.js';

/**
 * Reads the bodies of OpenAI's `POST /v1/completions` and `POST /v1/chat/completions` into a
 * GenerateRequest, checking every field as OpenAI does and naming the field in each error message
 * (`max_tokens: …`), which the API turns into the error body's `param`. Unknown fields are refused
 * as OpenAI refuses them; fields OpenAI has but that are not served here (several choices, log
 * probabilities, tools, suffixes) are refused naming the field unless they ask for the default.
 * Sampling extensions of vLLM's API are accepted too: `top_k`, `min_p`, `repetition_penalty`,
 * `ignore_eos`.
 */

export interface OpenAiRequest {
  model: string;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with the token counts. */
  includeUsage: boolean;
  /** OpenAI's end-user id: the sticky key of a route when no `x-inferneo-route-key` header is sent. */
  user?: string;
  /** Completions only: the prompt is repeated at the start of the output. */
  echo: boolean;
  generate: GenerateRequest;
}

/** Most stop sequences OpenAI accepts. */
export const MAX_STOP = 4;
/** `max_tokens` of a completion that does not say, as OpenAI documents it. */
export const COMPLETION_MAX_TOKENS = 16;
/** Seeds are taken modulo this (llama.cpp's seeds are 32-bit, 2^32 - 1 meaning "random"). */
const SEED_MODULUS = 2 ** 32 - 1;

type Body = Record<string, unknown>;
type Check = (body: Body, key: string) => void;

const ignore: Check = () => undefined;

/** Accepts the field only with its default (or null); anything else is refused as not served. */
function onlyDefault(accepted: (value: unknown) => boolean, what: string): Check {
  return (body, key) => {
    const value = body[key];
    if (value === null || value === undefined || accepted(value)) return;
    throw new InvalidArgumentError(`${key}: ${what} is not supported by Inferneo's models`);
  };
}

const COMMON: Record<string, Check> = {
  model: ignore,
  stream: ignore,
  stream_options: ignore,
  max_tokens: ignore,
  temperature: ignore,
  top_p: ignore,
  stop: ignore,
  seed: ignore,
  n: onlyDefault((v) => v === 1, 'n other than 1 (several choices)'),
  user: ignore,
  presence_penalty: ignore,
  frequency_penalty: ignore,
  top_k: ignore,
  min_p: ignore,
  repetition_penalty: ignore,
  ignore_eos: ignore,
  logit_bias: onlyDefault((v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0, 'logit_bias'),
};

const CHAT: Record<string, Check> = {
  ...COMMON,
  messages: ignore,
  max_completion_tokens: ignore,
  logprobs: onlyDefault((v) => v === false, 'logprobs'),
  top_logprobs: onlyDefault((v) => v === 0, 'top_logprobs'),
  response_format: onlyDefault((v) => typeof v === 'object' && v !== null && (v as Body)['type'] === 'text', 'a response_format other than text'),
  tools: onlyDefault((v) => Array.isArray(v) && v.length === 0, 'tool calling'),
  tool_choice: onlyDefault((v) => v === 'none', 'tool calling'),
  functions: onlyDefault((v) => Array.isArray(v) && v.length === 0, 'function calling'),
  function_call: onlyDefault((v) => v === 'none', 'function calling'),
  parallel_tool_calls: ignore,
  store: onlyDefault((v) => v === false, 'storing completions'),
  metadata: ignore,
  service_tier: ignore,
  modalities: onlyDefault((v) => Array.isArray(v) && v.length === 1 && v[0] === 'text', 'an output modality other than text'),
  reasoning_effort: ignore,
};

const COMPLETIONS: Record<string, Check> = {
  ...COMMON,
  prompt: ignore,
  echo: ignore,
  logprobs: onlyDefault((v) => v === 0, 'logprobs'),
  best_of: onlyDefault((v) => v === 1, 'best_of other than 1'),
  suffix: onlyDefault((v) => v === '', 'suffix (insertion)'),
};

function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidArgumentError('the request body must be a JSON object');
  }
  return body as Body;
}

function optional<T>(body: Body, key: string, check: (value: unknown) => value is T, expected: string): T | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw new InvalidArgumentError(`${key}: must be ${expected}, got ${JSON.stringify(value)}`);
  return value;
}

const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isString = (v: unknown): v is string => typeof v === 'string';
const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function numberIn(body: Body, key: string, low: number, high: number, lowOpen = false): number | undefined {
  const value = optional(body, key, (v): v is number => typeof v === 'number' && Number.isFinite(v), 'a number');
  if (value === undefined) return undefined;
  if (value > high || (lowOpen ? value <= low : value < low)) {
    throw new InvalidArgumentError(`${key}: must be ${lowOpen ? 'greater than' : 'at least'} ${low} and at most ${high}, got ${value}`);
  }
  return value;
}

function positiveInteger(body: Body, key: string): number | undefined {
  const value = optional(body, key, isInteger, 'an integer');
  if (value !== undefined && value < 1) throw new InvalidArgumentError(`${key}: must be at least 1, got ${value}`);
  return value;
}

/**
 * The sampling fields of a request body (OpenAI's, vLLM's and Triton generate's names), each
 * checked and named in its error; `maxTokensKeys` are the names `max_tokens` goes by.
 */
export function parseSampling(body: Body, maxTokensKeys: string[] = ['max_tokens']): SamplingParameters {
  const out: SamplingParameters = {};
  for (const key of maxTokensKeys) {
    const value = positiveInteger(body, key);
    if (value !== undefined) out.max_tokens = value;
  }
  const set = (key: keyof SamplingParameters, value: number | boolean | string[] | undefined): void => {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  };
  set('temperature', numberIn(body, 'temperature', 0, 2));
  set('top_p', numberIn(body, 'top_p', 0, 1, true));
  set('presence_penalty', numberIn(body, 'presence_penalty', -2, 2));
  set('frequency_penalty', numberIn(body, 'frequency_penalty', -2, 2));
  set('min_p', numberIn(body, 'min_p', 0, 1));
  set('repetition_penalty', numberIn(body, 'repetition_penalty', 0, 10, true));
  const topK = optional(body, 'top_k', isInteger, 'an integer');
  if (topK !== undefined && topK !== -1) {
    if (topK < 0) throw new InvalidArgumentError(`top_k: must be -1 (off) or at least 0, got ${topK}`);
    out.top_k = topK;
  }
  const seed = optional(body, 'seed', isInteger, 'an integer');
  if (seed !== undefined) out.seed = ((seed % SEED_MODULUS) + SEED_MODULUS) % SEED_MODULUS;
  set('ignore_eos', optional(body, 'ignore_eos', isBoolean, 'true or false'));
  const stop = body['stop'];
  if (stop !== undefined && stop !== null) {
    const list = typeof stop === 'string' ? [stop] : stop;
    if (!Array.isArray(list) || list.length > MAX_STOP || !list.every((s) => typeof s === 'string' && s.length > 0)) {
      throw new InvalidArgumentError(`stop: must be a non-empty string or a list of at most ${MAX_STOP} of them`);
    }
    if (list.length > 0) out.stop = list as string[];
  }
  return out;
}

function common(body: Body, table: Record<string, Check>): Omit<OpenAiRequest, 'generate' | 'echo'> {
  for (const key of Object.keys(body)) {
    const check = table[key];
    if (check === undefined) throw new InvalidArgumentError(`${key}: unrecognized request argument`);
    check(body, key);
  }
  const model = body['model'];
  if (typeof model !== 'string' || model === '') throw new InvalidArgumentError('model: is required: the name of a model or route');
  const stream = optional(body, 'stream', isBoolean, 'true or false') ?? false;
  const options = optional(body, 'stream_options', (v): v is Body => typeof v === 'object' && !Array.isArray(v), 'an object');
  let includeUsage = false;
  if (options !== undefined) {
    if (!stream) throw new InvalidArgumentError('stream_options: is only allowed when stream is true');
    for (const key of Object.keys(options)) {
      if (key !== 'include_usage') throw new InvalidArgumentError(`stream_options.${key}: unrecognized option`);
    }
    includeUsage = optional(options, 'include_usage', isBoolean, 'true or false') ?? false;
  }
  const out: Omit<OpenAiRequest, 'generate' | 'echo'> = { model, stream, includeUsage };
  const user = optional(body, 'user', isString, 'a string');
  if (user !== undefined && user !== '') out.user = user;
  return out;
}

function content(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    return value
      .map((part: unknown, i) => {
        const p = part as Body;
        if (typeof p !== 'object' || p === null || p['type'] !== 'text' || typeof p['text'] !== 'string') {
          const kind = typeof p === 'object' && p !== null && typeof p['type'] === 'string' ? `'${p['type']}' parts` : 'this part';
          throw new InvalidArgumentError(`${where}[${i}]: ${kind} are not supported; only {"type": "text", "text": "…"} parts are`);
        }
        return p['text'];
      })
      .join('');
  }
  throw new InvalidArgumentError(`${where}: must be a string or a list of text parts`);
}

function chatMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw new InvalidArgumentError('messages: must be a non-empty list of messages');
  return value.map((raw: unknown, i) => {
    const where = `messages[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidArgumentError(`${where}: must be an object with role and content`);
    const m = raw as Body;
    const role = m['role'];
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer') {
      const what = role === 'tool' || role === 'function' ? `'${role}' messages are not supported (no tool calling)` : `must be system, developer, user or assistant, got ${JSON.stringify(role)}`;
      throw new InvalidArgumentError(`${where}.role: ${what}`);
    }
    for (const key of Object.keys(m)) {
      if (key === 'tool_calls' || key === 'function_call' || key === 'audio') {
        if (m[key] !== null && !(Array.isArray(m[key]) && (m[key] as unknown[]).length === 0)) {
          throw new InvalidArgumentError(`${where}.${key}: is not supported (no tool calling)`);
        }
      } else if (key !== 'role' && key !== 'content' && key !== 'name' && key !== 'refusal') {
        throw new InvalidArgumentError(`${where}.${key}: unrecognized message field`);
      }
    }
    if (m['content'] === undefined || m['content'] === null) throw new InvalidArgumentError(`${where}.content: is required`);
    // The developer role is OpenAI's new name for system instructions.
    return { role: role === 'developer' ? 'system' : role, content: content(m['content'], `${where}.content`) };
  });
}

/** `POST /v1/chat/completions`. */
export function parseChatRequest(raw: unknown): OpenAiRequest {
  const body = asObject(raw);
  const base = common(body, CHAT);
  const messages = chatMessages(body['messages']);
  return { ...base, echo: false, generate: { messages, parameters: parseSampling(body, ['max_tokens', 'max_completion_tokens']) } };
}

/** `POST /v1/completions`. */
export function parseCompletionRequest(raw: unknown): OpenAiRequest {
  const body = asObject(raw);
  const base = common(body, COMPLETIONS);
  let prompt = body['prompt'];
  if (Array.isArray(prompt)) {
    if (prompt.length !== 1) {
      throw new InvalidArgumentError(`prompt: exactly one prompt is supported (n=1), got a list of ${prompt.length}`);
    }
    prompt = prompt[0];
  }
  if (typeof prompt !== 'string') {
    throw new InvalidArgumentError(
      Array.isArray(prompt) || typeof prompt === 'number' ? 'prompt: token ids are not supported; send text' : 'prompt: is required: a string',
    );
  }
  const echo = optional(body, 'echo', isBoolean, 'true or false') ?? false;
  // OpenAI's (and vLLM's) default for completions, unlike chat, which runs to the model's default.
  const parameters: SamplingParameters = { max_tokens: COMPLETION_MAX_TOKENS, ...parseSampling(body, ['max_tokens']) };
  return { ...base, echo, generate: { prompt, parameters } };
}

/** The field an error message names (`max_tokens: …` → `max_tokens`), for OpenAI's `param`. */
export function paramOf(message: string): string | null {
  const match = /^([A-Za-z_][\w.[\]]*): /.exec(message);
  return match === null ? null : match[1]!;
}
