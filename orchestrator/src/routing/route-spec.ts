import { z } from 'zod';

/**
 * The schema of a route (PUT /admin/routes/{route}): a logical model name with weighted arms,
 * sticky routing, header rules, shadow traffic and an optional automatic canary. The admin API
 * validates bodies with it and the OpenAPI document is generated from it.
 */

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const nameSchema = z.string().regex(NAME_PATTERN, 'expected letters, digits, _ . - (at most 128, starting with a letter or digit)');
export const versionSchema = z.string().regex(/^[0-9]{1,18}$/, 'expected a version number such as "1"');

export const armSchema = z
  .object({
    name: nameSchema.optional().describe('Arm name used by header rules and x-inferneo-arm; default "<model>-v<version>"'),
    model: nameSchema,
    version: versionSchema,
    weight: z.number().min(0).max(1_000_000).describe('Relative share of traffic; weights need not add up to 100'),
  })
  .strict();

export const ruleSchema = z
  .object({
    header: z.string().min(1).max(128).describe('Request header to match (case-insensitive)'),
    equals: z.string().max(1024),
    arm: nameSchema.describe('Arm that matching requests go to'),
  })
  .strict();

export const shadowSchema = z
  .object({
    model: nameSchema,
    version: versionSchema,
    percent: z.number().min(0).max(100).describe('Share of requests mirrored; responses are discarded'),
  })
  .strict();

export const canarySchema = z
  .object({
    arm: nameSchema.describe('The arm whose weight is stepped up'),
    steps: z.array(z.number().min(0).max(100)).min(1).max(20).describe('Percent of traffic for the canary arm at each step'),
    interval_s: z.number().min(1).max(86_400).describe('Time at each step before it is judged'),
    max_error_rate: z.number().min(0).max(1).optional().describe('Roll back when the canary arm errs more often than this in a step'),
    max_p95_ms: z.number().positive().optional().describe('Roll back when the canary arm p95 latency exceeds this in a step'),
    min_requests: z.int().min(1).default(20).describe('Requests a step needs before it can be judged'),
  })
  .strict();

export const routeSpecSchema = z
  .object({
    arms: z.array(armSchema).min(1).max(32),
    sticky: z.boolean().default(false).describe('Requests with the same x-inferneo-route-key go to the same arm'),
    rules: z.array(ruleSchema).max(32).default([]),
    shadow: shadowSchema.optional(),
    canary: canarySchema.optional(),
  })
  .strict();

export type RouteSpecInput = z.input<typeof routeSpecSchema>;
export type RouteSpec = z.output<typeof routeSpecSchema>;
export type Arm = z.output<typeof armSchema> & { name: string };

/** Progress of an automatic canary, kept with the route. */
export interface CanaryStatus {
  state: 'running' | 'completed' | 'rolled_back';
  step: number;
  reason?: string;
  updated_at: string;
}

/** A route as the API returns it: defaults applied, arm names filled in. */
export interface Route {
  name: string;
  arms: Arm[];
  sticky: boolean;
  rules: RouteSpec['rules'];
  shadow?: RouteSpec['shadow'];
  canary?: RouteSpec['canary'] & { status?: CanaryStatus };
  updated_at: string;
}

export function armName(arm: { name?: string | undefined; model: string; version: string }): string {
  return arm.name ?? `${arm.model}-v${arm.version}`;
}
