import type { Clock } from '../../scheduling/clock.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { Pickable } from './endpoint-picker.js';
import type { TritonClient } from './triton-client.js';

/**
 * One Triton server as the backend sees it: its client, its circuit breaker, the calls in flight,
 * and which versions of which models are ready on it. The backend owns these records; the ready
 * sets change only as model-control calls on this endpoint finish (or when the backend stops
 * routing a version it unloads), and model-control calls for one model run one after another.
 */

export interface EndpointSettings {
  failures: number;
  cooldownMs: number;
  clock: Clock;
  /** Run by the breaker when half-open: resolves when the endpoint may take calls again. */
  probe: (endpoint: TritonEndpoint) => Promise<void>;
}

export class TritonEndpoint implements Pickable {
  readonly client: TritonClient;
  readonly breaker: CircuitBreaker;
  outstanding = 0;
  /** Ready versions by model; a model is a key while the backend has it loaded (or loading) here. */
  private readonly ready = new Map<string, Set<string>>();
  /** Why a wanted version is not ready here (Triton's reason), by model, then version. */
  private readonly reasons = new Map<string, Map<string, string>>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(client: TritonClient, settings: EndpointSettings) {
    this.client = client;
    this.breaker = new CircuitBreaker({
      name: client.endpoint,
      failures: settings.failures,
      cooldownMs: settings.cooldownMs,
      clock: settings.clock,
      probe: () => settings.probe(this),
    });
  }

  get name(): string {
    return this.client.endpoint;
  }

  holds(model: string, version: string): boolean {
    return this.ready.get(model)?.has(version) === true;
  }

  /** Models the backend has loaded here (which a recovery must bring back, or an unload must free). */
  models(): string[] {
    return [...this.ready.keys()];
  }

  /** Records what a model-control call left ready here, and why the other wanted versions are not. */
  setReady(model: string, versions: Iterable<string>, reasons: Map<string, string> = new Map()): void {
    this.ready.set(model, new Set(versions));
    this.reasons.set(model, reasons);
  }

  /** Stops routing one version here (before it is unloaded). */
  dropVersion(model: string, version: string): void {
    this.ready.get(model)?.delete(version);
  }

  /** The model is no longer loaded here. */
  forget(model: string): void {
    this.ready.delete(model);
    this.reasons.delete(model);
  }

  reason(model: string, version: string): string | undefined {
    return this.reasons.get(model)?.get(version);
  }

  /**
   * Runs model-control work for `model` after the work queued for it before (Triton loads and
   * unloads a model as a whole, so two overlapping calls would undo each other).
   */
  exclusive<T>(model: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(model) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(model, tail);
    void tail.then(() => {
      if (this.queues.get(model) === tail) this.queues.delete(model);
    });
    return next;
  }
}
