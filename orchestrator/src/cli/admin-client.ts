import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import type * as schemas from '../admin/schemas.js';
import type { JobView as JobViewSchema, jobSettingsSchema, submitJobBody } from '../jobs/job-spec.js';
import { type ErrorCode, InferneoError, InvalidArgumentError } from '../errors.js';
import type { RouteSpecInput } from '../routing/route-spec.js';

/**
 * A typed client of the admin API (`/admin`, bearer token): one method per endpoint, answers typed
 * by the same zod schemas the server validates and documents with. Used by the `inferneo` command
 * and by tests; it holds no state beyond its options, so one instance may serve concurrent calls.
 */

export type ModelView = z.output<typeof schemas.modelView>;
export type VersionView = z.output<typeof schemas.versionView>;
export type RouteView = z.output<typeof schemas.routeView>;
export type RouteStatsView = z.output<typeof schemas.routeStatsView>;
export type AuditEntry = z.output<typeof schemas.auditView>[number];
export type RegisterModelBody = z.input<typeof schemas.registerModelBody>;
export type RegisterVersionBody = z.input<typeof schemas.registerVersionBody>;
export type JobView = JobViewSchema;
export type SubmitJobBody = z.input<typeof submitJobBody>;
export type JobSettingsInput = z.input<typeof jobSettingsSchema>;
export interface DeletedView {
  deleted: string;
}

export interface AdminClientOptions {
  /** The orchestrator's base URL, without `/admin`, e.g. `http://127.0.0.1:8000`. */
  url: string;
  /** The admin bearer token (INFERNEO_ADMIN_TOKEN, or the contents of `.inferneo/admin-token`). */
  token: string;
  /** Sent as `x-inferneo-actor`, the "who" of the audit log. @defaultValue none: the log says "admin-token" */
  actor?: string;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
}

/** The admin API answered with an error; `message` is the API's own `{"error"}` text. */
export class AdminApiError extends InferneoError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(codeOfStatus(status), message);
  }
}

/** No answer at all: nothing listens at `url`, or the connection broke. */
export class AdminUnreachableError extends InferneoError {
  constructor(
    readonly url: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super('UNAVAILABLE', `cannot reach the orchestrator at ${url} (${reason})`, options);
  }
}

// The API sends only the message; its status tells the kind of failure (409 is CONFLICT or ALREADY_EXISTS).
const CODE_OF_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RESOURCE_EXHAUSTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

function codeOfStatus(status: number): ErrorCode {
  return CODE_OF_STATUS[status] ?? 'INTERNAL';
}

/** The most telling part of a failed fetch: `ECONNREFUSED`, `ENOTFOUND`… or the message. */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown; errors?: { code?: unknown }[] } }).cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  if (typeof code === 'string') return code;
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message;
  return (err as Error).message;
}

export class AdminClient {
  /** The base URL, normalised without a trailing slash. */
  readonly url: string;
  private readonly token: string;
  private readonly actor: string | undefined;
  private readonly fetch: typeof fetch;

