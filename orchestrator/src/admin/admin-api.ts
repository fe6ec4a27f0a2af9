import express, { type NextFunction, type Request, type Response } from 'express';
import { z, ZodError } from 'zod';
import { InferneoError, InvalidArgumentError, httpStatusOf, NotFoundError, toInferneoError } from '../errors.js';
import type { Registry } from '../metrics/metrics.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { ModelRecord, RegistryStore, VersionRecord } from '../registry/registry-store.js';
import { nameSchema, versionSchema } from '../routing/route-spec.js';
import type { Router as TrafficRouter } from '../routing/router.js';
import { jobIdSchema } from '../jobs/job-spec.js';
import { bearerAuth } from './auth.js';
import { jobEndpoints, type JobEndpointsOptions } from './job-endpoints.js';
import { isMultipart } from './job-upload.js';
import { createQueuesDashboard, DASHBOARD_PATH } from './queues-dashboard.js';
import * as s from './schemas.js';

/**
 * The admin REST API (`/admin`, bearer token) and `GET /openapi.json`, generated from one table of
 * endpoints: each entry's schemas validate its requests and describe it in the OpenAPI document.
 * Every successful mutation is written to the audit log (stderr and Redis) with who, what and when.
 */

export interface AdminApiOptions {
  registry: ModelRegistry;
  router: TrafficRouter;
  store: RegistryStore;
  token: string;
  metrics: Registry;
  /** Batch jobs: the /admin/jobs endpoints and the bull-board dashboard at /admin/queues. @defaultValue none */
  jobs?: JobEndpointsOptions;
  /** Audit lines. @defaultValue one JSON line on stderr */
  log?: (line: string) => void;
}

interface Context {
  params: Record<string, string>;
  body: unknown;
  query: Record<string, unknown>;
  req: Request;
  /** Only endpoints that `produce` a stream write to it themselves. */
  res: Response;
}

export interface Endpoint {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express path under /admin, e.g. `/models/:model`. */
  path: string;
  summary: string;
  tag: 'models' | 'routes' | 'audit' | 'jobs';
  body?: z.ZodType;
  /** Largest JSON body. @defaultValue 1 MiB */
  bodyLimit?: number;
  /** The fields of a multipart/form-data request, also accepted (the handler reads the request). */
  multipart?: z.ZodType;
  /** Content type of a streamed answer, which the handler writes to `res` itself. @defaultValue JSON */
  produces?: string;
  /** What the audit entry records of a mutation. @defaultValue the path parameters (or the body's name) and the body */
  audit?: (ctx: Context, result: unknown) => { target: string; body?: unknown };
  response?: z.ZodType;
  /** Status of a success. @defaultValue 200 */
  status?: number;
  /** Mutations are audited. */
  mutation: boolean;
  handler: (ctx: Context) => Promise<unknown> | unknown;
}

/** A ZodError as one message naming each field: `arms[1].weight: Too small: expected number to be >=0`. */
export function describeZodError(error: ZodError, root: string): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc === '' ? String(p) : `${acc}.${String(p)}`), '');
      return `${field === '' ? root : field}: ${issue.message}`;
    })
    .join('; ');
}

const PARAM_SCHEMAS: Record<string, z.ZodType> = { model: nameSchema, route: nameSchema, version: versionSchema, job: jobIdSchema };
const DEFAULT_BODY_LIMIT = 1024 * 1024;

function toPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z]+)/g, '{$1}');
}

