import type { Redis } from 'ioredis';
import type { RegistryStore } from '../registry/registry-store.js';
import type { CanaryStatus, Route, RouteSpec } from './route-spec.js';
import type { Router } from './router.js';

/**
 * Automatic canaries: for a route with a `canary` section, steps the canary arm's share of traffic
 * through `steps` every `interval_s`, judging each step by the arm's requests in it; when its error
 * rate or p95 latency crosses the route's thresholds, the canary arm goes back to weight 0 and the
 * canary is marked rolled back with the reason. One orchestrator drives each canary at a time (a
 * Redis lock per route); the step judgement uses that orchestrator's own traffic.
 */

export interface CanaryControllerOptions {
  /** Key prefix shared with the registry. @defaultValue 'inferneo:' */
  prefix?: string;
  log?: (message: string) => void;
}

export class CanaryController {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly prefix: string;
  private readonly log: (message: string) => void;
  private closed = false;
  private readonly onChange = (change: { kind: string; route?: string }): void => {
    if (change.kind === 'route' && change.route !== undefined) this.schedule(change.route);
  };

  constructor(
    private readonly router: Router,
    private readonly store: RegistryStore,
    private readonly redis: Redis,
    options: CanaryControllerOptions = {},
  ) {
    this.prefix = options.prefix ?? 'inferneo:';
    this.log = options.log ?? ((m) => console.error(`[inferneo] ${m}`));
  }

  start(): void {
    this.store.on('change', this.onChange);
    for (const route of this.router.routes()) this.schedule(route.name);
  }

  close(): void {
    this.closed = true;
    this.store.off('change', this.onChange);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(name: string): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
    const route = this.router.find(name);
    const status = route?.canary?.status;
    if (this.closed || route?.canary === undefined || status?.state !== 'running') return;
    const due = status.step < 0 ? 0 : Date.parse(status.updated_at) + route.canary.interval_s * 1000 - Date.now();
    const timer = setTimeout(() => void this.tick(name), Math.max(0, due));
    timer.unref();
    this.timers.set(name, timer);
  }

  /** Judges the current step and moves on (or rolls back). Exposed for tests that drive time. */
  async tick(name: string): Promise<void> {
    const route = this.router.find(name);
    const canary = route?.canary;
    if (route === undefined || canary?.status?.state !== 'running') return;
    const lock = `${this.prefix}canary-lock:${name}`;
    const holder = await this.redis.set(lock, this.store.origin, 'PX', canary.interval_s * 2000, 'NX');
    if (holder === null && (await this.redis.get(lock)) !== this.store.origin) {
      this.schedule(name); // another orchestrator drives this canary
      return;
    }
    try {
      const step = canary.status.step;
      if (step >= 0) {
        const w = this.router.stats.window(name, canary.arm);
        if (w.requests < canary.min_requests) {
          await this.update(route, undefined, { ...canary.status, updated_at: new Date().toISOString() });
          return;
        }
        const errorRate = w.errors / w.requests;
        const reasons: string[] = [];
        if (canary.max_error_rate !== undefined && errorRate > canary.max_error_rate) {
          reasons.push(`error rate ${(errorRate * 100).toFixed(1)}% > ${(canary.max_error_rate * 100).toFixed(1)}%`);
        }
        if (canary.max_p95_ms !== undefined && w.p95_ms !== null && w.p95_ms > canary.max_p95_ms) {
          reasons.push(`p95 ${w.p95_ms.toFixed(1)} ms > ${canary.max_p95_ms} ms`);
        }
        if (reasons.length > 0) {
          const reason = `step ${step + 1} (${canary.steps[step]}%): ${reasons.join(', ')} over ${w.requests} requests`;
          this.log(`route ${name}: canary arm ${canary.arm} rolled back: ${reason}`);
          await this.update(route, 0, { state: 'rolled_back', step, reason, updated_at: new Date().toISOString() });
          return;
        }
      }
      const next = step + 1;
      if (next >= canary.steps.length) {
        this.log(`route ${name}: canary arm ${canary.arm} completed at ${canary.steps[step]}%`);
        await this.update(route, undefined, { state: 'completed', step, updated_at: new Date().toISOString() });
        return;
      }
      this.log(`route ${name}: canary arm ${canary.arm} → ${canary.steps[next]}%`);
      await this.update(route, canary.steps[next]!, { state: 'running', step: next, updated_at: new Date().toISOString() });
    } catch (err) {
      this.log(`route ${name}: canary step failed: ${(err as Error).message}`);
      this.schedule(name);
    }
  }

  /** Writes the route with the canary arm at `percent` (others share the rest as before) and the new status. */
  private async update(route: Route, percent: number | undefined, status: CanaryStatus): Promise<void> {
    const spec: RouteSpec = this.router.specOf(route);
    const arm = route.canary!.arm;
    if (percent !== undefined) {
      const others = spec.arms.filter((a) => (a.name ?? '') !== arm);
      const otherTotal = others.reduce((sum, a) => sum + a.weight, 0);
      spec.arms = spec.arms.map((a) => {
        if (a.name === arm) return { ...a, weight: percent };
        const share = otherTotal > 0 ? a.weight / otherTotal : 1 / others.length;
        return { ...a, weight: Math.round((100 - percent) * share * 1000) / 1000 };
      });
    }
    await this.router.put(route.name, spec, status);
    this.router.stats.resetWindow(route.name);
  }
}
