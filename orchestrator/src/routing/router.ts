import { ConflictError, InvalidArgumentError, ModelNotReadyError, NotFoundError } from '../errors.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import { type RegistryStore, VersionState } from '../registry/registry-store.js';
import { type Arm, armName, type CanaryStatus, type Route, type RouteSpec } from './route-spec.js';
import type { RouteStats } from './route-stats.js';
import { pickSticky, pickWeighted } from './traffic-split.js';

/**
 * Routes: logical model names that split traffic between arms (model versions). The Router keeps
 * them (through the registry's Redis store, so every orchestrator shares them), validates every
 * change as a whole before it takes effect, and picks the arm for each request: a forced arm
 * (`x-inferneo-arm`), then header rules, then the sticky key (`x-inferneo-route-key`, consistent
 * hashing) or weighted random among the arms that can serve.
 */

/** Where a request goes: a model version, and the route and arm that chose it (if a route did). */
export interface Target {
  model: string;
  version: string;
  route?: string;
  arm?: string;
}

export const ARM_HEADER = 'x-inferneo-arm';
export const ROUTE_KEY_HEADER = 'x-inferneo-route-key';

/** States from which an arm can take traffic (registered and unloaded ones load on demand). */
const SERVABLE: ReadonlySet<string> = new Set([VersionState.READY, VersionState.REGISTERED, VersionState.UNLOADED]);

