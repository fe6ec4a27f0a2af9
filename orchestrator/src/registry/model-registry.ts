import { LoadFailedError, ModelNotReadyError, NotFoundError, toInferneoError } from '../errors.js';
import type { Backend, LoadedVersion } from '../backends/backend.js';
import type { ModelConfig } from './model-config.js';
import { readRepositoryModel, type RepositoryModel, scanRepository } from './model-repository.js';

/**
 * The models this orchestrator knows (from the model repository), their versions, and each version's
 * lifecycle. It drives the backend to load and unload, and answers which version serves a request.
 * State lives in this process for now; the Redis-backed registry shared by replicas replaces it.
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

export interface VersionRecord {
  version: string;
  state: VersionState;
  /** Why the version is `failed` (or unloaded). */
  reason?: string;
  /** What the backend reported when the version loaded. */
  loaded?: LoadedVersion;
}

export interface ModelRecord {
  name: string;
  config?: ModelConfig;
  /** Why the model cannot be loaded (unreadable config), if so. */
  error?: string;
  /** Versions present in the repository that its version policy serves, by version string. */
  versions: Map<string, VersionRecord>;
}

/** A row of `POST /v2/repository/index`, in Triton's format. */
export interface IndexEntry {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

const TRITON_STATE: Readonly<Record<VersionState, string>> = {
  registered: 'UNAVAILABLE',
  loading: 'LOADING',
  ready: 'READY',
  draining: 'UNLOADING',
  unloaded: 'UNAVAILABLE',
  failed: 'UNAVAILABLE',
};

export interface ModelRegistryEvents {
  /** Called after a version changes state. */
  onStateChange?: (model: string, version: string, state: VersionState, reason?: string) => void;
}

export class ModelRegistry {
  private readonly models = new Map<string, ModelRecord>();
  /** Per-model chain so that loads and unloads of one model never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly repository: string,
    private readonly backend: Backend,
    private readonly events: ModelRegistryEvents = {},
  ) {}

  /** Registers every model of the repository (new ones as `registered`; known ones keep their state). */
  async refresh(): Promise<void> {
    for (const found of await scanRepository(this.repository)) this.merge(found);
  }

