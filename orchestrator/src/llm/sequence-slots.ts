import { InferneoError, ErrorCode, ResourceExhaustedError } from '../errors.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';

/**
 * Admission of generation requests to one model version: at most `capacity()` of them hold a
 * sequence slot at once (the slots its workers reported: `max_sequences` per worker); the others
 * wait in arrival order, so "running" and "waiting" mean what they say and a worker is never sent
 * more sequences than it can step together. `capacity` is read whenever a slot may be given, so
 * workers that come or go change it at once. A waiter whose caller goes away leaves the queue; every
 * acquire resolves or rejects, none can hang once slots free up.
 */

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: InferneoError) => void;
  unsubscribe: (() => void) | undefined;
}

export interface SequenceSlotsEvents {
  /** A request started waiting (+1) or stopped waiting (-1). */
  onWaiting?: (delta: 1 | -1) => void;
}

export class SequenceSlots {
  private running = 0;
  private readonly waiters: Waiter[] = [];

  /**
   * @param capacity - slots now (at least 1 is used when it says less).
   * @param maxWaiting - requests allowed to wait; one more is refused with RESOURCE_EXHAUSTED (429).
   */
  constructor(
    private readonly capacity: () => number,
    private readonly maxWaiting: number,
    private readonly events: SequenceSlotsEvents = {},
  ) {}

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.waiters.length;
  }

  /** Resolves with the function that gives the slot back (idempotent) once one is free. */
  acquire(signal?: CancelSignal): Promise<() => void> {
    if (signal?.aborted === true) return Promise.reject(new InferneoError(ErrorCode.CANCELLED, 'the client went away'));
    this.pump(); // the capacity may have grown (a worker came) since the last release
    if (this.waiters.length === 0 && this.running < this.limit()) return Promise.resolve(this.take());
    if (this.waiters.length >= this.maxWaiting) {
      return Promise.reject(new ResourceExhaustedError(`${this.waiters.length} generation requests are already waiting for this model; retry later`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, unsubscribe: undefined };
      waiter.unsubscribe = signal?.onCancel(() => {
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        this.events.onWaiting?.(-1);
        reject(new InferneoError(ErrorCode.CANCELLED, 'the client went away while its request waited'));
      });
      this.waiters.push(waiter);
      this.events.onWaiting?.(1);
    });
  }

  private limit(): number {
    return Math.max(1, this.capacity());
  }

  private take(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.pump();
    };
  }

  /** Gives free slots to waiters in arrival order. */
  private pump(): void {
    while (this.waiters.length > 0 && this.running < this.limit()) {
      const waiter = this.waiters.shift()!;
      waiter.unsubscribe?.();
      this.events.onWaiting?.(-1);
      waiter.resolve(this.take());
    }
  }
}
