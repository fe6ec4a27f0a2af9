import assert from 'node:assert/strict';
import type { BackendRequest } from '../src/backends/backend.js';
import { TritonBackend } from '../src/backends/triton/triton-backend.js';
import type { TritonBackendOptions } from '../src/backends/triton/triton-options.js';
import { ErrorCode, InferneoError } from '../src/errors.js';
import type { Tensor } from '../src/protocol/tensor.js';
import { ManualClock } from '../src/scheduling/clock.js';
import { fakeConfig, FakeTritonClient } from './fake-triton-client.js';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Settles `p`, moving the manual clock in small steps (for backoff sleeps and breaker timers). */
async function drive<T>(clock: ManualClock, p: Promise<T>, stepMs = 10): Promise<T> {
  let settled = false;
  const done = p.finally(() => (settled = true));
  done.catch(() => undefined);
  for (let i = 0; i < 10_000 && !settled; i++) {
    await flush();
    if (!settled) clock.advance(stepMs);
  }
  return done;
}

async function rejection(p: Promise<unknown>): Promise<InferneoError> {
  try {
    await p;
  } catch (err) {
    return err as InferneoError;
  }
  assert.fail('expected a rejection');
}

function rows(n: number, seed = 1): Tensor {
  const data = Buffer.from(new Float32Array(Array.from({ length: n * 2 }, (_, i) => seed * 100 + i)).buffer);
  return { name: 'X', datatype: 'FP32', shape: [n, 2], data };
}

interface Setup {
  clock: ManualClock;
  clients: FakeTritonClient[];
  backend: TritonBackend;
  logs: string[];
}

function setup(options: Partial<TritonBackendOptions> = {}, endpoints = ['http://t1:8000']): Setup {
  const clock = new ManualClock();
  const clients: FakeTritonClient[] = [];
  const logs: string[] = [];
  const backend = new TritonBackend(
    { endpoints, breaker: { failures: 3, cooldownMs: 1000 }, retry: { retries: 2, backoffMs: 50, maxBackoffMs: 200 }, ...options },
    {
      clock,
      random: () => 0.5,
      log: (m) => logs.push(m),
      createClient: (endpoint) => {
        const c = new FakeTritonClient(endpoint);
        c.add('m', { config: fakeConfig('m'), versions: ['1', '2', '3'], broken: ['3'], policy: ['2'] });
        c.add('single', { config: fakeConfig('single', 0), versions: ['1'] });
        c.add('broken', { config: fakeConfig('broken'), versions: ['1'], broken: ['1'] });
        clients.push(c);
        return c;
      },
    },
  );
  return { clock, clients, backend, logs };
}

