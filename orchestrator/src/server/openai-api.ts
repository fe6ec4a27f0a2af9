import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FinishReason, GenerationEvent, TokenUsage } from '../backends/generation.js';
import { ErrorCode, httpStatusOf, type InferneoError, NotFoundError, toInferneoError } from '../errors.js';
import type { LlmService } from '../llm/llm-service.js';
import { type OpenAiRequest, paramOf, parseChatRequest, parseCompletionRequest } from '../llm/openai-request.js';
import { ARM_HEADER, type Target } from '../routing/router.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';
import type { Handler, Reply, Router } from './http-server.js';
import { headerLookup, readJsonObject, SSE_HEADERS, sseEvent } from './llm-http.js';

/**
 * OpenAI's API under `/v1`, so that OpenAI's SDKs and the tools built on them talk to Inferneo's LLMs
 * unchanged: `GET /v1/models[/{id}]`, `POST /v1/completions` and `POST /v1/chat/completions`, whole or
 * streamed as server-sent events ending in `data: [DONE]`. `model` names a model or a route (an A/B
 * split; `user` is its sticky key unless `x-inferneo-route-key` is sent); the response says which
 * arm served it in `x-inferneo-arm` and which version in `system_fingerprint`. Every error has
 * OpenAI's body, `{"error": {"message", "type", "param", "code"}}`, with the field named in `param`.
 */

export interface OpenAiApiOptions {
  llm: LlmService;
  /** Largest request body accepted. */
  maxRequestBytes: number;
  /** Called for failures with INTERNAL, so that bugs are logged with their stack. */
  onInternalError?: (err: InferneoError, req: IncomingMessage) => void;
}

/** OpenAI's error `type` for an HTTP status. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** OpenAI's error object for an InferneoError (also sent inside a stream that fails midway). */
export function openAiError(err: InferneoError): { error: { message: string; type: string; param: string | null; code: string } } {
  const status = httpStatusOf(err.code);
  const code = err.code === ErrorCode.NOT_FOUND && /^The model /.test(err.message) ? 'model_not_found' : err.code.toLowerCase();
  return { error: { message: err.message, type: errorType(status), param: paramOf(err.message), code } };
}

function errorReply(err: InferneoError): Reply {
  const reply: Reply = { status: httpStatusOf(err.code), body: JSON.stringify(openAiError(err)), headers: { 'content-type': 'application/json' } };
  if (err.code === ErrorCode.RESOURCE_EXHAUSTED) reply.headers!['retry-after'] = '1';
  if (err.code === ErrorCode.PAYLOAD_TOO_LARGE) reply.headers!['connection'] = 'close';
  return reply;
}

function json(value: unknown, headers: Record<string, string> = {}): Reply {
  return { status: 200, body: JSON.stringify(value), headers: { 'content-type': 'application/json', ...headers } };
}

function usageOf(usage: TokenUsage): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens, total_tokens: usage.prompt_tokens + usage.completion_tokens };
}

/** OpenAI has no "cancelled": a sequence cancelled on the server's side reads as cut short. */
function finishReason(reason: FinishReason): string {
  return reason === 'cancelled' ? 'length' : reason;
}

type Kind = 'chat' | 'completion';

/** What one response's chunks and body share. */
interface Completion {
  kind: Kind;
  id: string;
  created: number;
  request: OpenAiRequest;
  target: Target;
}

function fingerprint(c: Completion): string {
  return `${c.target.model}-v${c.target.version}`;
}

