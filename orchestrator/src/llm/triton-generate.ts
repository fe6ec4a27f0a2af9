import { request } from 'undici';
import type { GenerateRequest, GenerationEvent, GenerationInfo, TextGenerator } from '../backends/generation.js';
import { ErrorCode, InferneoError, UnavailableError, UnsupportedError } from '../errors.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';

/**
 * LLMs that NVIDIA Triton serves (vLLM or TensorRT-LLM backends, or any model Triton's generate
 * extension can drive). Two ways in:
 *
 * - **Pass-through** (`forward`): a generate or generate_stream request is sent unchanged to Triton's
 *   own endpoint for the version, and Triton's answer (status, body, server-sent events) comes back
 *   unchanged, so every field Triton's backend understands works as it does on Triton.
 * - **OpenAI** (`generate`, a TextGenerator): a `/v1/completions` request becomes a Triton
 *   generate_stream request shaped by the model's declared inputs: `text_input`, `stream: true` and
 *   `exclude_input_in_output: true` when it has them, and the sampling fields in a
 *   `sampling_parameters` JSON string (vLLM backend) or as inputs of their own name (TensorRT-LLM's
 *   `max_tokens`, `temperature`, `stop_words`, …). Triton applies no chat template, so chat requests
 *   are refused; and since Triton's generate answers carry text only, `usage.completion_tokens` counts
 *   the streamed pieces (one per token with both backends' streaming) and `prompt_tokens` is 0.
 *
 * Triton's generate extension is HTTP only: with `triton.protocol: grpc` both ways answer
 * UNSUPPORTED. Endpoints whose circuit is open are skipped; among the others the one with the fewest
 * outstanding requests is used.
 */

export interface TritonEndpointView {
  endpoint: string;
  state: string;
  outstanding: number;
}

export interface TritonGenerateOptions {
  /** Triton's endpoints now, with their circuit states (TritonBackend.endpointStates). */
  endpoints: () => TritonEndpointView[];
  /** What those endpoints speak: generate needs `http`. */
  protocol: 'http' | 'grpc';
  /** The input names a model declares (its config), to shape OpenAI requests. */
  inputsOf: (model: string) => string[];
  /** Longest silence allowed from Triton, before its answer and between two pieces. @defaultValue 60000 */
  timeoutMs?: number;
  /** Sequences admitted per endpoint: Triton's backend batches and queues by itself. @defaultValue 64 */
  maxSequences?: number;
}

/** Triton's answer to a forwarded request, to be sent on as it is. */
export interface ForwardedReply {
  status: number;
  contentType: string;
  body: AsyncIterable<Buffer>;
}

/** Triton's own generate endpoints: what GeneratePassThrough users need. */
export interface GeneratePassThrough {
  forward(model: string, version: string, stream: boolean, body: Buffer, signal?: CancelSignal): Promise<ForwardedReply>;
}

function codeOf(status: number): ErrorCode {
  if (status === 400) return ErrorCode.INVALID_ARGUMENT;
  if (status === 404) return ErrorCode.NOT_FOUND;
  if (status === 429) return ErrorCode.RESOURCE_EXHAUSTED;
  if (status === 503) return ErrorCode.UNAVAILABLE;
  return ErrorCode.INTERNAL;
}

/** The message of a Triton error body (`{"error": "…"}`, possibly as an SSE event), or the text. */
function tritonMessage(text: string): string {
  const json = text.startsWith('data: ') ? text.slice(6).trim() : text;
  try {
    const error = (JSON.parse(json) as { error?: unknown }).error;
    if (typeof error === 'string') return error;
  } catch {
    // not JSON: the text itself
  }
  return text.trim() || 'no details';
}

export class TritonGenerate implements TextGenerator, GeneratePassThrough {
  private readonly timeoutMs: number;
  private readonly maxSequences: number;

