import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { ModelConfig } from './model-config.js';

/**
 * The registry's records in Redis — models, versions with their lifecycle state, routes — with an
 * in-memory copy that the data plane reads without a round trip. Every write goes to Redis and is
 * announced on a pub/sub channel; every orchestrator sharing the Redis re-reads what changed, so
 * replicas converge within milliseconds and a restarted orchestrator finds everything again.
 *
 * Keys (prefix `inferneo:` by default): `models` (hash name → ModelRecord), `versions:<model>`
 * (hash version → VersionRecord), `routes` (hash name → RouteRecord), `route-history:<route>`
 * (list, newest first), `audit` (list, newest first), channel `events`.
 */

export const VersionState = {
  REGISTERED: 'registered',
  LOADING: 'loading',
  READY: 'ready',
  DRAINING: 'draining',
  UNLOADED: 'unloaded',
  FAILED: 'failed',
} as const;
export type VersionState = (typeof VersionState)[keyof typeof VersionState];

export type BackendKind = 'python' | 'triton';

export interface ModelRecord {
  name: string;
  backend: BackendKind;
  /** Model directory in Triton's layout (config.pbtxt + version directories). */
  source: string;
  config: ModelConfig;
  created_at: string;
}

export interface VersionRecord {
  model: string;
  version: string;
  backend: BackendKind;
  /** Model directory this version loads from (usually the model's). */
  source: string;
  state: VersionState;
  /** Why the version is failed or was unloaded. */
  reason?: string;
  /** Pinned versions are never evicted, and cannot be deleted or unloaded until unpinned. */
  pinned: boolean;
  /** Memory the last load added on a worker, as the worker estimated it. */
  memory_bytes?: number;
  updated_at: string;
}

/** A route as stored: the validated spec plus bookkeeping. The spec's schema lives in routing/. */
export interface RouteRecord {
  name: string;
  spec: Record<string, unknown>;
  updated_at: string;
}

export type RegistryChange =
  | { kind: 'model'; model: string }
  | { kind: 'version'; model: string; version: string }
  | { kind: 'route'; route: string };

export interface RegistryStoreEvents {
  /** Something changed, here or (`remote: true`) in another orchestrator. The cache is already updated. */
  change: [change: RegistryChange, remote: boolean];
}

export interface RegistryStoreOptions {
  /** Key prefix, so that several Inferneo installations can share a Redis. @defaultValue 'inferneo:' */
  prefix?: string;
  /** Entries kept in each route's history (for rollback). @defaultValue 20 */
  historyLength?: number;
  /** Entries kept in the audit log. @defaultValue 1000 */
  auditLength?: number;
}

interface Envelope {
  origin: string;
  change: RegistryChange;
}

export class RegistryStore extends EventEmitter<RegistryStoreEvents> {
  /** Identifies this process in pub/sub messages, so that it ignores its own. */
  readonly origin = randomUUID();
  private readonly prefix: string;
  private readonly historyLength: number;
  private readonly auditLength: number;
  private subscriber: Redis | undefined;
  private readonly modelCache = new Map<string, ModelRecord>();
  private readonly versionCache = new Map<string, Map<string, VersionRecord>>();
  private readonly routeCache = new Map<string, RouteRecord>();

