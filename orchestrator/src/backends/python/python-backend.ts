import { EventEmitter } from 'node:events';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  errorFromWire,
  ErrorCode,
  InferneoError,
  LoadFailedError,
  ModelNotReadyError,
  ResourceExhaustedError,
  UnavailableError,
} from '../../errors.js';
import { isDatatype } from '../../protocol/datatypes.js';
import type { Tensor } from '../../protocol/tensor.js';
import type { CancelSignal } from '../../scheduling/cancel-signal.js';
import { type MergedBatch, mergeRequests, splitOutputs } from '../batch-merge.js';
import type { Backend, BackendRequest, BackendResponse, LoadedVersion, TensorSignature } from '../backend.js';
import type { FinishReason, GenerateRequest, GenerationEvent, GenerationInfo, TextGenerator } from '../generation.js';
import { AsyncQueue } from './async-queue.js';
import type { WorkerPool } from './worker-pool.js';
import { versionKey, type WorkerSession, WorkerState } from './worker-session.js';

/**
 * Serves model versions on Python workers. It keeps the set of versions that should be loaded
 * ("wanted") and makes every worker that connects — the first time or after a restart — load the
 * wanted versions it may host before it takes requests for them. Requests go to the worker with the
 * fewest requests in flight among those that have the version loaded.
 *
 * Memory (ModelMesh-style): a worker that announced a memory budget never holds more than it. A
 * load that would not fit first unloads the worker's least recently used versions that are idle
 * (nothing in flight) and not pinned; if that cannot make room, the load fails with
 * RESOURCE_EXHAUSTED naming what holds the memory.
 */

export interface PythonBackendOptions {
  /** Time a worker has to answer an inference call before it fails with DEADLINE_EXCEEDED. @defaultValue 60000 */
  requestTimeoutMs?: number;
  /** Time a worker has to load a version (warm-up included). @defaultValue 120000 */
  loadTimeoutMs?: number;
}

export interface PythonBackendEvents {
  /** A version was unloaded from a worker to make room; `everywhere` when no worker has it any more. */
  evicted: [model: string, version: string, reason: string, everywhere: boolean];
}

interface WireResponse {
  outputs?: unknown;
  error?: { code?: unknown; message?: unknown };
}

interface Wanted {
  model: string;
  version: string;
  source: string | undefined;
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

/** Bytes of the files in a version directory: a load's memory estimate before it has been measured. */
async function diskSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const file = path.join(dir, entry.name);
    total += entry.isDirectory() ? await diskSize(file) : ((await stat(file).catch(() => undefined))?.size ?? 0);
  }
  return total;
}

const MiB = 1024 * 1024;

/** The `generation` a worker reports for a decoupled model when it loads it. */
function generationInfo(value: unknown): GenerationInfo | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const g = value as Record<string, unknown>;
  return {
    contextLength: Number(g['context_length'] ?? 0),
    maxSequences: Math.max(1, Number(g['max_sequences'] ?? 1)),
    defaultMaxTokens: Number(g['default_max_tokens'] ?? 0),
    chatTemplate: g['chat_template'] === true,
  };
}

export class PythonBackend extends EventEmitter<PythonBackendEvents> implements Backend, TextGenerator {
  readonly name = 'python';
  private readonly requestTimeoutMs: number;
  private readonly loadTimeoutMs: number;
  private readonly wanted = new Map<string, Wanted>();
  /** What each version reported when it loaded (platform, batching), by versionKey. */
  private readonly versions = new Map<string, LoadedVersion>();
  /** Largest memory a version was seen to take, by versionKey. */
  private readonly footprint = new Map<string, number>();
  /** What decoupled (text-generation) versions reported when they loaded, by versionKey. */
  private readonly generation = new Map<string, GenerationInfo>();
  private isPinned: (model: string, version: string) => boolean = () => false;
  private roundRobin = 0;

  constructor(
    private readonly pool: WorkerPool,
    options: PythonBackendOptions = {},
  ) {
    super();
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.loadTimeoutMs = options.loadTimeoutMs ?? 120_000;
    pool.on('worker-connected', (session) => void this.prepare(session));
  }

  /** Tells the backend which versions must never be evicted. */
  setPinnedCheck(check: (model: string, version: string) => boolean): void {
    this.isPinned = check;
  }

