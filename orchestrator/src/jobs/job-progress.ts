import { FINAL_STATES, JobState, type JobView } from './job-spec.js';
import type { JobMeta } from './job-store.js';

/**
 * A job as clients see it, from its record and the state of its BullMQ parent job. The final
 * state is the record's once it is finalized; before that a cancel request shows at once, and a
 * parent that BullMQ completed or failed (its finalizer has not run yet, or crashed) shows as
 * such. Rate and ETA are averages since the first chunk started.
 */
export function jobViewOf(meta: JobMeta, flowState: string | undefined, now = Date.now()): JobView {
  let state: JobState;
  if (meta.state !== undefined) state = meta.state;
  else if (meta.cancelled) state = JobState.CANCELLED;
  else if (flowState === 'failed') state = JobState.FAILED;
  else if (flowState === 'completed') state = JobState.COMPLETED;
  else state = meta.started_at !== undefined ? JobState.RUNNING : JobState.QUEUED;

  const processed = meta.done + meta.failed;
  let rate: number | null = null;
  let eta: number | null = null;
  if (meta.started_at !== undefined) {
    const end = meta.finished_at !== undefined ? Date.parse(meta.finished_at) : now;
    const seconds = (end - Date.parse(meta.started_at)) / 1000;
    if (seconds > 0) rate = Math.round((processed / seconds) * 10) / 10;
  }
  if (FINAL_STATES.has(state)) eta = 0;
  else if (rate !== null && rate > 0) eta = Math.round(((meta.total - processed) / rate) * 10) / 10;

  const view: JobView = {
    id: meta.id,
    state,
    model: meta.model,
    chunk_size: meta.chunk_size,
    chunks: meta.chunks,
    priority: meta.priority,
    progress: { done: meta.done, failed: meta.failed, total: meta.total },
    rate_rows_per_s: rate,
    eta_s: eta,
    created_at: meta.created_at,
  };
  if (meta.version !== undefined) view.version = meta.version;
  if (meta.callback_url !== undefined) view.callback_url = meta.callback_url;
  if (meta.started_at !== undefined) view.started_at = meta.started_at;
  if (meta.finished_at !== undefined) view.finished_at = meta.finished_at;
  if (meta.error !== undefined) view.error = meta.error;
  if (meta.callback !== undefined) view.callback = meta.callback;
  return view;
}
