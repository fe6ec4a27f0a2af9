/**
 * The completion callback: a JSON POST to the job's `callback_url` when the job finishes, tried a
 * few times with a doubling pause. It never fails the job; the outcome (the HTTP status, or why it
 * could not be delivered) is kept in the job's record.
 */

export interface CallbackOptions {
  /** Time each try has. @defaultValue 10000 */
  timeoutMs?: number;
  /** @defaultValue 3 */
  attempts?: number;
  /** Pause before the second try; doubles after. @defaultValue 500 */
  backoffMs?: number;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
}

/** Resolves with `HTTP <status>` (2xx) or a description of the last failure; never rejects. */
export async function postCallback(url: string, body: unknown, options: CallbackOptions = {}): Promise<string> {
  const attempts = options.attempts ?? 3;
  const doFetch = options.fetch ?? globalThis.fetch;
  let pause = options.backoffMs ?? 500;
  let outcome = 'not sent';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'inferneo-jobs' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      await res.body?.cancel().catch(() => undefined);
      outcome = `HTTP ${res.status}`;
      // A 4xx other than 408/429 will not change on a retry.
      if (res.ok || (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)) return outcome;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      outcome = `failed: ${cause ?? (err as Error).message}`;
    }
    if (attempt < attempts) {
      await new Promise((r) => setTimeout(r, pause));
      pause *= 2;
    }
  }
  return outcome;
}