  async load(model: string, version: string, options: { source?: string } = {}): Promise<LoadedVersion> {
    const key = versionKey(model, version);
    this.wanted.set(key, { model, version, source: options.source });
    const targets = this.pool.sessions().filter((s) => s.state !== WorkerState.LOST && s.canHost(model));
    if (targets.length === 0) {
      this.wanted.delete(key);
      throw new UnavailableError(`no worker is connected that may host model '${model}'`);
    }
    const results = await Promise.allSettled(targets.map((s) => this.loadOn(s, this.wanted.get(key) ?? { model, version, source: options.source })));
    for (const r of results) if (r.status === 'fulfilled') return r.value;
    this.wanted.delete(key);
    const reason = (results[0] as PromiseRejectedResult).reason as unknown;
    if (reason instanceof InferneoError && (reason.code === ErrorCode.LOAD_FAILED || reason.code === ErrorCode.RESOURCE_EXHAUSTED)) throw reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    throw new LoadFailedError(`failed to load model '${model}' version ${version}: ${message}`);
  }

  async unload(model: string, version: string): Promise<void> {
    const key = versionKey(model, version);
    this.wanted.delete(key);
    this.versions.delete(key);
    this.generation.delete(key);
    const hosts = this.pool.sessions().filter((s) => s.loaded.has(key));
    // Stop routing first, then free the memory; a lost worker has nothing left to free.
    for (const s of hosts) s.forget(key);
    await Promise.allSettled(hosts.map((s) => this.pool.request(s, { type: 'unload', model, version }, this.loadTimeoutMs)));
  }

  isServing(model: string, version: string): boolean {
    const key = versionKey(model, version);
    return this.pool.sessions().some((s) => s.state !== WorkerState.LOST && s.loaded.has(key));
  }

  loadedVersions(): { model: string; version: string }[] {
    const out = new Map<string, { model: string; version: string }>();
    for (const s of this.pool.sessions()) {
      for (const key of s.loaded) {
        const [model, version] = key.split('\u0000') as [string, string];
        out.set(key, { model, version });
      }
    }
    return [...out.values()];
  }

  async infer(model: string, version: string, requests: BackendRequest[]): Promise<BackendResponse[]> {
    const key = versionKey(model, version);
    const session = this.pick(key, model, version);
    session.lastUsed.set(key, performance.now());
    session.inflightByVersion.set(key, (session.inflightByVersion.get(key) ?? 0) + 1);
    const whole = this.wholeBatch(key, requests);
    let reply: Record<string, unknown>;
    try {
      reply = await this.pool.request(
        session,
        whole !== undefined
          ? { type: 'infer', model, version, batch: whole }
          : { type: 'infer', model, version, requests: requests.map((r) => ({ inputs: r.inputs, outputs: r.outputs ?? [] })) },
        this.requestTimeoutMs,
      );
    } finally {
      const left = (session.inflightByVersion.get(key) ?? 1) - 1;
      if (left > 0) session.inflightByVersion.set(key, left);
      else session.inflightByVersion.delete(key);
    }
    if (whole !== undefined) {
      const outputs = (reply['batch'] as { outputs?: unknown } | undefined)?.outputs;
      if (!Array.isArray(outputs)) throw new InferneoError(ErrorCode.INTERNAL, `worker ${session.id} answered a batch without outputs`);
      return splitOutputs(outputs.map(toTensor), whole.rows);
    }
    const responses = reply['responses'];
    if (!Array.isArray(responses) || responses.length !== requests.length) {
      throw new InferneoError(
        ErrorCode.INTERNAL,
        `worker ${session.id} answered ${Array.isArray(responses) ? responses.length : 'no'} responses for ${requests.length} requests`,
      );
    }
    return responses.map((r: WireResponse) =>
      r.error !== undefined ? { error: errorFromWire(r.error.code, r.error.message) } : { outputs: (Array.isArray(r.outputs) ? r.outputs : []).map(toTensor) },
    );
  }

  generationInfo(model: string, version: string): { info: GenerationInfo; hosts: number } | undefined {
    const key = versionKey(model, version);
    const info = this.generation.get(key);
    if (info === undefined) return undefined;
    const hosts = this.pool.sessions().filter((s) => s.state !== WorkerState.LOST && s.loaded.has(key)).length;
    return hosts === 0 ? undefined : { info, hosts };
  }