describe('triton-backend', () => {
  describe('model control', () => {
    it('learns the config with a plain load, then loads exactly the wanted versions (version_policy specific)', async () => {
      const { backend, clients } = setup();
      const loaded = await backend.load('m', '1');
      assert.deepEqual(clients[0]!.loads, [
        { model: 'm', versions: 'own policy' },
        { model: 'm', versions: ['1'] },
      ]);
      assert.deepEqual(clients[0]!.readyVersions('m'), ['1']);
      assert.equal(loaded.maxBatchSize, 8);
      assert.equal(loaded.platform, 'python');
      assert.deepEqual(loaded.inputs, [{ name: 'X', datatype: 'FP32', shape: [-1, 2] }]);
      assert.deepEqual(loaded.outputs, [{ name: 'OUT_X', datatype: 'FP32', shape: [-1, 2] }]);
      assert.equal(loaded.config?.['name'], 'm');
      assert.ok(backend.isServing('m', '1'));
      assert.ok(!backend.isServing('m', '2'));
      // Loading it again changes nothing in Triton.
      await backend.load('m', '1');
      assert.equal(clients[0]!.loads.length, 2);
    });

    it('maps versions one to one, and reloads the model with the new set on load and unload', async () => {
      const { backend, clients } = setup();
      await Promise.all([backend.load('m', '1'), backend.load('m', '2')]);
      assert.deepEqual(clients[0]!.readyVersions('m').sort(), ['1', '2']);
      assert.deepEqual(backend.loadedVersions(), [
        { model: 'm', version: '1' },
        { model: 'm', version: '2' },
      ]);
      await backend.unload('m', '1');
      assert.deepEqual(clients[0]!.readyVersions('m'), ['2']);
      assert.deepEqual(clients[0]!.loads.at(-1), { model: 'm', versions: ['2'] });
      assert.ok(!backend.isServing('m', '1'));
      await backend.unload('m', '2');
      assert.equal(clients[0]!.state.has('m'), false, 'the last version unloads the model');
      assert.deepEqual(backend.loadedVersions(), []);
      // Unloading what is not loaded succeeds.
      await backend.unload('m', '2');
      await backend.unload('other', '1');
    });

    it("fails a version Triton refuses with LOAD_FAILED and Triton's message; the other versions keep serving", async () => {
      const { backend, clients } = setup();
      await backend.load('m', '1');
      const err = await rejection(backend.load('m', '3'));
      assert.equal(err.code, ErrorCode.LOAD_FAILED);
      assert.match(err.message, /Triton failed to load model 'm' version 3: http:\/\/t1:8000: .*m v3 cannot start At: model\.py\(8\): initialize/);
      assert.ok(!err.message.includes('\n'), 'one line');
      assert.ok(backend.isServing('m', '1'));
      assert.ok(!backend.isServing('m', '3'));
      assert.deepEqual(clients[0]!.readyVersions('m'), ['1']);
      // A version Triton's repository does not have.
      const missing = await rejection(backend.load('m', '9'));
      assert.equal(missing.code, ErrorCode.LOAD_FAILED);
      assert.match(missing.message, /version 9/);
    });

    it('fails a model Triton cannot load at all, and one its repository does not hold', async () => {
      const { backend } = setup();
      const broken = await rejection(backend.load('broken', '1'));
      assert.equal(broken.code, ErrorCode.LOAD_FAILED);
      assert.match(broken.message, /broken v1 cannot start/);
      assert.ok(!backend.isServing('broken', '1'));
      const absent = await rejection(backend.load('absent', '1'));
      assert.equal(absent.code, ErrorCode.LOAD_FAILED);
      assert.match(absent.message, /failed to poll from model repository/);
    });

    it('keeps inflight_per_instance executions per instance and endpoint in flight (Triton queues by itself)', () => {
      assert.equal(setup().backend.inflightLimit('m', '1', 2), 8);
      assert.equal(setup({ inflightPerInstance: 3 }, ['http://t1:8000', 'http://t2:8000']).backend.inflightLimit('m', '1', 1), 6);
    });

    it('refuses versions that are not integers', async () => {
      const { backend } = setup();
      const err = await rejection(backend.load('m', 'v1'));
      assert.equal(err.code, ErrorCode.LOAD_FAILED);
      assert.match(err.message, /integers/);
    });

    it('fails a load with UNAVAILABLE when no endpoint can be reached, and counts it against the circuit', async () => {
      const { backend, clients } = setup();
      clients[0]!.down = true;
      const err = await rejection(backend.load('m', '1'));
      assert.equal(err.code, ErrorCode.UNAVAILABLE);
      assert.match(err.message, /cannot load model 'm' version 1: http:\/\/t1:8000: .*ECONNREFUSED/);
      assert.equal(backend.endpointStates()[0]!.lastError?.includes('ECONNREFUSED'), true);
      assert.ok(!backend.isServing('m', '1'));
    });

    it('describes a model of Triton’s repository: its config and the versions its own policy serves', async () => {
      const { backend, clients } = setup();
      const described = await backend.describe('m');
      assert.deepEqual(described.versions, ['2']);
      assert.equal(described.config['max_batch_size'], 8);
      assert.equal(clients[0]!.state.has('m'), false, 'loaded to look, unloaded again');
      // Already loaded: read, not loaded again.
      await backend.load('m', '1');
      const loads = clients[0]!.loads.length;
      assert.deepEqual((await backend.describe('m')).versions, ['1']);
      assert.equal(clients[0]!.loads.length, loads);
      assert.equal((await rejection(backend.describe('nope'))).code, ErrorCode.NOT_FOUND);
      const broken = await rejection(backend.describe('broken'));
      assert.equal(broken.code, ErrorCode.LOAD_FAILED);
      assert.match(broken.message, /cannot load model 'broken', so its configuration is unknown: .*cannot start/);
      assert.deepEqual(await backend.repositoryModels(), ['broken', 'm', 'single']);
    });

    it('lists the repository of the first endpoint that answers', async () => {
      const { backend, clients } = setup({}, ['http://t1:8000', 'http://t2:8000']);
      clients[0]!.down = true;
      assert.deepEqual(await backend.repositoryModels(), ['broken', 'm', 'single']);
      clients[1]!.down = true;
      assert.equal((await rejection(backend.repositoryModels())).code, ErrorCode.UNAVAILABLE);
    });
  });

  describe('inference', () => {
    it('sends a batch as ONE Triton request (rows concatenated) and splits the outputs per request', async () => {
      const { backend, clients } = setup();
      await backend.load('m', '1');
      const requests: BackendRequest[] = [{ inputs: [rows(1, 1)] }, { inputs: [rows(3, 2)] }, { inputs: [rows(2, 3)] }];
      const responses = await backend.infer('m', '1', requests);
      assert.equal(clients[0]!.infers.length, 1);
      assert.deepEqual(clients[0]!.infers[0]!.call.inputs[0]!.shape, [6, 2]);
      responses.forEach((r, i) => {
        assert.ok('outputs' in r);
        assert.deepEqual(r.outputs[0]!.shape, requests[i]!.inputs[0]!.shape);
        assert.deepEqual(r.outputs[0]!.data, requests[i]!.inputs[0]!.data);
      });
    });

    it('sends requests one by one when they cannot be merged or the model does not batch', async () => {
      const { backend, clients } = setup();
      await backend.load('m', '1');
      await backend.infer('m', '1', [{ inputs: [rows(1)], outputs: ['OUT_X'] }, { inputs: [rows(1)] }]);
      assert.equal(clients[0]!.infers.length, 2);
      assert.deepEqual(clients[0]!.infers[0]!.call.outputs, ['OUT_X']);
      const other: Tensor = { name: 'Y', datatype: 'FP32', shape: [1, 2], data: rows(1).data };
      await backend.infer('m', '1', [{ inputs: [rows(1)] }, { inputs: [other] }]);
      await backend.infer('m', '1', [{ inputs: [rows(1)] }, { inputs: [rows(1), other] }]);
      assert.equal(clients[0]!.infers.length, 6);
      await backend.load('single', '1');
      await backend.infer('single', '1', [{ inputs: [rows(1)] }, { inputs: [rows(1)] }]);
      assert.equal(clients[0]!.infers.length, 8);
    });

    it('merges requests whose inputs come in another order', async () => {
      const { backend, clients } = setup();
      await backend.load('m', '1');
      const y = (n: number): Tensor => ({ name: 'Y', datatype: 'FP32', shape: [n, 2], data: rows(n).data });
      const responses = await backend.infer('m', '1', [{ inputs: [rows(1), y(1)] }, { inputs: [y(2), rows(2)] }]);
      assert.equal(clients[0]!.infers.length, 1);
      assert.deepEqual(
        clients[0]!.infers[0]!.call.inputs.map((t) => [t.name, t.shape[0]]),
        [
          ['X', 3],
          ['Y', 3],
        ],
      );
      assert.equal(responses.length, 2);
    });

    it('reruns a failed batch request by request, so that only the bad request fails', async () => {
      const { backend, clients } = setup();
      await backend.load('m', '1');
      clients[0]!.answer = async (_m, _v, call) => {
        const data = call.inputs[0]!.data;
        const values = Array.from({ length: data.length / 4 }, (_, i) => data.readFloatLE(i * 4));
        if (values.includes(300)) throw new InferneoError(ErrorCode.INVALID_ARGUMENT, 'Triton http://t1:8000: bad row');
        return call.inputs;
      };
      const responses = await backend.infer('m', '1', [{ inputs: [rows(1, 1)] }, { inputs: [rows(1, 3)] }, { inputs: [rows(1, 2)] }]);
      assert.equal(clients[0]!.infers.length, 4);
      assert.ok('outputs' in responses[0]!);
      assert.ok('error' in responses[1]! && responses[1].error.code === ErrorCode.INVALID_ARGUMENT);
      assert.ok('outputs' in responses[2]!);
    });

    it('rejects the whole batch on an endpoint failure instead of rerunning it', async () => {
      const { backend, clients, clock } = setup({ retry: { retries: 0 } });
      await backend.load('m', '1');
      clients[0]!.answer = async () => {
        throw new InferneoError(ErrorCode.DEADLINE_EXCEEDED, 'Triton http://t1:8000 did not answer within 60000 ms');
      };
      const err = await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }, { inputs: [rows(1)] }])));
      assert.equal(err.code, ErrorCode.DEADLINE_EXCEEDED);
      assert.equal(clients[0]!.infers.length, 1, 'timeouts are not retried');
      assert.equal(backend.endpointStates()[0]!.state, 'closed');
    });

    it('rejects with MODEL_NOT_READY for a version no endpoint holds', async () => {
      const { backend } = setup();
      const err = await rejection(backend.infer('m', '1', [{ inputs: [rows(1)] }]));
      assert.equal(err.code, ErrorCode.MODEL_NOT_READY);
    });

    it('loads a model Triton lost (restart between requests) again, and retries', async () => {
      const { backend, clients, logs } = setup();
      await backend.load('m', '1');
      clients[0]!.restart();
      const [r] = await backend.infer('m', '1', [{ inputs: [rows(1)] }]);
      assert.ok(r !== undefined && 'outputs' in r);
      assert.deepEqual(clients[0]!.readyVersions('m'), ['1']);
      assert.ok(logs.some((l) => /does not have model m v1 any more/.test(l)));
    });
  });

  describe('retries and the circuit breaker', () => {
    it('retries UNAVAILABLE with exponential backoff and succeeds when the endpoint comes back', async () => {
      const { backend, clients, clock } = setup({ retry: { retries: 3, backoffMs: 100, maxBackoffMs: 1000 }, breaker: { failures: 10 } });
      await backend.load('m', '1');
      let failures = 2;
      const attempts: number[] = [];
      clients[0]!.answer = async (_m, _v, call) => {
        attempts.push(clock.now());
        if (failures-- > 0) throw new InferneoError(ErrorCode.UNAVAILABLE, 'Triton http://t1:8000 cannot be reached: socket hang up');
        return call.inputs;
      };
      const [r] = await drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }]), 5);
      assert.ok(r !== undefined && 'outputs' in r);
      // random() = 0.5 → 75 % of the ceiling: 75 ms, then 150 ms.
      assert.deepEqual(
        attempts.map((t, i) => (i === 0 ? 0 : Math.round(t - attempts[i - 1]!))),
        [0, 75, 150],
      );
      assert.equal(backend.endpointStates()[0]!.state, 'closed');
    });

    it('gives up after the retries with the last error and the attempts made', async () => {
      const { backend, clients, clock } = setup({ breaker: { failures: 10 } });
      await backend.load('m', '1');
      clients[0]!.down = true;
      const err = await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }])));
      assert.equal(err.code, ErrorCode.UNAVAILABLE);
      assert.match(err.message, /ECONNREFUSED \(after 3 attempts\)/);
    });

    it('opens the circuit after N consecutive failures: calls then fail fast with 503 naming the endpoint and the last error', async () => {
      const { backend, clients, clock } = setup();
      await backend.load('m', '1');
      assert.ok(backend.isAvailable('m', '1') && !backend.isAvailable('m', '2'));
      clients[0]!.down = true;
      const first = await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }])));
      assert.equal(first.code, ErrorCode.UNAVAILABLE);
      assert.equal(first.httpStatus, 503);
      assert.match(first.message, /^Triton endpoint http:\/\/t1:8000 is unavailable \(circuit open after 3 consecutive failure\(s\); next probe in \d+ ms\): .*ECONNREFUSED/);
      const calls = clients[0]!.calls.length;
      const fast = await rejection(backend.infer('m', '1', [{ inputs: [rows(1)] }]));
      assert.equal(fast.code, ErrorCode.UNAVAILABLE);
      assert.match(fast.message, /circuit open/);
      assert.equal(clients[0]!.calls.length, calls, 'no call reached the endpoint');
      // Still loaded as far as the registry is concerned: requests get UNAVAILABLE, not a reload;
      // but not available, so the model-ready endpoints say not ready.
      assert.ok(backend.isServing('m', '1'));
      assert.ok(!backend.isAvailable('m', '1'));
      // Loads fail fast too.
      assert.equal((await rejection(backend.load('m', '2'))).code, ErrorCode.UNAVAILABLE);
    });

    it('probes after the cool-down and, once Triton is back, loads what it lost and closes the circuit by itself', async () => {
      const { backend, clients, clock } = setup();
      const states: string[] = [];
      backend.on('circuit', (_e, state) => states.push(state));
      await backend.load('m', '1');
      await backend.load('m', '2');
      clients[0]!.down = true;
      await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }])));
      assert.deepEqual(states, ['open']);
      // The first probe finds it still down: open again, with the probe's failure as the reason.
      clock.advance(1000);
      await flush();
      assert.deepEqual(states, ['open', 'half-open', 'open']);
      assert.match((await rejection(backend.infer('m', '1', [{ inputs: [rows(1)] }]))).message, /probe failed: .*ECONNREFUSED/);
      // Back, restarted with nothing loaded; not ready at first.
      clients[0]!.down = false;
      clients[0]!.restart();
      clients[0]!.ready = false;
      clock.advance(1000);
      await flush();
      assert.equal(backend.endpointStates()[0]!.state, 'open');
      clients[0]!.ready = true;
      clock.advance(1000);
      for (let i = 0; i < 5; i++) await flush();
      assert.equal(backend.endpointStates()[0]!.state, 'closed');
      assert.deepEqual(clients[0]!.readyVersions('m').sort(), ['1', '2']);
      const [r] = await backend.infer('m', '2', [{ inputs: [rows(1)] }]);
      assert.ok(r !== undefined && 'outputs' in r);
    });

    it('brings an endpoint that missed an unload in line when it recovers, and says what it could not load', async () => {
      const { backend, clients, clock, logs } = setup();
      await backend.load('m', '1');
      await backend.load('m', '2');
      clients[0]!.down = true;
      await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }])));
      await backend.unload('m', '1');
      assert.ok(!backend.isServing('m', '1'));
      // Back without its state, and v2 now fails to load: the endpoint recovers all the same.
      clients[0]!.down = false;
      clients[0]!.restart();
      clients[0]!.repository.get('m')!.broken = ['2'];
      clock.advance(1000);
      for (let i = 0; i < 5; i++) await flush();
      assert.equal(backend.endpointStates()[0]!.state, 'closed');
      assert.deepEqual(clients[0]!.loads.at(-1), { model: 'm', versions: ['2'] });
      assert.ok(logs.some((l) => /came back without model m v2: .*m v2 cannot start/.test(l)), logs.join('\n'));
      assert.ok(!backend.isServing('m', '2'));
    });
  });

  describe('several endpoints', () => {
    it('loads on every endpoint and sends each call to the one with the fewest requests in flight', async () => {
      const { backend, clients } = setup({}, ['http://t1:8000', 'http://t2:8000']);
      await backend.load('m', '1');
      assert.deepEqual(
        clients.map((c) => c.readyVersions('m')),
        [['1'], ['1']],
      );
      const gates: (() => void)[] = [];
      for (const c of clients) {
        c.answer = (_m, _v, call) => new Promise((resolve) => gates.push(() => resolve(call.inputs)));
      }
      const calls = [0, 1, 2, 3].map(() => backend.infer('m', '1', [{ inputs: [rows(1)] }]));
      await flush();
      assert.deepEqual(
        clients.map((c) => c.infers.length),
        [2, 2],
        'spread evenly',
      );
      assert.deepEqual(
        backend.endpointStates().map((s) => s.outstanding),
        [2, 2],
      );
      gates.forEach((g) => g());
      await Promise.all(calls);
      assert.deepEqual(
        backend.endpointStates().map((s) => s.outstanding),
        [0, 0],
      );
    });

    it('routes around an endpoint whose circuit is open, and retries a failed call on another endpoint', async () => {
      const { backend, clients, clock } = setup({ breaker: { failures: 1 } }, ['http://t1:8000', 'http://t2:8000']);
      await backend.load('m', '1');
      clients[0]!.down = true;
      for (let i = 0; i < 4; i++) {
        const [r] = await drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }]));
        assert.ok(r !== undefined && 'outputs' in r);
      }
      assert.deepEqual(
        backend.endpointStates().map((s) => s.state),
        ['open', 'closed'],
      );
      assert.equal(clients[1]!.infers.length, 4);
      // A load with one endpoint down succeeds on the other.
      await backend.load('m', '2');
      assert.deepEqual(clients[1]!.readyVersions('m').sort(), ['1', '2']);
      clients[1]!.down = true;
      const err = await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }])));
      assert.match(err.message, /every Triton endpoint is unavailable: Triton endpoint http:\/\/t1:8000 .*; Triton endpoint http:\/\/t2:8000/);
    });

    it('serves from the endpoints that loaded a version when another refused it, and says so', async () => {
      const { backend, clients, logs } = setup({}, ['http://t1:8000', 'http://t2:8000']);
      clients[1]!.repository.get('m')!.broken = ['1'];
      await backend.load('m', '1');
      assert.ok(backend.isServing('m', '1'));
      assert.ok(logs.some((l) => /m v1 is not ready on Triton http:\/\/t2:8000/.test(l)));
    });
  });

  it('closes its clients and stops its timers; close is idempotent', async () => {
    const { backend, clients, clock } = setup();
    await backend.load('m', '1');
    clients[0]!.down = true;
    await rejection(drive(clock, backend.infer('m', '1', [{ inputs: [rows(1)] }])));
    await backend.close();
    await backend.close();
    assert.ok(clients[0]!.closed);
    assert.equal(clock.pendingTimers, 0);
  });

  it('uses the HTTP or gRPC client by protocol', async () => {
    const http = new TritonBackend({ endpoints: ['http://127.0.0.1:1'] });
    const grpc = new TritonBackend({ endpoints: ['127.0.0.1:1'], protocol: 'grpc' });
    assert.deepEqual(http.endpointStates()[0]!.endpoint, 'http://127.0.0.1:1');
    assert.deepEqual(grpc.endpointStates()[0]!.endpoint, '127.0.0.1:1');
    await Promise.all([http.close(), grpc.close()]);
  });
});
