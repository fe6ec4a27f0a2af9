import type { GenerationEvent } from '../backends/generation.js';
import { MethodNotAllowedError, toInferneoError } from '../errors.js';
import { parseGenerateRequest } from '../llm/generate-request.js';
import type { LlmService } from '../llm/llm-service.js';
import { ARM_HEADER, type Target } from '../routing/router.js';
import type { Handler, Reply, Router } from './http-server.js';
import { readBody } from './http-body.js';
import { headerLookup, readJsonObject, SSE_HEADERS, sseEvent } from './llm-http.js';

/**
 * Triton's generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` answers one JSON
 * object, `.../generate_stream` answers server-sent events, one per piece of text. As in Triton, the
 * body's top-level fields are the model's inputs by name and `parameters` holds the request's
 * parameters, read by llm/generate-request.ts (as are gRPC ModelStreamInfer requests to decoupled
 * models); the path, not a `stream` field, decides whether the answer streams. The answer carries `model_name`, `model_version` and `text_output`; errors
 * are Triton's `{"error": "…"}` (in the stream: an event with that body). Routes and sticky keys
 * apply as for infer. A version served by Triton gets the request unchanged at Triton's own generate
 * endpoint, and its answer goes back as it is (LlmService.forward).
 */

export interface GenerateApiOptions {
  llm: LlmService;
  maxRequestBytes: number;
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
      const parsed = parseGenerateRequest(body, target.model);
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
