import { features } from './stack.js';

/** Helpers of the batch-job tests: rows, submitting, waiting, reading results. */

export const TOKEN = 'test-admin-token';

export interface JobViewBody {
  id: string;
  state: string;
  model: string;
  version?: string;
  chunks: number;
  progress: { done: number; failed: number; total: number };
  rate_rows_per_s: number | null;
  eta_s: number | null;
  started_at?: string;
  finished_at?: string;
  error?: string;
  callback?: string;
}

export interface ResultLine {
  row: number;
  model_name?: string;
  model_version?: string;
  outputs?: { name: string; datatype: string; shape: number[]; data: number[] }[];
  error?: string;
  code?: string;
}

/** A classifier row (`features` FP32 [1,16]) from a fixed seed. */
export function classifierRow(seed: number): { inputs: unknown[] } {
  return { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array.from(features(16, seed)) }] };
}

export function jsonl(rows: readonly unknown[]): string {
  return rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
}

/** POST /admin/jobs as multipart: `fields` plus the file `rows`. */
export async function submitFile(url: string, fields: Record<string, string>, text: string | Blob, fileField = 'rows'): Promise<{ status: number; body: Record<string, unknown> }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append(fileField, typeof text === 'string' ? new Blob([text], { type: 'application/x-ndjson' }) : text, 'rows.jsonl');
  const res = await fetch(`${url}/admin/jobs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function getJob(url: string, id: string): Promise<JobViewBody> {
  const res = await fetch(`${url}/admin/jobs/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (res.status !== 200) throw new Error(`GET job ${id}: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobViewBody;
}

/** Polls the job until `until` holds (default: a final state); tolerates failed polls (e.g. Redis restarting). */
export async function waitForJob(url: string, id: string, until: (j: JobViewBody) => boolean = (j) => ['completed', 'failed', 'cancelled'].includes(j.state), timeoutMs = 90_000, pollMs = 100): Promise<JobViewBody> {
  const deadline = Date.now() + timeoutMs;
  let last: JobViewBody | undefined;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      last = await getJob(url, id);
      if (until(last)) return last;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error(`job ${id} did not get there in ${timeoutMs} ms; last seen ${JSON.stringify(last)} ${lastError}`);
}

export async function results(url: string, id: string): Promise<{ status: number; type: string | null; lines: ResultLine[] }> {
  const res = await fetch(`${url}/admin/jobs/${id}/results`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), lines: text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ResultLine) };
}
