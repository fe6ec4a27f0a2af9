import assert from 'node:assert/strict';
import type { Backend, BackendRequest, BackendResponse, LoadedVersion, RemoteModel } from '../src/backends/backend.js';
import { BackendSet } from '../src/backends/backend-set.js';
import { ErrorCode, InferneoError, NotFoundError } from '../src/errors.js';

/** A backend that records its calls and holds what it loaded. */
class Recorder implements Backend {
  readonly calls: string[] = [];
  readonly loaded = new Set<string>();
  closed = false;
  describe?: (model: string) => Promise<RemoteModel>;

  constructor(readonly name: string) {}

  async load(model: string, version: string): Promise<LoadedVersion> {
    this.calls.push(`load ${model} ${version}`);
    this.loaded.add(`${model}/${version}`);
    return { platform: this.name, backend: this.name, maxBatchSize: 0, inputs: [], outputs: [] };
  }

  async unload(model: string, version: string): Promise<void> {
    this.calls.push(`unload ${model} ${version}`);
    this.loaded.delete(`${model}/${version}`);
  }

  isServing(model: string, version: string): boolean {
    return this.loaded.has(`${model}/${version}`);
  }

  loadedVersions(): { model: string; version: string }[] {
    return [...this.loaded].map((k) => ({ model: k.split('/')[0]!, version: k.split('/')[1]! }));
  }

  async infer(model: string, version: string, requests: BackendRequest[]): Promise<BackendResponse[]> {
    this.calls.push(`infer ${model} ${version}`);
    return requests.map(() => ({ outputs: [] }));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('backend-set', () => {
  const kinds = new Map<string, string>([
    ['py', 'python'],
    ['tri', 'triton'],
  ]);
  const kindOf = (model: string): string => kinds.get(model) ?? 'python';

  it("sends every call to the backend of the version's kind", async () => {
    const python = new Recorder('python');
    const triton = new Recorder('triton');
    const set = new BackendSet({ python, triton }, kindOf);
    assert.equal((await set.load('py', '1')).backend, 'python');
    assert.equal((await set.load('tri', '1')).backend, 'triton');
    await set.infer('tri', '1', [{ inputs: [] }]);
    await set.infer('py', '1', [{ inputs: [] }]);
    assert.deepEqual(python.calls, ['load py 1', 'infer py 1']);
    assert.deepEqual(triton.calls, ['load tri 1', 'infer tri 1']);
    assert.ok(set.isServing('tri', '1') && set.isServing('py', '1') && !set.isServing('tri', '2'));
    assert.deepEqual(set.loadedVersions(), [
      { model: 'py', version: '1' },
      { model: 'tri', version: '1' },
    ]);
    assert.equal(set.get('triton'), triton);
    await set.close();
    assert.ok(python.closed && triton.closed);
  });

  it('unloads from the backend of the kind and from any other backend that still holds the version', async () => {
    const python = new Recorder('python');
    const triton = new Recorder('triton');
    const set = new BackendSet({ python, triton }, kindOf);
    await python.load('tri', '1'); // e.g. loaded before the model moved to Triton
    await set.load('tri', '1');
    await set.unload('tri', '1');
    assert.deepEqual(python.loaded.size + triton.loaded.size, 0);
    await set.unload('py', '9');
    assert.deepEqual(python.calls.at(-1), 'unload py 9');
  });

  it("asks the version's backend for its in-flight limit, the instance count when it has no opinion", () => {
    const python = new Recorder('python');
    const triton = Object.assign(new Recorder('triton'), { inflightLimit: (_m: string, _v: string, n: number) => n * 4 });
    const set = new BackendSet({ python, triton }, kindOf);
    assert.equal(set.inflightLimit('tri', '1', 2), 8);
    assert.equal(set.inflightLimit('py', '1', 2), 2);
    assert.equal(new BackendSet({ python }, kindOf).inflightLimit('tri', '1', 3), 3);
  });

  it("asks the version's backend whether it is available now, falling back to isServing", async () => {
    const python = new Recorder('python');
    const triton = Object.assign(new Recorder('triton'), { isAvailable: () => false });
    const set = new BackendSet({ python, triton }, kindOf);
    await set.load('py', '1');
    await set.load('tri', '1');
    assert.ok(set.isAvailable('py', '1') && !set.isAvailable('py', '2'));
    assert.ok(!set.isAvailable('tri', '1'));
    assert.ok(!new BackendSet({ python }, kindOf).isAvailable('tri', '1'));
  });

  it('fails versions of a kind that is not configured with UNAVAILABLE and a hint', async () => {
    const set = new BackendSet({ python: new Recorder('python'), triton: undefined }, kindOf);
    await assert.rejects(set.load('tri', '1'), (err: InferneoError) => err.code === ErrorCode.UNAVAILABLE && /served by the triton backend, which is not configured \(set triton.endpoints/.test(err.message));
    await assert.rejects(set.infer('tri', '1', []), /not configured/);
    assert.equal(set.isServing('tri', '1'), false);
    await set.unload('tri', '1');
  });

  it('asks the backends that have a repository of their own to describe a model', async () => {
    const python = new Recorder('python');
    const first = new Recorder('triton-a');
    first.describe = async (m) => {
      throw new NotFoundError(`no ${m}`);
    };
    const second = new Recorder('triton-b');
    second.describe = async () => ({ config: { name: 'm' }, versions: ['1'] });
    assert.deepEqual(await new BackendSet({ python, a: first, b: second }, kindOf).describe('m'), { config: { name: 'm' }, versions: ['1'] });
    await assert.rejects(new BackendSet({ python, a: first }, kindOf).describe('m'), /no m/);
    await assert.rejects(new BackendSet({ python }, kindOf).describe('m'), (err: InferneoError) => err.code === ErrorCode.UNAVAILABLE && /no backend with a model repository/.test(err.message));
  });
});
