import { z } from 'zod';
import { canarySchema, nameSchema, routeSpecSchema, versionSchema } from '../routing/route-spec.js';

/**
 * Schemas of the admin API's request and response bodies. Requests are validated with them and
 * the OpenAPI document (GET /openapi.json) is generated from them: one definition for both.
 */

const backendSchema = z.enum(['python', 'triton']).describe('Which backend serves it');

export const registerModelBody = z
  .object({
    name: nameSchema,
    backend: backendSchema.optional(),
    source: z.string().min(1).optional().describe('Model directory in Triton layout; default <model_repository>/<name>'),
  })
  .strict();

export const registerVersionBody = z
  .object({
    version: versionSchema,
    backend: backendSchema.optional(),
    source: z.string().min(1).optional().describe("Model directory holding this version's directory; default the model's"),
    pinned: z.boolean().optional().describe('Pinned versions are never evicted'),
  })
  .strict();

export const promoteBody = z.object({ arm: nameSchema.describe('The arm that gets all traffic') }).strict();

export const routeBody = routeSpecSchema;

export const errorBody = z.object({ error: z.string().describe('What was wrong'), code: z.string().describe('Stable error code, e.g. CONFLICT') });

export const versionView = z.object({
  model: z.string(),
  version: z.string(),
  backend: backendSchema,
  source: z.string(),
  state: z.enum(['registered', 'loading', 'ready', 'draining', 'unloaded', 'failed']),
  reason: z.string().optional(),
  pinned: z.boolean(),
  memory_bytes: z.number().optional(),
  updated_at: z.string(),
  serving: z.boolean().describe('Loaded on this orchestrator\'s workers now'),
  inflight: z.number().describe('Requests in flight on this orchestrator'),
});

export const modelView = z.object({
  name: z.string(),
  backend: backendSchema,
  source: z.string(),
  platform: z.string(),
  max_batch_size: z.number(),
  created_at: z.string(),
  versions: z.array(versionView),
  config: z.record(z.string(), z.unknown()).optional().describe('Triton model config (GET of one model only)'),
});

export const routeView = routeSpecSchema.extend({
  name: z.string(),
  arms: z.array(routeSpecSchema.shape.arms.element.extend({ name: z.string() })),
  canary: canarySchema
    .extend({ status: z.object({ state: z.enum(['running', 'completed', 'rolled_back']), step: z.number(), reason: z.string().optional(), updated_at: z.string() }) })
    .optional(),
  updated_at: z.string(),
});

const latency = z.object({ p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() });

export const routeStatsView = z.object({
  route: z.string(),
  arms: z.array(
    z.object({
      arm: z.string(),
      model: z.string(),
      version: z.string(),
      weight: z.number(),
      requests: z.number(),
      errors: z.number(),
      error_rate: z.number(),
      latency_ms: latency.describe('Percentiles over the last 10 minutes'),
    }),
  ),
});

export const auditView = z.array(z.record(z.string(), z.unknown()));
