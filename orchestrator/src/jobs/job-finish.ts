import { postCallback } from './job-callback.js';
import { jobViewOf } from './job-progress.js';
import type { JobState } from './job-spec.js';
import type { JobStore } from './job-store.js';

/**
 * Ends a job: its final state is set once (JobStore.finalize), its records start to expire, and
 * its callback (if any) is POSTed by whoever finalized it. Called by the parent job's processor
 * (completed, cancelled), by the chunk worker whose chunk failed for good (failed), and by any
 * reader that finds BullMQ's parent finished without its record saying so (a finalizer crashed).
 */
export async function finishJob(
  store: JobStore,
  id: string,
  state: JobState,
  options: { ttlS: number; error?: string; callbackTimeoutMs: number; log: (message: string) => void },
): Promise<void> {
  const finalized = await store.finalize(id, state, options.ttlS, options.error ?? '');
  if (!finalized) return;
  const meta = await store.meta(id);
  options.log(`job ${id} ${state}${meta !== undefined ? `: ${meta.done} rows done, ${meta.failed} failed of ${meta.total}` : ''}${options.error ? ` (${options.error})` : ''}`);
  if (meta?.callback_url === undefined || !(await store.claimCallback(id))) return;
  const view = jobViewOf(meta, undefined);
  const outcome = await postCallback(meta.callback_url, { ...view, results: `/admin/jobs/${id}/results` }, { timeoutMs: options.callbackTimeoutMs });
  await store.setCallbackOutcome(id, outcome);
  if (!outcome.startsWith('HTTP 2')) options.log(`job ${id}: callback to ${meta.callback_url} ${outcome}`);
}
