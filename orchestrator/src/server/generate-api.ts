import type { GenerateRequest, GenerationEvent, SamplingParameters } from '../backends/generation.js';
import { InvalidArgumentError, MethodNotAllowedError, toInferneoError } from '../errors.js';
import type { LlmService } from '../llm/llm-service.js';
import { parseSampling } from '../llm/openai-request.js';
import { ARM_HEADER, type Target } from '../routing/router.js';
import type { Handler, Reply, Router } from './http-server.js';
import { readBody } from './http-body.js';
import { headerLookup, readJsonObject, SSE_HEADERS, sseEvent } from './llm-http.js';

/**
 * Triton's generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` answers one JSON
 * object, `.../generate_stream` answers server-sent events, one per piece of text. As in Triton, the
 * body's top-level fields are the model's inputs by name — `text_input` (required), and for a
 * model shaped like Triton's vLLM backend `stream`, `exclude_input_in_output` and
 * `sampling_parameters` (a JSON string) — and `parameters` holds the request's parameters; the
 * sampling fields (`max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop`, …) are taken from
 * `parameters`, else from the top level (TensorRT-LLM's ensemble has them as inputs), else from
 * `sampling_parameters`. The answer carries `model_name`, `model_version` and `text_output`; errors
 * are Triton's `{"error": "…"}` (in the stream: an event with that body). Routes and sticky keys
 * apply as for infer. A version served by Triton gets the request unchanged at Triton's own generate
 * endpoint, and its answer goes back as it is (LlmService.forward).
 */

export interface GenerateApiOptions {
  llm: LlmService;
  maxRequestBytes: number;
}

/** vLLM's default (its SamplingParams), which Triton's vLLM backend inherits. */
export const GENERATE_MAX_TOKENS = 16;

const INPUTS = new Set(['text_input', 'stream', 'exclude_input_in_output', 'sampling_parameters']);
const SAMPLING = new Set([
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'seed',
  'stop',
  'stop_words',
  'presence_penalty',
  'frequency_penalty',
  'repetition_penalty',
  'ignore_eos',
]);

interface Parsed {
  id?: string;
  prompt: string;
  excludeInput: boolean;
  request: GenerateRequest;
}

function parseBody(body: Record<string, unknown>, model: string): Parsed {
  const fromInputs: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (key === 'id' || key === 'parameters' || INPUTS.has(key)) continue;
    if (!SAMPLING.has(key)) {
      throw new InvalidArgumentError(`${key}: unexpected inference input for model '${model}'; it takes text_input, ${[...INPUTS].slice(1).join(', ')} and the sampling fields`);
    }
    fromInputs[key] = value;
  }
  const prompt = body['text_input'];
  if (typeof prompt !== 'string') throw new InvalidArgumentError(`text_input: is required: the prompt, a string`);
  const id = body['id'];
  if (id !== undefined && typeof id !== 'string') throw new InvalidArgumentError('id: must be a string');
  const params = body['parameters'] ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new InvalidArgumentError('parameters: must be an object');
  let fromJson: Record<string, unknown> = {};
  const raw = body['sampling_parameters'];
  if (raw !== undefined) {
    try {
      fromJson = typeof raw === 'string' ? (JSON.parse(raw) as Record<string, unknown>) : (raw as Record<string, unknown>);
    } catch (err) {
      throw new InvalidArgumentError(`sampling_parameters: is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof fromJson !== 'object' || fromJson === null || Array.isArray(fromJson)) throw new InvalidArgumentError('sampling_parameters: must be a JSON object');
  }
  // Request parameters may carry others (Triton's own, e.g. priority): only sampling fields are read.
  const picked = Object.fromEntries(Object.entries(params as Record<string, unknown>).filter(([k]) => SAMPLING.has(k)));
  const merged: Record<string, unknown> = { ...fromJson, ...fromInputs, ...picked };
  if (merged['stop'] === undefined && merged['stop_words'] !== undefined) merged['stop'] = merged['stop_words'];
  delete merged['stop_words'];
  const excludeRaw = body['exclude_input_in_output'] ?? false;
  if (typeof excludeRaw !== 'boolean') throw new InvalidArgumentError('exclude_input_in_output: must be true or false');
  const parameters: SamplingParameters = { max_tokens: GENERATE_MAX_TOKENS, ...parseSampling(merged) };
  const parsed: Parsed = { prompt, excludeInput: excludeRaw, request: { prompt, parameters } };
  if (id !== undefined) parsed.id = id;
  return parsed;
}

async function* streamBody(
  target: Target,
  id: string | undefined,
  first: IteratorResult<GenerationEvent>,
  rest: AsyncIterator<GenerationEvent>,
): AsyncGenerator<string> {
  const base: Record<string, unknown> = { model_name: target.model, model_version: target.version };
  if (id !== undefined) base['id'] = id;
  try {
    for (let next = first; next.done !== true; next = await rest.next()) {
      if (next.value.text !== '') yield sseEvent({ ...base, text_output: next.value.text });
    }
  } catch (err) {
    yield sseEvent({ error: toInferneoError(err).message });
  } finally {
    await rest.return?.();
  }
}

/** Serves the generate paths of `/v2`; any other path is `inner`'s. */
export function withGenerate(inner: Router, options: GenerateApiOptions): Router {
  const { llm } = options;

  const generate =
    (stream: boolean): Handler =>
    async (req, [name, version], signal): Promise<Reply> => {
      const target = llm.resolve(name!, version, headerLookup(req), undefined, { passThrough: true });
      const arm = { [ARM_HEADER]: target.arm ?? `${target.model}-v${target.version}` };
      if (llm.passesThrough(target)) {
        // A Triton-hosted model: Triton's own generate endpoint answers, unchanged.
        const forwarded = await llm.forward(target, stream, await readBody(req, options.maxRequestBytes), signal);
        return { status: forwarded.status, body: '', headers: { 'content-type': forwarded.contentType, ...arm }, stream: forwarded.body };
      }
      const body = await readJsonObject(req, options.maxRequestBytes);
      const parsed = parseBody(body, target.model);
      const events = llm.generate(target, parsed.request, signal);
      const first = await events.next();
      const headers = arm;
      if (stream) return { status: 200, body: '', headers: { ...SSE_HEADERS, ...headers }, stream: streamBody(target, parsed.id, first, events) };
      let text = parsed.excludeInput ? '' : parsed.prompt;
      for (let next = first; next.done !== true; next = await events.next()) text += next.value.text;
      const out: Record<string, unknown> = { model_name: target.model, model_version: target.version, text_output: text };
      if (parsed.id !== undefined) out['id'] = parsed.id;
      return { status: 200, body: JSON.stringify(out), headers: { ...headers, 'content-type': 'application/json' } };
    };

  const handlers: Record<string, Handler> = { generate: generate(false), generate_stream: generate(true) };

  return (method, s) => {
    const action = s[1] === 'models' ? (s[3] === 'versions' ? (s.length === 6 ? s[5] : undefined) : s.length === 4 ? s[3] : undefined) : undefined;
    const handler = action === undefined ? undefined : handlers[action];
    if (handler === undefined || s[0] !== 'v2') return inner(method, s);
    if (method !== 'POST') return new MethodNotAllowedError(`${method} is not allowed on /${s.join('/')}; use POST`);
    return { handler, params: s[3] === 'versions' ? [s[2]!, s[4]!] : [s[2]!] };
  };
}
