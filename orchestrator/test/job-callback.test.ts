import assert from 'node:assert/strict';
import { postCallback } from '../src/jobs/job-callback.js';

/** A fetch that answers with `statuses` in turn (a number) or throws (an Error). */
function fakeFetch(answers: (number | Error)[]): { fetch: typeof fetch; calls: { url: string; init: RequestInit }[] } {
  const calls: { url: string; init: RequestInit }[] = [];
  const f = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const a = answers.shift()!;
    if (a instanceof Error) throw a;
    return new Response(null, { status: a });
  }) as unknown as typeof fetch;
  return { fetch: f, calls };
}

describe('job-callback', () => {
  it('POSTs the body as JSON and reports the status', async () => {
    const f = fakeFetch([204]);
    assert.equal(await postCallback('http://hook/x', { id: 'j' }, { fetch: f.fetch }), 'HTTP 204');
    assert.equal(f.calls.length, 1);
    assert.equal(f.calls[0]!.init.method, 'POST');
    assert.equal(f.calls[0]!.init.body, '{"id":"j"}');
  });

  it('retries server errors and network failures with backoff, not client errors', async () => {
    const flaky = fakeFetch([503, Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), 200]);
    assert.equal(await postCallback('http://hook/x', {}, { fetch: flaky.fetch, backoffMs: 1 }), 'HTTP 200');
    assert.equal(flaky.calls.length, 3);
    const gone = fakeFetch([404]);
    assert.equal(await postCallback('http://hook/x', {}, { fetch: gone.fetch, backoffMs: 1 }), 'HTTP 404');
    assert.equal(gone.calls.length, 1);
    const down = fakeFetch([new Error('boom'), Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } })]);
    assert.equal(await postCallback('http://hook/x', {}, { fetch: down.fetch, attempts: 2, backoffMs: 1 }), 'failed: ECONNREFUSED');
  });
});
