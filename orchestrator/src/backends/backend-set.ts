import { UnavailableError } from '../errors.js';
import type { Backend, BackendRequest, BackendResponse, LoadedVersion, RemoteModel } from './backend.js';

/**
 * One Backend in front of several (Python workers, Triton): each call goes to the backend that
 * serves the version, as `kindOf` says (the registry's record of the version). The registry and
 * the scheduler hold this one Backend and need not know how many kinds there are.
 */

export type BackendKindOf = (model: string, version: string) => string;

export class BackendSet implements Backend {
  readonly name = 'backends';
  private readonly all: Backend[];

  /**
   * @param backends - the backends by kind; a kind may be absent (e.g. no Triton configured), and a
   *   version of that kind then fails to load with UNAVAILABLE.
   * @param kindOf - the kind of backend that serves a version.
   */
  constructor(
    private readonly backends: Readonly<Record<string, Backend | undefined>>,
    private readonly kindOf: BackendKindOf,
  ) {
    this.all = Object.values(backends).filter((b): b is Backend => b !== undefined);
  }

  /** The backend of a kind, if there is one. */
  get(kind: string): Backend | undefined {
    return this.backends[kind];
  }

  async load(model: string, version: string, options?: { source?: string }): Promise<LoadedVersion> {
    return this.backendOf(model, version).load(model, version, options);
  }

  async unload(model: string, version: string): Promise<void> {
    // Also whichever other backend still has it (the version's kind changed, or its record is gone).
    const primary = this.backends[this.kindOf(model, version)];
    const holders = this.all.filter((b) => b === primary || b.loadedVersions().some((v) => v.model === model && v.version === version));
    await Promise.all(holders.map((b) => b.unload(model, version)));
  }

  isServing(model: string, version: string): boolean {
    return this.backends[this.kindOf(model, version)]?.isServing(model, version) === true;
  }

  isAvailable(model: string, version: string): boolean {
    const backend = this.backends[this.kindOf(model, version)];
    if (backend === undefined) return false;
    return backend.isAvailable?.(model, version) ?? backend.isServing(model, version);
  }

  loadedVersions(): { model: string; version: string }[] {
    return this.all.flatMap((b) => b.loadedVersions());
  }

  async infer(model: string, version: string, requests: BackendRequest[]): Promise<BackendResponse[]> {
    return this.backendOf(model, version).infer(model, version, requests);
  }

  inflightLimit(model: string, version: string, instances: number): number {
    const backend = this.backends[this.kindOf(model, version)];
    return backend?.inflightLimit?.(model, version, instances) ?? instances;
  }

  /** Asks the backends that have a repository of their own, in order, until one knows the model. */
  async describe(model: string): Promise<RemoteModel> {
    const able = this.all.filter((b) => b.describe !== undefined);
    if (able.length === 0) throw new UnavailableError(`no backend with a model repository of its own (Triton) is configured to describe model '${model}'`);
    let last: unknown;
    for (const b of able) {
      try {
        return await b.describe!(model);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((b) => b.close()));
  }

  private backendOf(model: string, version: string): Backend {
    const kind = this.kindOf(model, version);
    const backend = this.backends[kind];
    if (backend === undefined) {
      throw new UnavailableError(`model '${model}' version ${version} is served by the ${kind} backend, which is not configured${kind === 'triton' ? ' (set triton.endpoints or INFERNEO_TRITON_URLS)' : ''}`);
    }
    return backend;
  }
}