  constructor(options: AdminClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new InvalidArgumentError(`url: '${options.url}' is not a URL; expected one such as http://127.0.0.1:8000`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new InvalidArgumentError(`url: '${options.url}' is not an http:// or https:// URL`);
    }
    if (options.token === '' || /\s/.test(options.token)) {
      throw new InvalidArgumentError('token: the admin token must be non-empty and hold no spaces');
    }
    // fetch rejects header values outside Latin-1; catch it here rather than as a network failure.
    if (options.actor !== undefined && !/^[\x20-\x7e]{1,128}$/.test(options.actor)) {
      throw new InvalidArgumentError(`actor: '${options.actor}' must be 1 to 128 printable ASCII characters`);
    }
    this.url = parsed.href.replace(/\/+$/, '');
    this.token = options.token;
    this.actor = options.actor;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  listModels(): Promise<ModelView[]> {
    return this.request('GET', '/models');
  }

  getModel(model: string): Promise<ModelView> {
    return this.request('GET', `/models/${enc(model)}`);
  }

  registerModel(body: RegisterModelBody): Promise<ModelView> {
    return this.request('POST', '/models', body);
  }

  deleteModel(model: string): Promise<DeletedView> {
    return this.request('DELETE', `/models/${enc(model)}`);
  }

  registerVersion(model: string, body: RegisterVersionBody): Promise<VersionView> {
    return this.request('POST', `/models/${enc(model)}/versions`, body);
  }

  getVersion(model: string, version: string): Promise<VersionView> {
    return this.request('GET', `/models/${enc(model)}/versions/${enc(version)}`);
  }

  deleteVersion(model: string, version: string): Promise<DeletedView> {
    return this.request('DELETE', `/models/${enc(model)}/versions/${enc(version)}`);
  }

  /** Resolves when the version is ready (its warm-up done). */
  loadVersion(model: string, version: string): Promise<VersionView> {
    return this.request('POST', `/models/${enc(model)}/versions/${enc(version)}/load`);
  }

  /** Resolves when the version has drained its in-flight requests and is unloaded. */
  unloadVersion(model: string, version: string): Promise<VersionView> {
    return this.request('POST', `/models/${enc(model)}/versions/${enc(version)}/unload`);
  }

  pinVersion(model: string, version: string): Promise<VersionView> {
    return this.request('POST', `/models/${enc(model)}/versions/${enc(version)}/pin`);
  }

  unpinVersion(model: string, version: string): Promise<VersionView> {
    return this.request('POST', `/models/${enc(model)}/versions/${enc(version)}/unpin`);
  }

  listRoutes(): Promise<RouteView[]> {
    return this.request('GET', '/routes');
  }

  getRoute(route: string): Promise<RouteView> {
    return this.request('GET', `/routes/${enc(route)}`);
  }

  /** Creates or replaces the route as a whole. */
  putRoute(route: string, spec: RouteSpecInput): Promise<RouteView> {
    return this.request('PUT', `/routes/${enc(route)}`, spec);
  }

  deleteRoute(route: string): Promise<DeletedView> {
    return this.request('DELETE', `/routes/${enc(route)}`);
  }

  routeStats(route: string): Promise<RouteStatsView> {
    return this.request('GET', `/routes/${enc(route)}/stats`);
  }

  promoteRoute(route: string, arm: string): Promise<RouteView> {
    return this.request('POST', `/routes/${enc(route)}/promote`, { arm });
  }

  rollbackRoute(route: string): Promise<RouteView> {
    return this.request('POST', `/routes/${enc(route)}/rollback`);
  }

  /** The newest audit entries, newest first. @param limit 1 to 1000; the API's default is 100 */
  audit(limit?: number): Promise<AuditEntry[]> {
    return this.request('GET', `/audit${limit !== undefined ? `?limit=${limit}` : ''}`);
  }

  /** Submits a job with its rows inline. */
  submitJob(body: SubmitJobBody): Promise<JobView> {
    return this.request('POST', '/jobs', body);
  }

  /**
   * Submits a job whose rows are a JSON Lines file, streamed from disk as multipart/form-data
   * (never read into memory as a whole).
   */
  async submitJobFile(file: string, settings: JobSettingsInput): Promise<JobView> {
    const size = (await stat(file)).size;
    const boundary = `----inferneo${randomBytes(12).toString('hex')}`;
    const fields = Object.entries(settings)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${String(v)}\r\n`)
      .join('');
    const name = path.basename(file).replace(/["\r\n]/g, '_');
    const head = Buffer.from(`${fields}--${boundary}\r\nContent-Disposition: form-data; name="rows"; filename="${name}"\r\nContent-Type: application/x-ndjson\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    async function* body(): AsyncGenerator<Buffer> {
      yield head;
      for await (const chunk of createReadStream(file)) yield chunk as Buffer;
      yield tail;
    }
    return this.request('POST', '/jobs', undefined, {
      body: body(),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) },
    });
  }

  /** The newest jobs first. */
  listJobs(limit?: number): Promise<JobView[]> {
    return this.request('GET', `/jobs${limit !== undefined ? `?limit=${limit}` : ''}`);
  }

  getJob(id: string): Promise<JobView> {
    return this.request('GET', `/jobs/${enc(id)}`);
  }

  cancelJob(id: string): Promise<JobView> {
    return this.request('DELETE', `/jobs/${enc(id)}`);
  }

  /** Streams the job's result lines (JSON Lines, row order) to `write` as they arrive. */
  async jobResults(id: string, write: (chunk: string) => Promise<void> | void): Promise<void> {
    const res = await this.send('GET', `/jobs/${enc(id)}/results`, { accept: 'application/x-ndjson' });
    if (!res.ok) await this.fail(res, `/jobs/${enc(id)}/results`, await res.text());
    if (res.body === null) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) await write(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch (err) {
      throw new AdminUnreachableError(this.url, networkReason(err), { cause: err });
    }
  }

  private async send(method: string, path: string, extra: Record<string, string>, body?: RequestInit['body'] | AsyncIterable<Buffer>): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...extra };
    if (this.actor !== undefined) headers['x-inferneo-actor'] = this.actor;
    try {
      // An async iterable body streams (`duplex: 'half'` is how fetch is told so).
      const init = { method, headers, ...(body !== undefined ? { body: body as RequestInit['body'], duplex: 'half' } : {}) } as RequestInit;
      return await this.fetch(`${this.url}/admin${path}`, init);
    } catch (err) {
      throw new AdminUnreachableError(this.url, networkReason(err), { cause: err });
    }
  }

  private async fail(res: Response, path: string, text: string): Promise<never> {
    let message: unknown;
    try {
      message = (JSON.parse(text) as { error?: unknown }).error;
    } catch {
      message = undefined;
    }
    throw new AdminApiError(res.status, typeof message === 'string' ? message : `HTTP ${res.status} ${res.statusText} from ${this.url}/admin${path}`);
  }

  private async request<T>(method: string, path: string, body?: unknown, raw?: { body: AsyncIterable<Buffer>; headers: Record<string, string> }): Promise<T> {
    if (raw !== undefined) {
      const res = await this.send(method, path, { accept: 'application/json', ...raw.headers }, raw.body);
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        throw new AdminUnreachableError(this.url, networkReason(err), { cause: err });
      }
      if (!res.ok) await this.fail(res, path, text);
      return JSON.parse(text) as T;
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.actor !== undefined) headers['x-inferneo-actor'] = this.actor;
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(`${this.url}/admin${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      text = await res.text();
    } catch (err) {
      throw new AdminUnreachableError(this.url, networkReason(err), { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const message = (parsed as { error?: unknown } | undefined)?.error;
      throw new AdminApiError(res.status, typeof message === 'string' ? message : `HTTP ${res.status} ${res.statusText} from ${this.url}/admin${path}`);
    }
    if (parsed === undefined) {
      throw new AdminApiError(res.status, `the answer of ${this.url}/admin${path} is not JSON: is ${this.url} an Inferneo orchestrator?`);
    }
    return parsed as T;
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