export class Router {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly store: RegistryStore,
    readonly stats: RouteStats,
  ) {
    registry.setUsageGuard((model, version, action) => this.usage(model, version, action));
  }

  routes(): Route[] {
    return this.store.routes().map((r) => ({ ...(r.spec as unknown as Route), name: r.name, updated_at: r.updated_at }));
  }

  /** The route, or undefined when `name` is not a route. */
  find(name: string): Route | undefined {
    const record = this.store.route(name);
    return record === undefined ? undefined : { ...(record.spec as unknown as Route), name, updated_at: record.updated_at };
  }

  route(name: string): Route {
    const route = this.find(name);
    if (route === undefined) throw new NotFoundError(`unknown route '${name}'`);
    return route;
  }

  /**
   * Creates or replaces a route after checking it as a whole: every arm, rule, shadow and canary
   * must point at something that exists. A rejected change leaves the route as it was.
   */
  async put(name: string, spec: RouteSpec, status?: CanaryStatus): Promise<Route> {
    const arms: Arm[] = spec.arms.map((a) => ({ ...a, name: armName(a) }));
    const seen = new Map<string, number>();
    arms.forEach((a, i) => {
      const field = `arms[${i}]`;
      if (this.store.model(a.model) === undefined) throw new InvalidArgumentError(`${field}.model: unknown model '${a.model}'`);
      if (this.store.version(a.model, a.version) === undefined) {
        throw new InvalidArgumentError(`${field}.version: model '${a.model}' has no version '${a.version}'`);
      }
      const other = seen.get(a.name);
      if (other !== undefined) throw new InvalidArgumentError(`${field}.name: arm name '${a.name}' is used by arms[${other}] too`);
      seen.set(a.name, i);
    });
    if (arms.reduce((sum, a) => sum + a.weight, 0) <= 0) {
      throw new InvalidArgumentError('arms: the weights add up to 0; at least one arm needs a positive weight');
    }
    spec.rules.forEach((r, i) => {
      if (!seen.has(r.arm)) throw new InvalidArgumentError(`rules[${i}].arm: no arm named '${r.arm}'; the arms are ${[...seen.keys()].join(', ')}`);
    });
    if (spec.shadow !== undefined && this.store.version(spec.shadow.model, spec.shadow.version) === undefined) {
      throw new InvalidArgumentError(`shadow: model '${spec.shadow.model}' has no version '${spec.shadow.version}'`);
    }
    if (spec.canary !== undefined && !seen.has(spec.canary.arm)) {
      throw new InvalidArgumentError(`canary.arm: no arm named '${spec.canary.arm}'; the arms are ${[...seen.keys()].join(', ')}`);
    }
    const route: Omit<Route, 'name' | 'updated_at'> = { arms, sticky: spec.sticky, rules: spec.rules };
    if (spec.shadow !== undefined) route.shadow = spec.shadow;
    if (spec.canary !== undefined) {
      route.canary = { ...spec.canary, status: status ?? { state: 'running', step: -1, updated_at: new Date().toISOString() } };
    }
    const updated_at = new Date().toISOString();
    await this.store.putRoute({ name, spec: route as unknown as Record<string, unknown>, updated_at });
    return { ...route, name, updated_at };
  }

  async remove(name: string): Promise<void> {
    this.route(name);
    await this.store.deleteRoute(name);
    this.stats.forget(name);
  }

  /** Sends all traffic to one arm (the others keep their place at weight 0). */
  async promote(name: string, arm: string): Promise<Route> {
    const route = this.route(name);
    if (!route.arms.some((a) => a.name === arm)) {
      throw new InvalidArgumentError(`arm: route '${name}' has no arm '${arm}'; its arms are ${route.arms.map((a) => a.name).join(', ')}`);
    }
    const spec = this.specOf(route);
    spec.arms = spec.arms.map((a) => ({ ...a, weight: a.name === arm ? 100 : 0 }));
    delete spec.canary;
    return this.put(name, spec);
  }

  /** Restores the route as it was before its last change. */
  async rollback(name: string): Promise<Route> {
    this.route(name);
    const previous = await this.store.popRouteHistory(name);
    if (previous === undefined) throw new ConflictError(`route '${name}' has no earlier version to roll back to`);
    await this.store.putRoute({ ...previous, updated_at: new Date().toISOString() }, { keepHistory: false });
    return this.route(name);
  }

  /** The route as a spec that `put` accepts (for changes derived from the current route). */
  specOf(route: Route): RouteSpec {
    const spec: RouteSpec = { arms: route.arms.map((a) => ({ ...a })), sticky: route.sticky, rules: route.rules };
    if (route.shadow !== undefined) spec.shadow = route.shadow;
    if (route.canary !== undefined) {
      const { status: _status, ...canary } = route.canary;
      spec.canary = canary;
    }
    return spec;
  }

  /**
   * Chooses the model version for a request to `name`. A version in the URL bypasses any split;
   * otherwise a route picks an arm and a plain model name picks its serving version.
   */
  resolve(name: string, version: string | undefined, header: (name: string) => string | undefined): Target {
    if (version !== undefined) {
      this.registry.version(name, version);
      return { model: name, version };
    }
    const route = this.find(name);
    if (route === undefined) return { model: name, version: this.registry.resolve(name).version };
    let arm: Arm | undefined;
    const forced = header(ARM_HEADER);
    if (forced !== undefined) {
      arm = route.arms.find((a) => a.name === forced);
      if (arm === undefined) {
        throw new InvalidArgumentError(
          `${ARM_HEADER} names arm '${forced}', which route '${name}' does not have; its arms are ${route.arms.map((a) => a.name).join(', ')}`,
        );
      }
    } else {
      for (const rule of route.rules) {
        if (header(rule.header.toLowerCase()) === rule.equals) {
          arm = route.arms.find((a) => a.name === rule.arm);
          break;
        }
      }
    }
    if (arm === undefined) {
      const eligible = route.arms.filter((a) => a.weight > 0 && SERVABLE.has(this.store.version(a.model, a.version)?.state ?? ''));
      const key = route.sticky ? header(ROUTE_KEY_HEADER) : undefined;
      arm = key !== undefined && key !== '' ? pickSticky(eligible, key) : pickWeighted(eligible);
      if (arm === undefined) {
        const states = route.arms.map((a) => {
          const v = this.store.version(a.model, a.version);
          return `${a.name} (${a.model} v${a.version}, weight ${a.weight}): ${v?.state ?? 'deleted'}${v?.reason !== undefined ? ` (${v.reason})` : ''}`;
        });
        throw new ModelNotReadyError(`route '${name}' has no arm that can serve: ${states.join('; ')}`);
      }
    }
    return { model: arm.model, version: arm.version, route: name, arm: arm.name };
  }

  /** The version a request of this route is mirrored to, or undefined (by the shadow's percent). */
  shadowTarget(routeName: string, random: () => number = Math.random): { model: string; version: string } | undefined {
    const shadow = this.find(routeName)?.shadow;
    if (shadow === undefined || shadow.percent <= 0 || random() * 100 >= shadow.percent) return undefined;
    return { model: shadow.model, version: shadow.version };
  }

  /** What a route needs of a model or version, for the registry's 409s. */
  private usage(model: string, version: string | undefined, action: 'unload' | 'delete'): string | undefined {
    for (const route of this.routes()) {
      const matches = (a: { model: string; version: string }): boolean => a.model === model && (version === undefined || a.version === version);
      if (action === 'delete') {
        const arm = route.arms.find(matches);
        if (arm !== undefined) return `route '${route.name}' refers to it (arm '${arm.name}'); change or delete the route first`;
        if (route.shadow !== undefined && matches(route.shadow)) return `route '${route.name}' mirrors traffic to it (shadow); change the route first`;
        continue;
      }
      const positive = route.arms.filter((a) => a.weight > 0);
      if (positive.length > 0 && positive.every(matches)) {
        return `route '${route.name}' sends 100% of its traffic to it; shift the route to another version first`;
      }
    }
    return undefined;
  }
}
