import type { Clock } from '../../scheduling/clock.js';

/**
 * Exponential backoff with jitter for retried Triton calls: attempt `n` (0-based) waits between half
 * and all of `min(maxMs, baseMs · 2^n)`. The jitter spreads the retries of many callers that failed
 * together (a Triton restart) so that they do not come back in one burst; the lower half bound
 * keeps a retry from following its failure at once.
 */

export interface BackoffSettings {
  baseMs: number;
  maxMs: number;
}

/** The delay before retry `attempt` (0 = the first retry). `random` returns a number in [0, 1). */
export function backoffDelay(attempt: number, settings: BackoffSettings, random: () => number = Math.random): number {
  const ceiling = Math.min(settings.maxMs, settings.baseMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (ceiling / 2) * random();
}

/** Resolves after `ms` on `clock` (a manual clock in tests). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}
