import {
  errorFromWire,
  InferneoError,
  ErrorCode,
  LoadFailedError,
  ModelNotReadyError,
  UnavailableError,
} from '../../errors.js';
import { isDatatype } from '../../protocol/datatypes.js';
import type { Tensor } from '../../protocol/tensor.js';
import type { Backend, BackendRequest, BackendResponse, LoadedVersion, TensorSignature } from '../backend.js';
import type { WorkerPool } from './worker-pool.js';
import { versionKey, type WorkerSession, WorkerState } from './worker-session.js';

/**
 * Serves model versions on Python workers. It keeps the set of versions that should be loaded
 * ("wanted") and makes every worker that connects — the first time or after a restart — load the
 * wanted versions it may host before it takes requests for them. Requests go to the worker with the
 * fewest requests in flight among those that have the version loaded.
 */

export interface PythonBackendOptions {
  /** Time a worker has to answer an inference call before it fails with DEADLINE_EXCEEDED. @defaultValue 60000 */
  requestTimeoutMs?: number;
  /** Time a worker has to load a version. @defaultValue 120000 */
  loadTimeoutMs?: number;
}

interface WireResponse {
  outputs?: unknown;
  error?: { code?: unknown; message?: unknown };
}

function signatures(value: unknown): TensorSignature[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((t: Record<string, unknown>) =>
    typeof t['name'] === 'string' && isDatatype(t['datatype']) && Array.isArray(t['shape'])
      ? [{ name: t['name'], datatype: t['datatype'], shape: t['shape'] as number[] }]
      : [],
  );
}

function toTensor(value: unknown): Tensor {
  const t = value as Record<string, unknown>;
  if (typeof t['name'] !== 'string' || !isDatatype(t['datatype']) || !Array.isArray(t['shape']) || !Buffer.isBuffer(t['data'])) {
    throw new InferneoError(ErrorCode.INTERNAL, 'a worker returned a malformed output tensor');
  }
  return { name: t['name'], datatype: t['datatype'], shape: t['shape'] as number[], data: t['data'] };
}

export class PythonBackend implements Backend {
  readonly name = 'python';
  private readonly requestTimeoutMs: number;
  private readonly loadTimeoutMs: number;
  private readonly wanted = new Map<string, { model: string; version: string }>();
  private roundRobin = 0;

  constructor(
    private readonly pool: WorkerPool,
    options: PythonBackendOptions = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.loadTimeoutMs = options.loadTimeoutMs ?? 120_000;
    pool.on('worker-connected', (session) => void this.prepare(session));
  }

  async load(model: string, version: string): Promise<LoadedVersion> {
    this.wanted.set(versionKey(model, version), { model, version });
    const targets = this.pool.sessions().filter((s) => s.state !== WorkerState.LOST && s.canHost(model));
    if (targets.length === 0) {
      this.wanted.delete(versionKey(model, version));
      throw new UnavailableError(`no worker is connected that may host model '${model}'`);
    }
    const results = await Promise.allSettled(targets.map((s) => this.loadOn(s, model, version)));
    for (const r of results) if (r.status === 'fulfilled') return r.value;
    this.wanted.delete(versionKey(model, version));
    const reason = (results[0] as PromiseRejectedResult).reason as unknown;
    if (reason instanceof InferneoError && reason.code === ErrorCode.LOAD_FAILED) throw reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    throw new LoadFailedError(`failed to load model '${model}' version ${version}: ${message}`);
  }

  async unload(model: string, version: string): Promise<void> {
    const key = versionKey(model, version);
    this.wanted.delete(key);
    const hosts = this.pool.sessions().filter((s) => s.loaded.delete(key));
    // Stop routing first (above), then free the memory; a lost worker has nothing left to free.
    await Promise.allSettled(hosts.map((s) => this.pool.request(s, { type: 'unload', model, version }, this.loadTimeoutMs)));
  }

  isServing(model: string, version: string): boolean {
    const key = versionKey(model, version);
    return this.pool.sessions().some((s) => s.state !== WorkerState.LOST && s.loaded.has(key));
  }

  async infer(model: string, version: string, requests: BackendRequest[]): Promise<BackendResponse[]> {
    const session = this.pick(model, version);
    const reply = await this.pool.request(
      session,
      {
        type: 'infer',
        model,
        version,
        requests: requests.map((r) => ({ inputs: r.inputs, outputs: r.outputs ?? [] })),
      },
      this.requestTimeoutMs,
    );
    const responses = reply['responses'];
    if (!Array.isArray(responses) || responses.length !== requests.length) {
      throw new InferneoError(
        ErrorCode.INTERNAL,
        `worker ${session.id} answered ${Array.isArray(responses) ? responses.length : 'no'} responses for ${requests.length} requests`,
      );
    }
    return responses.map((r: WireResponse) =>
      r.error !== undefined
        ? { error: errorFromWire(r.error.code, r.error.message) }
        : { outputs: (Array.isArray(r.outputs) ? r.outputs : []).map(toTensor) },
    );
  }

  async close(): Promise<void> {
    this.wanted.clear();
  }

  /** Least requests in flight first; ties go round-robin so that idle workers share the load. */
  private pick(model: string, version: string): WorkerSession {
    const key = versionKey(model, version);
    const sessions = this.pool.sessions();
    const n = sessions.length;
    if (n === 0) throw new UnavailableError('no worker is available: none is connected');
    let best: WorkerSession | undefined;
    const start = this.roundRobin++ % n;
    for (let i = 0; i < n; i++) {
      const s = sessions[(start + i) % n]!;
      if (s.state === WorkerState.LOST || !s.loaded.has(key)) continue;
      if (best === undefined || s.inflight < best.inflight) best = s;
    }
    if (best === undefined) {
      throw new ModelNotReadyError(`model '${model}' version ${version} is not loaded on any connected worker`);
    }
    return best;
  }

  private async loadOn(session: WorkerSession, model: string, version: string): Promise<LoadedVersion> {
    const reply = await this.pool.request(session, { type: 'load', model, version }, this.loadTimeoutMs);
    const key = versionKey(model, version);
    if (!this.wanted.has(key)) {
      // Unloaded while it was loading: do not leave it behind on the worker.
      void this.pool.request(session, { type: 'unload', model, version }, this.loadTimeoutMs).catch(() => undefined);
    } else if (session.state !== WorkerState.LOST) {
      session.loaded.add(key);
    }
    const meta = (reply['metadata'] ?? {}) as Record<string, unknown>;
    return {
      platform: String(meta['platform'] ?? ''),
      backend: String(meta['backend'] ?? ''),
      maxBatchSize: Number(meta['max_batch_size'] ?? 0),
      inputs: signatures(meta['inputs']),
      outputs: signatures(meta['outputs']),
    };
  }

  /** Brings a newly connected worker up to the wanted set, then lets it take requests. */
  private async prepare(session: WorkerSession): Promise<void> {
    const loads = [...this.wanted.values()]
      .filter((v) => session.canHost(v.model))
      .map((v) =>
        this.loadOn(session, v.model, v.version).catch((err: Error) => {
          console.error(`[inferneo] worker ${session.id} could not load ${v.model} v${v.version}: ${err.message}`);
        }),
      );
    await Promise.all(loads);
    if (session.state === WorkerState.CONNECTED) session.state = WorkerState.READY;
  }
}