  constructor(
    private readonly redis: Redis,
    options: RegistryStoreOptions = {},
  ) {
    super();
    this.prefix = options.prefix ?? 'inferneo:';
    this.historyLength = options.historyLength ?? 20;
    this.auditLength = options.auditLength ?? 1000;
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  /** Subscribes to changes, then reads everything into the cache. */
  async start(): Promise<void> {
    const subscriber = this.redis.duplicate();
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_channel: string, message: string) => void this.onMessage(message));
    await subscriber.subscribe(this.key('events'));
    this.subscriber = subscriber;
    const [models, routes] = await Promise.all([this.redis.hgetall(this.key('models')), this.redis.hgetall(this.key('routes'))]);
    for (const [name, json] of Object.entries(models)) {
      this.modelCache.set(name, JSON.parse(json) as ModelRecord);
      await this.reloadVersions(name);
    }
    for (const [name, json] of Object.entries(routes)) this.routeCache.set(name, JSON.parse(json) as RouteRecord);
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }

  models(): ModelRecord[] {
    return [...this.modelCache.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  model(name: string): ModelRecord | undefined {
    return this.modelCache.get(name);
  }

  /** Versions of a model, sorted by number. */
  versions(model: string): VersionRecord[] {
    return [...(this.versionCache.get(model)?.values() ?? [])].sort((a, b) => Number(a.version) - Number(b.version));
  }

  version(model: string, version: string): VersionRecord | undefined {
    return this.versionCache.get(model)?.get(version);
  }

  routes(): RouteRecord[] {
    return [...this.routeCache.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  route(name: string): RouteRecord | undefined {
    return this.routeCache.get(name);
  }

  async putModel(record: ModelRecord): Promise<void> {
    this.modelCache.set(record.name, record);
    if (!this.versionCache.has(record.name)) this.versionCache.set(record.name, new Map());
    await this.redis.hset(this.key('models'), record.name, JSON.stringify(record));
    await this.announce({ kind: 'model', model: record.name });
  }

  /** Removes a model and all its versions. */
  async deleteModel(name: string): Promise<void> {
    this.modelCache.delete(name);
    this.versionCache.delete(name);
    await this.redis.multi().hdel(this.key('models'), name).del(this.key('versions', name)).exec();
    await this.announce({ kind: 'model', model: name });
  }

  /**
   * Writes a version record. The cache changes synchronously, before any await, so that the data
   * plane of this process sees a state change (e.g. `draining`) from the next request on.
   */
  async putVersion(record: VersionRecord): Promise<void> {
    let versions = this.versionCache.get(record.model);
    if (versions === undefined) this.versionCache.set(record.model, (versions = new Map()));
    versions.set(record.version, record);
    await this.redis.hset(this.key('versions', record.model), record.version, JSON.stringify(record));
    await this.announce({ kind: 'version', model: record.model, version: record.version });
  }

  async deleteVersion(model: string, version: string): Promise<void> {
    this.versionCache.get(model)?.delete(version);
    await this.redis.hdel(this.key('versions', model), version);
    await this.announce({ kind: 'version', model, version });
  }

  /** Writes a route; the one it replaces (if any) goes on the route's history for rollback. */
  async putRoute(record: RouteRecord, options: { keepHistory: boolean } = { keepHistory: true }): Promise<void> {
    const previous = this.routeCache.get(record.name);
    this.routeCache.set(record.name, record);
    const multi = this.redis.multi().hset(this.key('routes'), record.name, JSON.stringify(record));
    if (previous !== undefined && options.keepHistory) {
      multi.lpush(this.key('route-history', record.name), JSON.stringify(previous)).ltrim(this.key('route-history', record.name), 0, this.historyLength - 1);
    }
    await multi.exec();
    await this.announce({ kind: 'route', route: record.name });
  }

  async deleteRoute(name: string): Promise<void> {
    this.routeCache.delete(name);
    await this.redis.multi().hdel(this.key('routes'), name).del(this.key('route-history', name)).exec();
    await this.announce({ kind: 'route', route: name });
  }

  /** Takes the newest entry off a route's history (the spec before the last change), if any. */
  async popRouteHistory(name: string): Promise<RouteRecord | undefined> {
    const json = await this.redis.lpop(this.key('route-history', name));
    return json === null ? undefined : (JSON.parse(json) as RouteRecord);
  }

  /** Appends an entry to the audit log (capped). */
  async audit(entry: Record<string, unknown>): Promise<void> {
    await this.redis.multi().lpush(this.key('audit'), JSON.stringify(entry)).ltrim(this.key('audit'), 0, this.auditLength - 1).exec();
  }

  async auditLog(limit: number): Promise<Record<string, unknown>[]> {
    const rows = await this.redis.lrange(this.key('audit'), 0, limit - 1);
    return rows.map((r) => JSON.parse(r) as Record<string, unknown>);
  }

  private async announce(change: RegistryChange): Promise<void> {
    this.emit('change', change, false);
    const envelope: Envelope = { origin: this.origin, change };
    await this.redis.publish(this.key('events'), JSON.stringify(envelope));
  }

  private async reloadVersions(model: string): Promise<void> {
    const rows = await this.redis.hgetall(this.key('versions', model));
    this.versionCache.set(model, new Map(Object.entries(rows).map(([v, json]) => [v, JSON.parse(json) as VersionRecord])));
  }

  private async onMessage(message: string): Promise<void> {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      return;
    }
    if (envelope.origin === this.origin) return;
    const change = envelope.change;
    try {
      if (change.kind === 'model') {
        const json = await this.redis.hget(this.key('models'), change.model);
        if (json === null) {
          this.modelCache.delete(change.model);
          this.versionCache.delete(change.model);
        } else {
          this.modelCache.set(change.model, JSON.parse(json) as ModelRecord);
          await this.reloadVersions(change.model);
        }
      } else if (change.kind === 'version') {
        const json = await this.redis.hget(this.key('versions', change.model), change.version);
        let versions = this.versionCache.get(change.model);
        if (versions === undefined) this.versionCache.set(change.model, (versions = new Map()));
        if (json === null) versions.delete(change.version);
        else versions.set(change.version, JSON.parse(json) as VersionRecord);
      } else {
        const json = await this.redis.hget(this.key('routes'), change.route);
        if (json === null) this.routeCache.delete(change.route);
        else this.routeCache.set(change.route, JSON.parse(json) as RouteRecord);
      }
    } catch {
      return; // Redis unreachable: the next change or a restart brings the cache back in line
    }
    this.emit('change', change, true);
  }
}
