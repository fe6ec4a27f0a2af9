import { once } from 'node:events';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { InvalidArgumentError } from '../errors.js';
import type { InputSpool } from '../jobs/input-spool.js';
import type { JobQueue } from '../jobs/job-queue.js';
import { FINAL_STATES, jobListView, jobSettingsSchema, jobView, submitJobBody, submitJobMultipart } from '../jobs/job-spec.js';
import type { Endpoint } from './admin-api.js';
import { describeZodError } from './admin-api.js';
import { isMultipart, readJobUpload } from './job-upload.js';

/**
 * The batch-job endpoints of the admin API (`/admin/jobs…`), in the admin API's endpoint table so
 * that they share its auth, errors, audit log and OpenAPI document. Submitting takes the rows inline
 * (JSON) or as a JSON Lines file (multipart, streamed to the spool); progress streams as
 * server-sent events and results as JSON Lines in row order.
 */

export interface JobEndpointsOptions {
  queue: JobQueue;
  spool: InputSpool;
  /** Largest JSON body (rows inline). */
  maxInlineBytes: number;
  /** How often the events stream looks at the job. @defaultValue 500 */
  eventsIntervalMs?: number;
  /** Comment lines that keep an idle events stream open through proxies. @defaultValue 15000 */
  heartbeatMs?: number;
}

async function write(res: Response, text: string): Promise<void> {
  if (!res.write(text)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
}

export function jobEndpoints(options: JobEndpointsOptions): Endpoint[] {
  const { queue, spool } = options;
  const interval = options.eventsIntervalMs ?? 500;
  const heartbeat = options.heartbeatMs ?? 15_000;

  const submit = async (req: Request, body: unknown): Promise<unknown> => {
    if (isMultipart(req)) {
      const upload = await readJobUpload(req, spool);
      const parsed = jobSettingsSchema.safeParse(upload.fields);
      if (!parsed.success) {
        await spool.remove(upload.file);
        throw new InvalidArgumentError(`invalid form fields: ${describeZodError(parsed.error, 'form')}`);
      }
      return queue.submit(parsed.data, upload.file);
    }
    const { rows, ...settings } = body as z.output<typeof submitJobBody>;
    const { file } = await spool.writeRows(rows);
    return queue.submit(settings, file);
  };

  const events = async (res: Response, id: string): Promise<void> => {
    await queue.get(id); // 404 as JSON, before the stream starts
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const ping = setInterval(() => res.write(': keep-alive\n\n'), heartbeat);
    try {
      for await (const view of queue.watch(id, interval, abort.signal)) {
        await write(res, `event: progress\ndata: ${JSON.stringify(view)}\n\n`);
        if (FINAL_STATES.has(view.state)) await write(res, `event: end\ndata: ${JSON.stringify({ id, state: view.state })}\n\n`);
      }
    } catch (err) {
      if (!abort.signal.aborted) await write(res, `event: error\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
    } finally {
      clearInterval(ping);
      res.end();
    }
  };

  const results = async (res: Response, id: string): Promise<void> => {
    await queue.get(id);
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
    let closed = false;
    res.on('close', () => (closed = true));
    try {
      for await (const lines of queue.results(id)) {
        if (closed) break;
        await write(res, `${lines.join('\n')}\n`);
      }
    } finally {
      res.end();
    }
  };

  return [
    {
      method: 'post',
      path: '/jobs',
      tag: 'jobs',
      summary:
        'Submit a batch job: rows inline (JSON) or as a JSON Lines file `rows` (multipart/form-data, streamed to disk). Answers once the input is checked and stored, before any row runs; rows that do not match the model get error lines, and a submit where none matches is refused',
      body: submitJobBody,
      multipart: submitJobMultipart,
      bodyLimit: options.maxInlineBytes,
      response: jobView,
      status: 202,
      mutation: true,
      audit: (_ctx, result) => {
        const view = result as z.output<typeof jobView>;
        return { target: view.id, body: { model: view.model, version: view.version, rows: view.progress.total, chunk_size: view.chunk_size, priority: view.priority } };
      },
      handler: ({ req, body }) => submit(req, body),
    },
    {
      method: 'get',
      path: '/jobs',
      tag: 'jobs',
      summary: 'List jobs, newest first (?limit=, default 100); finished jobs expire after jobs.ttl_s',
      response: jobListView,
      mutation: false,
      handler: ({ query }) => {
        const limit = Number(query['limit'] ?? 100);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidArgumentError('limit: expected an integer from 1 to 1000');
        return queue.list(limit);
      },
    },
    { method: 'get', path: '/jobs/:job', tag: 'jobs', summary: 'A job: state, progress (rows done, failed, total), rate and ETA', response: jobView, mutation: false, handler: ({ params }) => queue.get(params['job']!) },
    {
      method: 'delete',
      path: '/jobs/:job',
      tag: 'jobs',
      summary: 'Cancel a job: chunks not started are dropped, running ones finish (409 once it has finished)',
      response: jobView,
      mutation: true,
      handler: ({ params }) => queue.cancel(params['job']!),
    },
    {
      method: 'get',
      path: '/jobs/:job/events',
      tag: 'jobs',
      summary: 'Server-sent events: `progress` with the job (as GET /admin/jobs/{job}) whenever it changes, then `end` when it has finished',
      produces: 'text/event-stream',
      mutation: false,
      handler: ({ res, params }) => events(res, params['job']!),
    },
    {
      method: 'get',
      path: '/jobs/:job/results',
      tag: 'jobs',
      summary: 'Results as JSON Lines in row order: {"row", "model_name", "model_version", "outputs"} or {"row", "error", "code"}; rows without a result yet are left out',
      produces: 'application/x-ndjson',
      mutation: false,
      handler: ({ res, params }) => results(res, params['job']!),
    },
  ];
}