  /**
   * Generates on the worker with the fewest sequences of this version in flight (then the fewest
   * requests): one `generate` message, its partial results as `delta` events, its final result as
   * `final`. A worker silent for `requestTimeoutMs` fails the stream; leaving the iteration early or
   * cancelling `signal` sends `cancel`, which stops the sequence within one token step.
   */
  async *generate(model: string, version: string, request: GenerateRequest, signal?: CancelSignal): AsyncGenerator<GenerationEvent> {
    const key = versionKey(model, version);
    const session = this.pickForGeneration(key, model, version);
    session.lastUsed.set(key, performance.now());
    session.inflightByVersion.set(key, (session.inflightByVersion.get(key) ?? 0) + 1);
    const events = new AsyncQueue<GenerationEvent>();
    const message: Record<string, unknown> = { type: 'generate', model, version, parameters: request.parameters };
    if (request.messages !== undefined) message['messages'] = request.messages;
    else message['prompt'] = request.prompt;
    const call = this.pool.stream(session, message, this.requestTimeoutMs, (frame) =>
      events.push({ type: 'delta', text: String(frame['text'] ?? ''), tokens: Number(frame['tokens'] ?? 0) }),
    );
    call.done.then(
      (frame) => {
        const usage = (frame['usage'] ?? {}) as Record<string, unknown>;
        events.push({
          type: 'final',
          text: String(frame['text'] ?? ''),
          finishReason: String(frame['finish_reason'] ?? 'stop') as FinishReason,
          usage: { prompt_tokens: Number(usage['prompt_tokens'] ?? 0), completion_tokens: Number(usage['completion_tokens'] ?? 0) },
        });
        events.end();
      },
      (err: unknown) => events.fail(err),
    );
    const unsubscribe = signal?.onCancel(() => call.cancel('the client went away'));
    try {
      yield* events;
    } finally {
      unsubscribe?.();
      call.cancel('the generation was abandoned');
      const left = (session.inflightByVersion.get(key) ?? 1) - 1;
      if (left > 0) session.inflightByVersion.set(key, left);
      else session.inflightByVersion.delete(key);
    }
  }

  private pickForGeneration(key: string, model: string, version: string): WorkerSession {
    let best: WorkerSession | undefined;
    for (const s of this.pool.sessions()) {
      if (s.state === WorkerState.LOST || !s.loaded.has(key)) continue;
      const mine = s.inflightByVersion.get(key) ?? 0;
      const bestMine = best === undefined ? 0 : (best.inflightByVersion.get(key) ?? 0);
      if (best === undefined || mine < bestMine || (mine === bestMine && s.inflight < best.inflight)) best = s;
    }
    if (best === undefined) throw new ModelNotReadyError(`model '${model}' version ${version} is not loaded on any connected worker`);
    return best;
  }

  /**
   * The whole-batch form of a call (one tensor per input, rows per request) for more than one
   * request to a batching, non-Python model. It spares the worker per-request work; Python models
   * keep the per-request form so that one bad request fails alone.
   */
  private wholeBatch(key: string, requests: BackendRequest[]): MergedBatch | undefined {
    const loaded = this.versions.get(key);
    if (loaded === undefined || loaded.maxBatchSize <= 0 || loaded.backend === 'python') return undefined;
    return mergeRequests(requests);
  }

  async close(): Promise<void> {
    this.wanted.clear();
  }

  /** Least requests in flight first; ties go round-robin so that idle workers share the load. */
  private pick(key: string, model: string, version: string): WorkerSession {
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
    if (best === undefined) throw new ModelNotReadyError(`model '${model}' version ${version} is not loaded on any connected worker`);
    return best;
  }

