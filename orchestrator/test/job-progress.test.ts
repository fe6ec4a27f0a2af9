import assert from 'node:assert/strict';
import { jobViewOf } from '../src/jobs/job-progress.js';
import type { JobMeta } from '../src/jobs/job-store.js';

const base: JobMeta = {
  id: 'j',
  model: 'classifier',
  chunk_size: 10,
  chunks: 10,
  priority: 5,
  total: 100,
  done: 0,
  failed: 0,
  created_at: '2026-01-01T00:00:00.000Z',
  cancelled: false,
};

describe('job-progress', () => {
  it('derives the state from the record and from BullMQ', () => {
    assert.equal(jobViewOf(base, 'waiting-children').state, 'queued');
    assert.equal(jobViewOf({ ...base, started_at: base.created_at }, 'waiting-children').state, 'running');
    assert.equal(jobViewOf({ ...base, started_at: base.created_at, cancelled: true }, 'waiting-children').state, 'cancelled', 'a cancel shows at once');
    assert.equal(jobViewOf({ ...base, started_at: base.created_at }, 'failed').state, 'failed', 'a parent BullMQ failed');
    assert.equal(jobViewOf({ ...base, started_at: base.created_at }, 'completed').state, 'completed');
    assert.equal(jobViewOf({ ...base, state: 'completed', cancelled: true }, undefined).state, 'completed', 'the final state wins');
  });

  it('reports rate and ETA since the first chunk started', () => {
    const started = Date.parse('2026-01-01T00:00:10.000Z');
    const view = jobViewOf({ ...base, started_at: new Date(started).toISOString(), done: 30, failed: 10 }, 'waiting-children', started + 4000);
    assert.equal(view.rate_rows_per_s, 10);
    assert.equal(view.eta_s, 6);
    assert.deepEqual(view.progress, { done: 30, failed: 10, total: 100 });
    const queued = jobViewOf(base, undefined);
    assert.equal(queued.rate_rows_per_s, null);
    assert.equal(queued.eta_s, null);
    const finished = jobViewOf(
      { ...base, version: '2', callback_url: 'http://x/', callback: 'HTTP 200', error: 'e', state: 'failed', started_at: new Date(started).toISOString(), finished_at: new Date(started + 2000).toISOString(), done: 100 },
      undefined,
      started + 60_000,
    );
    assert.equal(finished.rate_rows_per_s, 50, 'over the run, not until now');
    assert.equal(finished.eta_s, 0);
    assert.equal(finished.version, '2');
    assert.equal(finished.callback, 'HTTP 200');
    assert.equal(finished.error, 'e');
  });
});