  list(): ModelRecord[] {
    return [...this.models.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The model, or NOT_FOUND. */
  model(name: string): ModelRecord {
    const model = this.models.get(name);
    if (model === undefined) throw new NotFoundError(`unknown model '${name}'`);
    return model;
  }

  /** The model and a version of it, or NOT_FOUND naming which is missing. */
  version(name: string, version: string): { model: ModelRecord; version: VersionRecord } {
    const model = this.model(name);
    const record = model.versions.get(version);
    if (record === undefined) {
      throw new NotFoundError(
        `unknown version '${version}' of model '${name}'; its versions are ${[...model.versions.keys()].join(', ') || 'none'}`,
      );
    }
    return { model, version: record };
  }

  /**
   * The version that serves a request: the named one, or the highest ready one. NOT_FOUND for an
   * unknown model or version, MODEL_NOT_READY when it exists but is not ready.
   */
  resolve(name: string, version?: string): { model: ModelRecord & { config: ModelConfig }; version: VersionRecord } {
    const model = this.model(name);
    if (model.config === undefined) throw new ModelNotReadyError(`model '${name}' is not available: ${model.error ?? 'no config'}`);
    let record: VersionRecord | undefined;
    if (version !== undefined) {
      record = this.version(name, version).version;
    } else {
      record = [...model.versions.values()].filter((v) => v.state === VersionState.READY).sort((a, b) => Number(b.version) - Number(a.version))[0];
      if (record === undefined) {
        const states = [...model.versions.values()].map((v) => `version ${v.version}: ${v.state}${v.reason !== undefined ? ` (${v.reason})` : ''}`);
        throw new ModelNotReadyError(`model '${name}' has no ready version${states.length > 0 ? `: ${states.join('; ')}` : ''}`);
      }
    }
    if (record.state !== VersionState.READY) {
      throw new ModelNotReadyError(
        `model '${name}' version ${record.version} is not ready (${record.state}${record.reason !== undefined ? `: ${record.reason}` : ''})`,
      );
    }
    return { model: model as ModelRecord & { config: ModelConfig }, version: record };
  }

  isReady(name: string, version?: string): boolean {
    try {
      const { version: v } = this.resolve(name, version);
      return this.backend.isServing(name, v.version);
    } catch {
      return false;
    }
  }

  /**
   * Loads a model as Triton's repository API does: re-reads it from the repository, loads the
   * versions its policy serves and unloads the others. Rejects with LOAD_FAILED naming every
   * version that failed; the versions that loaded stay loaded.
   */
  loadModel(name: string): Promise<void> {
    return this.exclusive(name, async () => {
      let found: RepositoryModel;
      try {
        found = await readRepositoryModel(this.repository, name);
      } catch {
        throw new NotFoundError(`unknown model '${name}': no directory of that name in the model repository`);
      }
      const model = this.merge(found);
      if (model.config === undefined) throw new LoadFailedError(`failed to load model '${name}': ${model.error ?? 'no config'}`);
      const failures: string[] = [];
      await Promise.all(
        [...model.versions.values()].map(async (v) => {
          if (v.state === VersionState.READY && this.backend.isServing(name, v.version)) return;
          this.setState(name, v, VersionState.LOADING);
          try {
            v.loaded = await this.backend.load(name, v.version);
            this.setState(name, v, VersionState.READY);
          } catch (err) {
            const reason = toInferneoError(err).message;
            this.setState(name, v, VersionState.FAILED, reason);
            failures.push(`version ${v.version}: ${reason}`);
          }
        }),
      );
      if (failures.length > 0) throw new LoadFailedError(`failed to load model '${name}': ${failures.join('; ')}`);
    });
  }

  /** Unloads every version of a model. */
  unloadModel(name: string): Promise<void> {
    return this.exclusive(name, async () => {
      const model = this.model(name);
      await Promise.all(
        [...model.versions.values()].map(async (v) => {
          if (v.state === VersionState.UNLOADED || v.state === VersionState.REGISTERED) return;
          this.setState(name, v, VersionState.DRAINING);
          await this.backend.unload(name, v.version);
          this.setState(name, v, VersionState.UNLOADED);
        }),
      );
    });
  }

  /** Rows of the repository index, in Triton's format. `readyOnly` keeps the ready versions only. */
  index(readyOnly = false): IndexEntry[] {
    const rows: IndexEntry[] = [];
    for (const model of this.list()) {
      if (model.versions.size === 0) {
        if (!readyOnly) rows.push({ name: model.name, state: 'UNAVAILABLE', reason: model.error ?? 'no version to serve' });
        continue;
      }
      for (const v of model.versions.values()) {
        if (readyOnly && v.state !== VersionState.READY) continue;
        const row: IndexEntry = { name: model.name, version: v.version, state: TRITON_STATE[v.state] };
        const reason = v.reason ?? (v.state === VersionState.UNLOADED ? 'unloaded' : v.state === VersionState.REGISTERED ? 'not loaded' : undefined);
        if (reason !== undefined) row.reason = reason;
        rows.push(row);
      }
    }
    return rows;
  }

  private merge(found: RepositoryModel): ModelRecord {
    let model = this.models.get(found.name);
    if (model === undefined) {
      model = { name: found.name, versions: new Map() };
      this.models.set(found.name, model);
    }
    if (found.config !== undefined) model.config = found.config;
    else delete model.config;
    if (found.error !== undefined) model.error = found.error;
    else delete model.error;
    for (const v of found.servedVersions) {
      if (!model.versions.has(v)) model.versions.set(v, { version: v, state: VersionState.REGISTERED });
    }
    return model;
  }

  private setState(model: string, record: VersionRecord, state: VersionState, reason?: string): void {
    record.state = state;
    if (reason !== undefined) record.reason = reason;
    else delete record.reason;
    this.events.onStateChange?.(model, record.version, state, reason);
  }

  private exclusive<T>(name: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const run = previous.then(task, task);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }
}
