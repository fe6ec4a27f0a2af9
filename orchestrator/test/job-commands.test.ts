import assert from 'node:assert/strict';
import type { JobView } from '../src/cli/admin-client.js';
import { formatJob, formatJobs, formatProgressBar } from '../src/cli/job-commands.js';

const job: JobView = {
  id: '6ea766b3-8dd7-4cb9-a254-1b9ab1fbbadc',
  state: 'running',
  model: 'classifier',
  chunk_size: 256,
  chunks: 4,
  priority: 5,
  progress: { done: 380, failed: 20, total: 1000 },
  rate_rows_per_s: 123.4,
  eta_s: 4000,
  created_at: '2026-01-01T00:00:00.000Z',
};

describe('job-commands', () => {
  it('draws a progress bar with rows, failures, rate and ETA', () => {
    assert.equal(formatProgressBar(job, 10), '[####......] 40%  400/1000 rows  20 failed  123 rows/s  ETA 1h06m  running');
    assert.equal(formatProgressBar({ ...job, progress: { done: 0, failed: 0, total: 0 }, rate_rows_per_s: null, eta_s: null, state: 'queued' }, 4), '[....] 0%  0/0 rows  0 failed  - rows/s  ETA -  queued');
    assert.match(formatProgressBar({ ...job, eta_s: 65 }), /ETA 1:05/);
  });

  it('shows a job and a list of jobs', () => {
    const text = formatJob({ ...job, version: '2', started_at: 's', finished_at: 'f', error: 'e', callback_url: 'http://h/', callback: 'HTTP 200' });
    assert.match(text, /^job\s+6ea766b3/);
    assert.match(text, /model\s+classifier v2\n/);
    assert.match(text, /rows\s+380 done, 20 failed, 1000 total/);
    assert.match(text, /callback http:\/\/h\/ \(HTTP 200\)$/);
    assert.match(formatJob({ ...job, rate_rows_per_s: null }), /rate\s+-/);
    const table = formatJobs([job, { ...job, version: '1' }]);
    assert.match(table, /^ID\s+STATE\s+MODEL\s+DONE\s+FAILED\s+TOTAL\s+CREATED\n/);
    assert.match(table, /classifier:1/);
  });
});
