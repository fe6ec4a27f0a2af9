import type { TritonClient, TritonIndexEntry, TritonInferCall } from '../src/backends/triton/triton-client.js';
import { oneLine } from '../src/backends/triton/triton-errors.js';
import { ErrorCode, InferneoError } from '../src/errors.js';
import type { Tensor } from '../src/protocol/tensor.js';

/**
 * An in-memory Triton in explicit model-control mode, for the unit tests of the Triton backend: it
 * keeps a repository and the state of each loaded version the way Triton 2.51 does (a fresh load
 * with a failing version leaves nothing loaded; a reload keeps what served before), and can be
 * taken down (every call fails with UNAVAILABLE) or made to answer inference as a test wants.
 */

export interface FakeModel {
  config: Record<string, unknown>;
  /** Version directories present. */
  versions: string[];
  /** Versions whose initialize fails. */
  broken?: string[];
  /** Versions the model's own version policy loads. @defaultValue the latest */
  policy?: string[];
}

function unavailable(endpoint: string): InferneoError {
  return new InferneoError(ErrorCode.UNAVAILABLE, `Triton ${endpoint} cannot be reached: connect ECONNREFUSED`);
}

export class FakeTritonClient implements TritonClient {
  /** Every call fails with UNAVAILABLE while true. */
  down = false;
  /** What `serverReady` answers when up. */
  ready = true;
  closed = false;
  readonly calls: string[] = [];
  readonly infers: { model: string; version: string; call: TritonInferCall }[] = [];
  readonly loads: { model: string; versions: string[] | 'own policy' }[] = [];
  readonly repository = new Map<string, FakeModel>();
  /** Loaded versions: model → version → state and reason. */
  readonly state = new Map<string, Map<string, { state: string; reason?: string }>>();
  /** Answers inference; default: each input renamed OUT_<name>, data as given. */
  answer: (model: string, version: string, call: TritonInferCall) => Promise<Tensor[]> = async (_m, _v, call) =>
    call.inputs.map((t) => ({ ...t, name: `OUT_${t.name}` }));

  constructor(readonly endpoint: string) {}

  add(name: string, model: FakeModel): void {
    this.repository.set(name, model);
  }

  /** Forgets everything loaded, as a restarted Triton in explicit mode does. */
  restart(): void {
    this.state.clear();
  }

  readyVersions(model: string): string[] {
    return [...(this.state.get(model) ?? [])].filter(([, s]) => s.state === 'READY').map(([v]) => v);
  }

  private enter(op: string): void {
    this.calls.push(op);
    if (this.down) throw unavailable(this.endpoint);
  }

  async serverReady(): Promise<boolean> {
    this.enter('ready');
    return this.ready;
  }

  async repositoryIndex(): Promise<TritonIndexEntry[]> {
    this.enter('index');
    const rows: TritonIndexEntry[] = [];
    for (const name of [...this.repository.keys()].sort()) {
      const versions = this.state.get(name);
      if (versions === undefined || versions.size === 0) rows.push({ name });
      else for (const [version, s] of versions) rows.push({ name, version, state: s.state, ...(s.reason !== undefined ? { reason: s.reason } : {}) });
    }
    return rows;
  }

  async modelConfig(model: string): Promise<Record<string, unknown>> {
    this.enter(`config ${model}`);
    const m = this.repository.get(model);
    if (m === undefined || this.readyVersions(model).length === 0) throw new InferneoError(ErrorCode.NOT_FOUND, `Triton ${this.endpoint}: Request for unknown model: '${model}' is not found`);
    return { ...m.config };
  }

  async loadModel(model: string, config: Record<string, unknown> | undefined): Promise<void> {
    this.enter(`load ${model}`);
    const m = this.repository.get(model);
    if (m === undefined) throw new InferneoError(ErrorCode.INTERNAL, `Triton ${this.endpoint}: failed to load '${model}', failed to poll from model repository`);
    const policy = (config?.['version_policy'] as { specific?: { versions: number[] } } | undefined)?.specific?.versions.map(String);
    this.loads.push({ model, versions: policy ?? 'own policy' });
    const wanted = policy ?? m.policy ?? [m.versions[m.versions.length - 1]!];
    const before = this.state.get(model) ?? new Map<string, { state: string; reason?: string }>();
    const after = new Map<string, { state: string; reason?: string }>();
    const failed: string[] = [];
    for (const v of wanted) {
      if (!m.versions.includes(v)) {
        failed.push(v);
        after.set(v, { state: 'UNAVAILABLE', reason: `version ${v} not found` });
      } else if (m.broken?.includes(v)) {
        failed.push(v);
        after.set(v, { state: 'UNAVAILABLE', reason: `Internal: RuntimeError: ${model} v${v} cannot start\n\nAt:\n  model.py(8): initialize\n` });
      } else after.set(v, { state: 'READY' });
    }
    if (failed.length > 0) {
      // A failed reload keeps the versions that served before; a failed fresh load keeps nothing.
      const reload = [...before.values()].some((s) => s.state === 'READY');
      for (const [v, s] of [...after]) if (s.state === 'READY' && !reload) after.delete(v);
      if (reload) for (const [v, s] of before) if (s.state === 'READY') after.set(v, s);
      this.state.set(model, after);
      throw new InferneoError(
        ErrorCode.INVALID_ARGUMENT,
        `Triton ${this.endpoint}: load failed for model '${model}': version ${failed[0]} is at UNAVAILABLE state: ${oneLine(after.get(failed[0]!)!.reason!)};`,
      );
    }
    this.state.set(model, after);
  }

  async unloadModel(model: string): Promise<void> {
    this.enter(`unload ${model}`);
    this.state.delete(model);
  }

  async infer(model: string, version: string, call: TritonInferCall): Promise<Tensor[]> {
    this.enter(`infer ${model} ${version}`);
    if (this.state.get(model)?.get(version)?.state !== 'READY') {
      throw new InferneoError(ErrorCode.NOT_FOUND, `Triton ${this.endpoint}: Request for unknown model: '${model}' version ${version} is not found`);
    }
    this.infers.push({ model, version, call });
    return this.answer(model, version, call);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A Triton JSON config of a batching model with one FP32 input and output. */
export function fakeConfig(name: string, maxBatchSize = 8): Record<string, unknown> {
  return {
    name,
    platform: '',
    backend: 'python',
    max_batch_size: maxBatchSize,
    input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [2] }],
    output: [{ name: 'OUT_X', data_type: 'TYPE_FP32', dims: [2] }],
    version_policy: { latest: { num_versions: 1 } },
  };
}
