import { z } from 'zod';
import { nameSchema, versionSchema } from '../routing/route-spec.js';

/**
 * What a batch job is, as clients give it and see it: the submit body of `POST /admin/jobs` (JSON,
 * or the same fields as multipart form fields beside a JSON Lines file `rows`), its states, and the
 * view `GET /admin/jobs/{id}` answers with. The admin API validates and documents with these schemas.
 */

export const JobState = {
  QUEUED: 'queued',
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];

/** States a job never leaves. */
export const FINAL_STATES: ReadonlySet<JobState> = new Set([JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED]);

export const DEFAULT_CHUNK_SIZE = 256;
export const MAX_CHUNK_SIZE = 10_000;
export const DEFAULT_JOB_PRIORITY = 5;
export const MAX_JOB_PRIORITY = 100;

/** Job ids are UUIDs (lower-case, as randomUUID makes them). */
export const jobIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a job id (a UUID)');

const callbackUrlSchema = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      const u = new URL(v);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'expected an http:// or https:// URL')
  .describe('POSTed a JSON summary of the job (id, state, progress) when it finishes');

/** One input row: a KServe-v2 inference request body (inputs, optionally outputs). */
export const jobRowSchema = z
  .object({
    inputs: z.array(z.record(z.string(), z.unknown())).min(1).describe('KServe-v2 input tensors: name, datatype, shape, data'),
    outputs: z.array(z.object({ name: z.string() }).loose()).optional().describe('Outputs to return; default all'),
  })
  .loose();

/** Fields of a job besides its rows (the multipart form fields are the same, as strings). */
export const jobSettingsSchema = z
  .object({
    model: nameSchema.describe('A route or a model'),
    version: versionSchema.optional().describe('A version of the model; bypasses any route'),
    chunk_size: z.coerce
      .number()
      .int()
      .min(1)
      .max(MAX_CHUNK_SIZE)
      .default(DEFAULT_CHUNK_SIZE)
      .describe(`Rows per chunk (one BullMQ child job each), 1 to ${MAX_CHUNK_SIZE}`),
    priority: z.coerce
      .number()
      .int()
      .min(1)
      .max(MAX_JOB_PRIORITY)
      .default(DEFAULT_JOB_PRIORITY)
      .describe(`1 (first) to ${MAX_JOB_PRIORITY}: the order in which jobs' chunks are taken; all of them run after online requests`),
    callback_url: callbackUrlSchema.optional(),
  })
  .strict();

/**
 * The JSON body. Rows are checked one by one when the job is ingested (a bad row gets its own error
 * line), so here they only need to be objects.
 */
export const submitJobBody = jobSettingsSchema
  .extend({
    rows: z.array(z.record(z.string(), z.unknown())).min(1).describe('Input rows, each {"inputs": [KServe-v2 tensors]}'),
  })
  .strict();

/** The multipart form: the settings as fields, and the rows as a JSON Lines file. */
export const submitJobMultipart = jobSettingsSchema.extend({
  rows: z.string().describe('A JSON Lines file: one {"inputs": [...]} object per line'),
});

export type JobSettings = z.output<typeof jobSettingsSchema>;

export const jobView = z.object({
  id: z.string(),
  state: z.enum([JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED]),
  model: z.string(),
  version: z.string().optional(),
  chunk_size: z.number(),
  chunks: z.number().describe('Chunks (BullMQ child jobs) holding at least one valid row'),
  priority: z.number(),
  callback_url: z.string().optional(),
  progress: z.object({
    done: z.number().describe('Rows with outputs'),
    failed: z.number().describe('Rows with an error line'),
    total: z.number(),
  }),
  rate_rows_per_s: z.number().nullable().describe('Rows finished per second since the job started'),
  eta_s: z.number().nullable().describe('Seconds left at that rate'),
  created_at: z.string(),
  started_at: z.string().optional(),
  finished_at: z.string().optional(),
  error: z.string().optional().describe('Why a failed job failed'),
  callback: z.string().optional().describe('Outcome of the completion callback: HTTP status, or the error'),
});
export type JobView = z.output<typeof jobView>;

export const jobListView = z.array(jobView);
