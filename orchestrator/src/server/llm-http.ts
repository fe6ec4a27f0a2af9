import type { IncomingMessage } from 'node:http';
import { InvalidArgumentError } from '../errors.js';
import { readBody } from './http-body.js';

/**
 * HTTP pieces shared by the LLM endpoints (openai-api.ts, generate-api.ts): JSON bodies, header
 * lookup, and server-sent events.
 */

/** Headers of a server-sent events response; proxies must not buffer it. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

/** One server-sent event carrying `data` (JSON unless it is a string already). */
export function sseEvent(data: unknown): string {
  return `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

/** The request body as a JSON object; malformed JSON or another JSON value is INVALID_ARGUMENT. */
export async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit);
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`the request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError('the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** Looks headers up by lower-case name (the first value of a repeated one). */
export function headerLookup(req: IncomingMessage): (name: string) => string | undefined {
  return (name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
}
