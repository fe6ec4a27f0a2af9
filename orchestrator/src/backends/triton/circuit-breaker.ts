import { EventEmitter } from 'node:events';
import { UnavailableError } from '../../errors.js';
import { type Clock, systemClock } from '../../scheduling/clock.js';

/**
 * A circuit breaker for one Triton endpoint. CLOSED: calls go through and consecutive failures are
 * counted; the `failures`-th opens the circuit. OPEN: calls fail fast (`unavailable()`) for
 * `cooldownMs`. Then HALF_OPEN: the breaker runs its `probe` once (for Triton: the server is ready
 * and holds the models it should); success closes the circuit, failure opens it for another
 * cool-down. The breaker thus recovers by itself, without waiting for a request to try it, and
 * requests keep failing fast until the probe has proven the endpoint usable again.
 *
 * Invariant: a timer is pending exactly while the state is OPEN and the breaker is not disposed;
 * at most one probe runs at a time (only in HALF_OPEN).
 */

export const CircuitState = {
  CLOSED: 'closed',
  OPEN: 'open',
  HALF_OPEN: 'half-open',
} as const;
export type CircuitState = (typeof CircuitState)[keyof typeof CircuitState];

export interface CircuitBreakerEvents {
  /** The state changed; `reason` is the failure that opened the circuit (absent when it closes). */
  state: [state: CircuitState, previous: CircuitState, reason: string | undefined];
}

export interface CircuitBreakerSettings {
  /** What the breaker protects, in messages (e.g. the endpoint's URL). */
  name: string;
  /** Consecutive failures that open the circuit. */
  failures: number;
  /** Time an open circuit waits before probing. */
  cooldownMs: number;
  /** Resolves when the protected thing works again; rejects (with the reason) when not. */
  probe: () => Promise<void>;
  /** @defaultValue the monotonic clock */
  clock?: Clock;
}

export class CircuitBreaker extends EventEmitter<CircuitBreakerEvents> {
  readonly name: string;
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly probe: () => Promise<void>;
  private readonly clock: Clock;
  private current: CircuitState = CircuitState.CLOSED;
  private consecutive = 0;
  private reason: string | undefined;
  private openedAt = 0;
  private timer: unknown;
  private disposed = false;

  constructor(settings: CircuitBreakerSettings) {
    super();
    this.name = settings.name;
    this.threshold = settings.failures;
    this.cooldownMs = settings.cooldownMs;
    this.probe = settings.probe;
    this.clock = settings.clock ?? systemClock;
  }

  get state(): CircuitState {
    return this.current;
  }

  /** The last failure recorded (kept after the circuit closes, for diagnostics). */
  get lastError(): string | undefined {
    return this.reason;
  }

  /** Consecutive failures counted since the last success. */
  get failureCount(): number {
    return this.consecutive;
  }

  /** Whether a call may go to the endpoint now. */
  get allowsCalls(): boolean {
    return this.current === CircuitState.CLOSED;
  }

  /** A call succeeded (the endpoint answered, whatever it answered). */
  success(): void {
    this.consecutive = 0;
  }

  /** A call failed in a way that says the endpoint is in trouble (unreachable, unavailable, too slow). */
  failure(reason: string): void {
    this.reason = reason;
    this.consecutive++;
    if (this.current === CircuitState.CLOSED && this.consecutive >= this.threshold) this.open();
  }

  /**
   * Opens the circuit now, whatever the count (e.g. the endpoint was seen to restart and must be
   * re-prepared by the probe before it takes requests).
   */
  trip(reason: string): void {
    this.reason = reason;
    if (this.current === CircuitState.CLOSED) this.open();
  }

  /** The error a call gets while the circuit is not closed: 503, naming the endpoint and the last failure. */
  unavailable(): UnavailableError {
    const wait = Math.max(0, Math.ceil(this.openedAt + this.cooldownMs - this.clock.now()));
    const next = this.current === CircuitState.HALF_OPEN ? 'a probe is running' : `next probe in ${wait} ms`;
    return new UnavailableError(
      `Triton endpoint ${this.name} is unavailable (circuit ${this.current} after ${this.consecutive} consecutive failure(s); ${next}): ${this.reason ?? 'unknown error'}`,
    );
  }

  /** Stops the probe timer; the breaker changes state no more. Idempotent. */
  dispose(): void {
    this.disposed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private open(): void {
    if (this.disposed) return;
    const previous = this.current;
    this.current = CircuitState.OPEN;
    this.openedAt = this.clock.now();
    this.timer = this.clock.setTimer(() => void this.halfOpen(), this.cooldownMs);
    this.emit('state', CircuitState.OPEN, previous, this.reason);
  }

  private async halfOpen(): Promise<void> {
    this.timer = undefined;
    if (this.disposed) return;
    this.current = CircuitState.HALF_OPEN;
    this.emit('state', CircuitState.HALF_OPEN, CircuitState.OPEN, this.reason);
    try {
      await this.probe();
    } catch (err) {
      this.reason = `probe failed: ${err instanceof Error ? err.message : String(err)}`;
      this.open();
      return;
    }
    if (this.disposed) return;
    this.current = CircuitState.CLOSED;
    this.consecutive = 0;
    this.emit('state', CircuitState.CLOSED, CircuitState.HALF_OPEN, undefined);
  }
}