function chunk(c: Completion, text: string | undefined, finish: string | null, first = false): Record<string, unknown> {
  const base = { id: c.id, created: c.created, model: c.request.model, system_fingerprint: fingerprint(c) };
  if (c.kind === 'chat') {
    const delta: Record<string, string> = first ? { role: 'assistant', content: text ?? '' } : text !== undefined ? { content: text } : {};
    const out: Record<string, unknown> = { ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
    if (c.request.includeUsage) out['usage'] = null;
    return out;
  }
  const out: Record<string, unknown> = { ...base, object: 'text_completion', choices: [{ index: 0, text: text ?? '', logprobs: null, finish_reason: finish }] };
  if (c.request.includeUsage) out['usage'] = null;
  return out;
}

/** The SSE body of a streamed completion, from its first event on; failures midway become an error event. */
async function* sseBody(c: Completion, first: IteratorResult<GenerationEvent>, rest: AsyncIterator<GenerationEvent>): AsyncGenerator<string> {
  try {
    if (c.kind === 'chat') yield sseEvent(chunk(c, '', null, true));
    else if (c.request.echo) yield sseEvent(chunk(c, (c.request.generate.prompt as string | undefined) ?? '', null));
    for (let next = first; next.done !== true; next = await rest.next()) {
      const event = next.value;
      if (event.type === 'delta') {
        if (event.text !== '') yield sseEvent(chunk(c, event.text, null));
        continue;
      }
      if (event.text !== '') yield sseEvent(chunk(c, event.text, null));
      yield sseEvent(chunk(c, undefined, finishReason(event.finishReason)));
      if (c.request.includeUsage) {
        const base = { id: c.id, created: c.created, model: c.request.model, system_fingerprint: fingerprint(c) };
        yield sseEvent({ ...base, object: c.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', choices: [], usage: usageOf(event.usage) });
      }
    }
  } catch (err) {
    yield sseEvent(openAiError(toInferneoError(err)));
  } finally {
    await rest.return?.();
  }
  yield sseEvent('[DONE]');
}

export function createOpenAiRouter(options: OpenAiApiOptions): Router {
  const { llm } = options;

  /** Runs a handler, answering any failure with OpenAI's error body. */
  const guarded =
    (handler: Handler): Handler =>
    async (req, params, signal) => {
      try {
        return await handler(req, params, signal);
      } catch (err) {
        const error = toInferneoError(err);
        if (error.code === ErrorCode.INTERNAL) options.onInternalError?.(error, req);
        return errorReply(error);
      }
    };

  const listModels: Handler = () =>
    json({ object: 'list', data: llm.list().map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'inferneo' })) });

  const getModel: Handler = (_req, [id]) => {
    const found = llm.list().find((m) => m.id === id);
    if (found === undefined) return errorReply(new NotFoundError(`The model '${id}' does not exist`));
    return json({ id: found.id, object: 'model', created: found.created, owned_by: 'inferneo' });
  };

  const complete =
    (kind: Kind): Handler =>
    async (req, _params, signal: CancelSignal): Promise<Reply> => {
      const body = await readJsonObject(req, options.maxRequestBytes);
      const request = kind === 'chat' ? parseChatRequest(body) : parseCompletionRequest(body);
      const target = llm.resolve(request.model, undefined, headerLookup(req), request.user);
      const c: Completion = { kind, id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), request, target };
      const events = llm.generate(target, request.generate, signal);
      // The first event (or the failure before it) decides the status: a bad prompt is still a 400.
      const first = await events.next();
      const headers: Record<string, string> = { [ARM_HEADER]: target.arm ?? `${target.model}-v${target.version}` };
      if (request.stream) return { status: 200, body: '', headers: { ...SSE_HEADERS, ...headers }, stream: sseBody(c, first, events) };

      let text = kind === 'completion' && request.echo ? (request.generate.prompt ?? '') : '';
      let final: Extract<GenerationEvent, { type: 'final' }> | undefined;
      for (let next = first; next.done !== true; next = await events.next()) {
        text += next.value.text;
        if (next.value.type === 'final') final = next.value;
      }
      const usage = usageOf(final?.usage ?? { prompt_tokens: 0, completion_tokens: 0 });
      const reason = finishReason(final?.finishReason ?? 'stop');
      const base = { id: c.id, created: c.created, model: request.model, system_fingerprint: fingerprint(c) };
      if (kind === 'chat') {
        return json(
          { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: reason }], usage },
          headers,
        );
      }
      return json({ ...base, object: 'text_completion', choices: [{ index: 0, text, logprobs: null, finish_reason: reason }], usage }, headers);
    };

  const routes: Record<string, Partial<Record<'GET' | 'POST', Handler>>> = {
    models: { GET: guarded(listModels) },
    completions: { POST: guarded(complete('completion')) },
    'chat/completions': { POST: guarded(complete('chat')) },
  };

  return (method, s) => {
    const path = s.slice(1).join('/');
    if (s[1] === 'models' && s.length === 3) {
      return method === 'GET' ? { handler: guarded(getModel), params: [s[2]!] } : { handler: refuse(405, `${method} is not allowed on /${s.join('/')}; use GET`), params: [] };
    }
    const methods = routes[path];
    if (methods === undefined) return { handler: refuse(404, `Unknown request URL: ${method} /${s.join('/')}`), params: [] };
    const handler = methods[method as 'GET' | 'POST'];
    if (handler === undefined) return { handler: refuse(405, `${method} is not allowed on /${s.join('/')}; use ${Object.keys(methods).join(' or ')}`), params: [] };
    return { handler, params: [] };
  };
}

/** A handler that answers with an OpenAI error of this status. */
function refuse(status: 404 | 405, message: string): Handler {
  return () => ({
    status,
    body: JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: status === 404 ? 'unknown_url' : 'method_not_allowed' } }),
    headers: { 'content-type': 'application/json' },
  });
}
