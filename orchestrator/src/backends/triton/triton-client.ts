import type { Tensor } from '../../protocol/tensor.js';

/**
 * What the Triton backend needs from a Triton server, whatever the protocol (client-http.ts,
 * client-grpc.ts). Every method rejects with an InferneoError: UNAVAILABLE when the server cannot be
 * reached, DEADLINE_EXCEEDED when it took longer than the time given, otherwise the code that
 * matches Triton's own status, with Triton's message (see triton-errors.ts).
 */

/** A row of Triton's repository index. `version` and `state` are present once a load was tried. */
export interface TritonIndexEntry {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

export interface TritonInferCall {
  inputs: Tensor[];
  /** Outputs to return; empty = all of the model's outputs. */
  outputs: string[];
}

export interface TritonClient {
  /** The endpoint as configured (`http://host:port` or `host:port`), for messages. */
  readonly endpoint: string;
  /** Whether the server answers `ready`. */
  serverReady(timeoutMs: number): Promise<boolean>;
  /** Triton's repository index (every model of its repository, loaded or not). */
  repositoryIndex(timeoutMs: number): Promise<TritonIndexEntry[]>;
  /** The configuration of a loaded model, as Triton's HTTP API renders it in JSON. NOT_FOUND when not loaded. */
  modelConfig(model: string, timeoutMs: number): Promise<Record<string, unknown>>;
  /** Loads (or reloads) a model, with a complete config that replaces its config.pbtxt when given. */
  loadModel(model: string, config: Record<string, unknown> | undefined, timeoutMs: number): Promise<void>;
  unloadModel(model: string, timeoutMs: number): Promise<void>;
  /** One inference request; the outputs come back in raw form. */
  infer(model: string, version: string, call: TritonInferCall, timeoutMs: number): Promise<Tensor[]>;
  /** Closes the connections. Idempotent. */
  close(): Promise<void>;
}