export function createAdminApp(options: AdminApiOptions): express.Express {
  const { registry, router, store } = options;
  const log = options.log ?? ((line: string) => console.error(line));

  const versionView = (v: VersionRecord): z.infer<typeof s.versionView> => ({
    ...v,
    serving: registry.isServing(v.model, v.version),
    inflight: registry.inflightCount(v.model, v.version),
  });
  const modelView = (m: ModelRecord, withConfig = false): z.infer<typeof s.modelView> => {
    const view: z.infer<typeof s.modelView> = {
      name: m.name,
      backend: m.backend,
      source: m.source,
      platform: m.config.platform !== '' ? m.config.platform : m.config.backend,
      max_batch_size: m.config.max_batch_size,
      created_at: m.created_at,
      versions: registry.versions(m.name).map(versionView),
    };
    if (withConfig) view.config = m.config.json;
    return view;
  };

  const endpoints: Endpoint[] = [
    { method: 'get', path: '/models', tag: 'models', summary: 'List models and their versions', response: z.array(s.modelView), mutation: false, handler: () => registry.models().map((m) => modelView(m)) },
    {
      method: 'post', path: '/models', tag: 'models', summary: 'Register a model from a Triton-layout directory', body: s.registerModelBody, response: s.modelView, status: 201, mutation: true,
      handler: async ({ body }) => modelView(await registry.registerModel(body as z.infer<typeof s.registerModelBody>), true),
    },
    { method: 'get', path: '/models/:model', tag: 'models', summary: 'A model, its config and versions', response: s.modelView, mutation: false, handler: ({ params }) => modelView(registry.model(params['model']!), true) },
    {
      method: 'delete', path: '/models/:model', tag: 'models', summary: 'Unload and delete a model (409 while a route uses it or a version is pinned)', mutation: true,
      handler: async ({ params }) => {
        await registry.deleteModel(params['model']!);
        return { deleted: params['model'] };
      },
    },
    {
      method: 'post', path: '/models/:model/versions', tag: 'models', summary: 'Register a version', body: s.registerVersionBody, response: s.versionView, status: 201, mutation: true,
      handler: async ({ params, body }) => versionView(await registry.registerVersion(params['model']!, body as z.infer<typeof s.registerVersionBody>)),
    },
    { method: 'get', path: '/models/:model/versions/:version', tag: 'models', summary: 'A version and its state', response: s.versionView, mutation: false, handler: ({ params }) => versionView(registry.version(params['model']!, params['version']!)) },
    {
      method: 'delete', path: '/models/:model/versions/:version', tag: 'models', summary: 'Unload and delete a version (409 when pinned or used by a route)', mutation: true,
      handler: async ({ params }) => {
        await registry.deleteVersion(params['model']!, params['version']!);
        return { deleted: `${params['model']} v${params['version']}` };
      },
    },
    {
      method: 'post', path: '/models/:model/versions/:version/load', tag: 'models', summary: 'Load a version, running its warm-up; it is ready when this returns', response: s.versionView, mutation: true,
      handler: async ({ params }) => versionView(await registry.load(params['model']!, params['version']!)),
    },
    {
      method: 'post', path: '/models/:model/versions/:version/unload', tag: 'models', summary: 'Drain and unload a version (409 when pinned or a route sends it 100%)', response: s.versionView, mutation: true,
      handler: async ({ params }) => versionView(await registry.unload(params['model']!, params['version']!)),
    },
    {
      method: 'post', path: '/models/:model/versions/:version/pin', tag: 'models', summary: 'Pin a version: never evicted', response: s.versionView, mutation: true,
      handler: async ({ params }) => versionView(await registry.setPinned(params['model']!, params['version']!, true)),
    },
    {
      method: 'post', path: '/models/:model/versions/:version/unpin', tag: 'models', summary: 'Unpin a version', response: s.versionView, mutation: true,
      handler: async ({ params }) => versionView(await registry.setPinned(params['model']!, params['version']!, false)),
    },
    { method: 'get', path: '/routes', tag: 'routes', summary: 'List routes', response: z.array(s.routeView), mutation: false, handler: () => router.routes() },
    { method: 'get', path: '/routes/:route', tag: 'routes', summary: 'A route', response: s.routeView, mutation: false, handler: ({ params }) => router.route(params['route']!) },
    {
      method: 'put', path: '/routes/:route', tag: 'routes', summary: 'Create or replace a route (all or nothing)', body: s.routeBody, response: s.routeView, mutation: true,
      handler: ({ params, body }) => router.put(params['route']!, body as z.infer<typeof s.routeBody>),
    },
    {
      method: 'delete', path: '/routes/:route', tag: 'routes', summary: 'Delete a route', mutation: true,
      handler: async ({ params }) => {
        await router.remove(params['route']!);
        return { deleted: params['route'] };
      },
    },
    {
      method: 'get', path: '/routes/:route/stats', tag: 'routes', summary: 'Per-arm requests, errors and latency percentiles (this orchestrator)', response: s.routeStatsView, mutation: false,
      handler: async ({ params }) => {
        const route = router.route(params['route']!);
        const figures = await router.stats.figures(route.name);
        return {
          route: route.name,
          arms: route.arms.map((a) => ({
            arm: a.name, model: a.model, version: a.version, weight: a.weight,
            ...(figures.get(a.name) ?? { requests: 0, errors: 0, error_rate: 0, latency_ms: { p50: null, p95: null, p99: null } }),
          })),
        };
      },
    },
    {
      method: 'post', path: '/routes/:route/promote', tag: 'routes', summary: 'Send all traffic to one arm', body: s.promoteBody, response: s.routeView, mutation: true,
      handler: ({ params, body }) => router.promote(params['route']!, (body as z.infer<typeof s.promoteBody>).arm),
    },
    { method: 'post', path: '/routes/:route/rollback', tag: 'routes', summary: 'Restore the route as it was before its last change', response: s.routeView, mutation: true, handler: ({ params }) => router.rollback(params['route']!) },
    {
      method: 'get', path: '/audit', tag: 'audit', summary: 'The newest audit log entries (?limit=, default 100)', response: s.auditView, mutation: false,
      handler: ({ query }) => {
        const limit = Number(query['limit'] ?? 100);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidArgumentError('limit: expected an integer from 1 to 1000');
        return store.auditLog(limit);
      },
    },
    ...(options.jobs !== undefined ? jobEndpoints(options.jobs) : []),
  ];

  const openapi = buildOpenApi(endpoints);
  const app = express();
  app.disable('x-powered-by');
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', options.metrics.contentType);
    res.send(await options.metrics.metrics());
  });

  const admin = express.Router();
  admin.use(bearerAuth(options.token));
  for (const e of endpoints) {
    admin[e.method](e.path, express.json({ limit: e.bodyLimit ?? DEFAULT_BODY_LIMIT, strict: true }), async (req: Request, res: Response) => {
      const params: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.params as Record<string, string>)) {
        const parsed = PARAM_SCHEMAS[name]?.safeParse(value);
        if (parsed !== undefined && !parsed.success) throw new InvalidArgumentError(`${name}: ${describeZodError(parsed.error, name).replace(/^[^:]*: /, '')}`);
        params[name] = value;
      }
      let body: unknown = req.body;
      if (e.body !== undefined && !(e.multipart !== undefined && isMultipart(req))) {
        const parsed = e.body.safeParse(body ?? {});
        if (!parsed.success) throw new InvalidArgumentError(`invalid body: ${describeZodError(parsed.error, 'body')}`);
        body = parsed.data;
      }
      const ctx: Context = { params, body, query: req.query as Record<string, unknown>, req, res };
      const result = await e.handler(ctx);
      if (e.mutation) {
        const audited = e.audit?.(ctx, result) ?? {
          target: Object.values(params).join('/') || String((body as { name?: unknown } | undefined)?.name ?? ''),
          ...(e.body !== undefined ? { body } : {}),
        };
        const entry = {
          at: new Date().toISOString(),
          actor: req.get('x-inferneo-actor') ?? 'admin-token',
          from: req.ip ?? req.socket.remoteAddress ?? '',
          action: `${e.method.toUpperCase()} ${e.path}`,
          ...audited,
        };
        log(`[inferneo] audit ${JSON.stringify(entry)}`);
        await store.audit(entry).catch(() => undefined);
      }
      if (e.produces === undefined) res.status(e.status ?? 200).json(result);
    });
  }
  admin.use((req: Request) => {
    throw new NotFoundError(`no such endpoint: ${req.method} /admin${req.path}`);
  });
  if (options.jobs !== undefined) app.use(DASHBOARD_PATH, createQueuesDashboard(options.jobs.queue.queues(), options.token));
  app.use('/admin', admin);
  app.use((req: Request) => {
    throw new NotFoundError(`no such endpoint: ${req.method} ${req.path}`);
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    let error: InferneoError;
    const bodyError = err as { type?: string; message?: string };
    if (bodyError.type === 'entity.parse.failed') error = new InvalidArgumentError(`malformed JSON body: ${bodyError.message ?? ''}`);
    else if (bodyError.type === 'entity.too.large') {
      const limit = (err as { limit?: number }).limit ?? DEFAULT_BODY_LIMIT;
      error = new InferneoError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes for this endpoint`);
    }
    else if (err instanceof ZodError) error = new InvalidArgumentError(describeZodError(err, 'body'));
    else error = toInferneoError(err);
    if (error.code === 'INTERNAL') console.error(`[inferneo] admin API internal error: ${(err as Error).stack ?? String(err)}`);
    // `code` (stable, from errors.ts) beside the message, so that clients need not parse text.
    res.status(httpStatusOf(error.code)).json({ error: error.message, code: error.code });
  });
  return app;
}

function buildOpenApi(endpoints: Endpoint[]): Record<string, unknown> {
  const json = (schema: z.ZodType, io: 'input' | 'output'): unknown => z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  const errorResponse = (description: string): unknown => ({ description, content: { 'application/json': { schema: json(s.errorBody, 'output') } } });
  const paths: Record<string, Record<string, unknown>> = {};
  for (const e of endpoints) {
    const p = `/admin${toPath(e.path)}`;
    const params = [...e.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: json(PARAM_SCHEMAS[m[1]!]!, 'input'),
    }));
    const operation: Record<string, unknown> = {
      summary: e.summary,
      tags: [e.tag],
      operationId: `${e.method}${p.replace(/[{}]/g, '').replace(/\/(\w)/g, (_, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '')}`,
      security: [{ bearer: [] }],
      responses: {
        [String(e.status ?? 200)]: {
          description: 'Success',
          content: e.produces !== undefined ? { [e.produces]: { schema: { type: 'string' } } } : { 'application/json': { schema: e.response !== undefined ? json(e.response, 'output') : {} } },
        },
        '400': errorResponse('Invalid request; the message names the field'),
        '401': errorResponse('No bearer token'),
        '403': errorResponse('Wrong bearer token'),
        '404': errorResponse('No such model, version, route or job'),
        ...(e.mutation ? { '409': errorResponse('Conflicts with the current state; the message says what blocks it') } : {}),
        ...(e.bodyLimit !== undefined ? { '413': errorResponse('The body or upload is larger than the limit') } : {}),
      },
    };
    if (params.length > 0) operation['parameters'] = params;
    if (e.body !== undefined) {
      const content: Record<string, unknown> = { 'application/json': { schema: json(e.body, 'input') } };
      if (e.multipart !== undefined) content['multipart/form-data'] = { schema: json(e.multipart, 'input'), encoding: { rows: { contentType: 'application/x-ndjson' } } };
      operation['requestBody'] = { required: true, content };
    }
    (paths[p] ??= {})[e.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Inferneo admin API', version: '0.1.0', description: 'Models, versions, routes, traffic splits and batch jobs of an Inferneo orchestrator.' },
    servers: [{ url: '/' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'INFERNEO_ADMIN_TOKEN' } } },
    paths,
  };
}
