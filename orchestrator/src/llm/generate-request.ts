import type { GenerateRequest, SamplingParameters } from '../backends/generation.js';
import { InvalidArgumentError } from '../errors.js';
import { parseSampling } from './openai-request.js';

/**
 * A request of Triton's generate shape, whichever transport carried it: the body of HTTP
 * `.../generate[_stream]` (server/generate-api.ts) or the inputs and parameters of a gRPC
 * ModelStreamInfer request to a decoupled model (server/grpc-server.ts). Its fields are the model's
 * inputs by name — `text_input` (required), and for a model shaped like Triton's vLLM backend
 * `stream`, `exclude_input_in_output` and `sampling_parameters` (a JSON string) — plus `parameters`,
 * the request's parameters; the sampling fields (`max_tokens`, `temperature`, `top_p`, `top_k`,
 * `seed`, `stop`, …) are taken from `parameters`, else from the top level (TensorRT-LLM's ensemble
 * has them as inputs), else from `sampling_parameters`.
 */

/** vLLM's default (its SamplingParams), which Triton's vLLM backend inherits. */
export const GENERATE_MAX_TOKENS = 16;

/** The inputs of Triton's vLLM backend, other than the sampling fields. */
export const GENERATE_INPUTS: ReadonlySet<string> = new Set(['text_input', 'stream', 'exclude_input_in_output', 'sampling_parameters']);

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

export interface ParsedGenerateRequest {
  id?: string;
  prompt: string;
  /** The `stream` input (vLLM backend: false when absent); HTTP's two paths decide for themselves. */
  stream: boolean;
  excludeInput: boolean;
  request: GenerateRequest;
}

/** Parses and checks a generate request; INVALID_ARGUMENT errors start with the field at fault. */
export function parseGenerateRequest(body: Record<string, unknown>, model: string): ParsedGenerateRequest {
  const fromInputs: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (key === 'id' || key === 'parameters' || GENERATE_INPUTS.has(key)) continue;
    if (!SAMPLING.has(key)) {
      throw new InvalidArgumentError(
        `${key}: unexpected inference input for model '${model}'; it takes text_input, ${[...GENERATE_INPUTS].slice(1).join(', ')} and the sampling fields`,
      );
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
  const streamRaw = body['stream'] ?? false;
  if (typeof streamRaw !== 'boolean') throw new InvalidArgumentError('stream: must be true or false');
  const parameters: SamplingParameters = { max_tokens: GENERATE_MAX_TOKENS, ...parseSampling(merged) };
  const parsed: ParsedGenerateRequest = { prompt, stream: streamRaw, excludeInput: excludeRaw, request: { prompt, parameters } };
  if (id !== undefined) parsed.id = id;
  return parsed;
}
