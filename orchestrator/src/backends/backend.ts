import type { InferneoError } from '../errors.js';
import type { Datatype } from '../protocol/datatypes.js';
import type { Tensor } from '../protocol/tensor.js';

/**
 * What the scheduler and the registry need from a backend (Python workers over ZeroMQ, or a Triton
 * server). A new backend is a new folder beside `python/` implementing this, and nothing else changes.
 */

export interface TensorSignature {
  name: string;
  datatype: Datatype;
  /** With a leading -1 when the model batches; -1 marks any variable dimension. */
  shape: number[];
}

/** What a backend learnt about a version when it loaded it. */
export interface LoadedVersion {
  /** Memory the load added on a host, as the host estimated it. */
  memoryBytes?: number;
  platform: string;
  backend: string;
  maxBatchSize: number;
  inputs: TensorSignature[];
  outputs: TensorSignature[];
  /**
   * The model's configuration as the host reports it, in Triton's JSON form (Triton does; Python
   * workers do not: their config is the repository's).
   */
  config?: Record<string, unknown>;
}

/** A model that lives in a backend's own repository (Triton's), not in the orchestrator's. */
export interface RemoteModel {
  /** Its configuration in Triton's JSON form (`GET /v2/models/{m}/config`). */
  config: Record<string, unknown>;
  /** The versions the backend serves by the model's own version policy. */
  versions: string[];
}

/** One request of a batch. `outputs` empty or absent means all of the model's outputs. */
export interface BackendRequest {
  inputs: Tensor[];
  outputs?: string[];
}

/** A request's result: its outputs, or an error that concerns this request only. */
export type BackendResponse = { outputs: Tensor[] } | { error: InferneoError };

export interface Backend {
  readonly name: string;
  /**
   * Loads a version (on every host that may serve it, warm-up included); rejects with LOAD_FAILED
   * and the reason. `source` is the model directory to load from when it is not the repository's.
   */
  load(model: string, version: string, options?: { source?: string }): Promise<LoadedVersion>;
  /** Stops serving a version and frees it; succeeds when it was not loaded. */
  unload(model: string, version: string): Promise<void>;
  /** Whether a request for this version could be dispatched now. */
  isServing(model: string, version: string): boolean;
  /**
   * Whether a call for a loaded version could reach a host right now (for readiness): false while
   * every host holding it is known to be down, e.g. each Triton endpoint's circuit is open.
   * @defaultValue isServing
   */
  isAvailable?(model: string, version: string): boolean;
  /** The versions loaded on at least one host. */
  loadedVersions(): { model: string; version: string }[];
  /**
   * Runs a batch of requests in one backend call. Resolves with one response per request, in order;
   * rejects only when the whole batch failed (the worker was lost, the call timed out).
   */
  infer(model: string, version: string, requests: BackendRequest[]): Promise<BackendResponse[]>;
  /**
   * How many executions of a version the scheduler may have in flight at once, given the instance
   * count of its config. A backend that queues and schedules by itself (Triton) wants more than
   * its instance count, so that the round trip to it overlaps with its work.
   * @defaultValue the instance count
   */
  inflightLimit?(model: string, version: string, instances: number): number;
  /**
   * Describes a model of the backend's own repository, for registering a model the orchestrator's
   * repository does not hold. Optional: only backends with a repository of their own (Triton) have it.
   */
  describe?(model: string): Promise<RemoteModel>;
  close(): Promise<void>;
}