  constructor(private readonly options: TritonGenerateOptions) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxSequences = options.maxSequences ?? 64;
  }

  generationInfo(_model: string, _version: string): { info: GenerationInfo; hosts: number } | undefined {
    const hosts = this.options.endpoints().filter((e) => e.state !== 'open').length;
    if (hosts === 0) return undefined;
    return { info: { contextLength: 0, maxSequences: this.maxSequences, defaultMaxTokens: 0, chatTemplate: false }, hosts };
  }

  async forward(model: string, version: string, stream: boolean, body: Buffer, signal?: CancelSignal): Promise<ForwardedReply> {
    const { res, abort } = await this.post(model, version, stream, body, signal);
    const contentType = String(res.headers['content-type'] ?? 'application/json');
    const chunks = async function* (): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of res.body) yield chunk as Buffer;
      } finally {
        abort();
      }
    };
    return { status: res.statusCode, contentType, body: chunks() };
  }

  async *generate(model: string, version: string, generate: GenerateRequest, signal?: CancelSignal): AsyncGenerator<GenerationEvent> {
    if (generate.messages !== undefined) {
      throw new UnsupportedError(`messages: model '${model}' is served by Triton, which applies no chat template; send a prompt to /v1/completions`);
    }
    const inputs = new Set(this.options.inputsOf(model));
    const body: Record<string, unknown> = { text_input: generate.prompt };
    if (inputs.has('stream')) body['stream'] = true;
    if (inputs.has('exclude_input_in_output')) body['exclude_input_in_output'] = true;
    const sampling: Record<string, unknown> = { ...generate.parameters };
    if (inputs.has('sampling_parameters')) {
      body['sampling_parameters'] = JSON.stringify(sampling);
    } else {
      for (const [key, value] of Object.entries(sampling)) {
        const name = key === 'stop' && !inputs.has('stop') ? 'stop_words' : key;
        if (inputs.has(name)) body[name] = value;
        else throw new UnsupportedError(`${key}: model '${model}' (on Triton) has no input to take it`);
      }
    }
    const { res, abort } = await this.post(model, version, true, Buffer.from(JSON.stringify(body)), signal);
    let pieces = 0;
    try {
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        throw new InferneoError(codeOf(res.statusCode), `Triton refused the generation: ${tritonMessage(text)}`);
      }
      let buffered = '';
      for await (const chunk of res.body) {
        buffered += (chunk as Buffer).toString('utf8');
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ')) continue;
          const data = JSON.parse(event.slice(6)) as { text_output?: unknown; error?: unknown };
          if (typeof data.error === 'string') throw new InferneoError(ErrorCode.INTERNAL, `Triton failed the generation: ${data.error}`);
          const text = Array.isArray(data.text_output) ? data.text_output.join('') : String(data.text_output ?? '');
          pieces++;
          yield { type: 'delta', text, tokens: 1 };
        }
      }
    } finally {
      abort();
    }
    const limit = generate.parameters.max_tokens;
    yield { type: 'final', text: '', finishReason: limit !== undefined && pieces >= limit ? 'length' : 'stop', usage: { prompt_tokens: 0, completion_tokens: pieces } };
  }

  /** POSTs to the least busy healthy endpoint; `abort` stops the request (Triton cancels it). */
  private async post(
    model: string,
    version: string,
    stream: boolean,
    body: Buffer,
    signal?: CancelSignal,
  ): Promise<{ res: Awaited<ReturnType<typeof request>>; abort: () => void }> {
    if (this.options.protocol !== 'http') {
      throw new UnsupportedError(`model '${model}' is served by Triton over gRPC; Triton's generate extension is HTTP only (set triton.protocol: http)`);
    }
    const candidates = this.options.endpoints().filter((e) => e.state !== 'open');
    if (candidates.length === 0) throw new UnavailableError(`no Triton endpoint can take a generate request for '${model}' now (every circuit is open)`);
    const endpoint = candidates.reduce((a, b) => (b.outstanding < a.outstanding ? b : a)).endpoint.replace(/\/$/, '');
    const controller = new AbortController();
    const unsubscribe = signal?.onCancel(() => controller.abort());
    const abort = (): void => {
      unsubscribe?.();
      controller.abort();
    };
    const path = `/v2/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}/${stream ? 'generate_stream' : 'generate'}`;
    try {
      const res = await request(`${endpoint}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: controller.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      return { res, abort };
    } catch (err) {
      abort();
      if (signal?.aborted === true) throw new InferneoError(ErrorCode.CANCELLED, 'the client went away');
      throw new UnavailableError(`cannot reach Triton at ${endpoint}: ${(err as Error).message}`);
    }
  }
}