  private async loadOn(session: WorkerSession, wanted: Wanted): Promise<LoadedVersion> {
    const { model, version, source } = wanted;
    const key = versionKey(model, version);
    let estimate = this.footprint.get(key) ?? 0;
    if (session.memoryBudgetBytes > 0 && !session.loaded.has(key)) {
      if (estimate === 0 && source !== undefined) estimate = await diskSize(path.join(source, version));
      await this.makeRoom(session, key, estimate, `${model} v${version}`);
    }
    let reply: Record<string, unknown>;
    for (;;) {
      try {
        const message: Record<string, unknown> = { type: 'load', model, version };
        if (source !== undefined) message['source'] = source;
        reply = await this.pool.request(session, message, this.loadTimeoutMs);
        break;
      } catch (err) {
        // The worker measures real memory and may refuse although our estimate fitted: make more
        // room and try again, as long as something can still be evicted.
        const refused = err instanceof InferneoError && err.code === ErrorCode.UNAVAILABLE && /memory budget/.test(err.message);
        if (!refused || !this.evictOne(session, key, `${model} v${version}`)) throw err;
      }
    }
    const reported = Number(reply['memory_bytes'] ?? 0);
    const bytes = Math.max(reported, estimate);
    this.footprint.set(key, Math.max(bytes, this.footprint.get(key) ?? 0));
    if (!this.wanted.has(key)) {
      // Unloaded while it was loading: do not leave it behind on the worker.
      void this.pool.request(session, { type: 'unload', model, version }, this.loadTimeoutMs).catch(() => undefined);
    } else if (session.state !== WorkerState.LOST) {
      session.loaded.add(key);
      session.memory.set(key, bytes);
      session.lastUsed.set(key, performance.now());
    }
    const meta = (reply['metadata'] ?? {}) as Record<string, unknown>;
    const loaded: LoadedVersion = {
      memoryBytes: bytes,
      platform: String(meta['platform'] ?? ''),
      backend: String(meta['backend'] ?? ''),
      maxBatchSize: Number(meta['max_batch_size'] ?? 0),
      inputs: signatures(meta['inputs']),
      outputs: signatures(meta['outputs']),
    };
    this.versions.set(key, loaded);
    const generation = generationInfo(meta['generation']);
    if (generation !== undefined) this.generation.set(key, generation);
    return loaded;
  }

  /** Evicts least-recently-used idle versions until `need` bytes fit in the worker's budget. */
  private async makeRoom(session: WorkerSession, key: string, need: number, what: string): Promise<void> {
    const budget = session.memoryBudgetBytes;
    if (need > budget) {
      throw new ResourceExhaustedError(
        `${what} needs ~${(need / MiB).toFixed(1)} MiB, more than worker ${session.id}'s whole memory budget of ${(budget / MiB).toFixed(1)} MiB`,
      );
    }
    while (session.memoryInUse() + need > budget) {
      if (!this.evictOne(session, key, what)) {
        const holders = [...session.loaded].map((k) => {
          const [m, v] = k.split('\u0000') as [string, string];
          const why = this.isPinned(m, v) ? 'pinned' : 'busy';
          return `${m} v${v} (${why}, ~${((session.memory.get(k) ?? 0) / MiB).toFixed(1)} MiB)`;
        });
        throw new ResourceExhaustedError(
          `no room for ${what} (~${(need / MiB).toFixed(1)} MiB) on worker ${session.id}: its budget of ${(budget / MiB).toFixed(1)} MiB is held by ${holders.join(', ')}`,
        );
      }
    }
  }

  /** Unloads the least recently used idle, unpinned version (not `keep`); false when there is none. */
  private evictOne(session: WorkerSession, keep: string, forWhat: string): boolean {
    let victim: string | undefined;
    for (const k of session.loaded) {
      if (k === keep || (session.inflightByVersion.get(k) ?? 0) > 0) continue;
      const [m, v] = k.split('\u0000') as [string, string];
      if (this.isPinned(m, v)) continue;
      if (victim === undefined || (session.lastUsed.get(k) ?? 0) < (session.lastUsed.get(victim) ?? 0)) victim = k;
    }
    if (victim === undefined) return false;
    const [model, version] = victim.split('\u0000') as [string, string];
    session.forget(victim);
    void this.pool.request(session, { type: 'unload', model, version }, this.loadTimeoutMs).catch(() => undefined);
    const everywhere = !this.isServing(model, version);
    if (everywhere) this.wanted.delete(victim);
    const reason = `evicted from worker ${session.id} (least recently used) to make room for ${forWhat}`;
    console.error(`[inferneo] model ${model} v${version}: ${reason}`);
    this.emit('evicted', model, version, reason, everywhere);
    return true;
  }

  /** Brings a newly connected worker up to the wanted set, then lets it take requests. */
  private async prepare(session: WorkerSession): Promise<void> {
    // One at a time, so that a memory budget is filled in order rather than raced for.
    for (const w of [...this.wanted.values()]) {
      if (!session.canHost(w.model) || session.state === WorkerState.LOST) continue;
      await this.loadOn(session, w).catch((err: Error) => {
        console.error(`[inferneo] worker ${session.id} could not load ${w.model} v${w.version}: ${err.message}`);
      });
    }
    if (session.state === WorkerState.CONNECTED) session.state = WorkerState.READY;
  }
}
