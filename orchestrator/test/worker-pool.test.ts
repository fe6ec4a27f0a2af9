import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as zmq from 'zeromq';
import { PythonBackend } from '../src/backends/python/python-backend.js';
import { decodeMessage, encodeMessage } from '../src/backends/python/wire.js';
import { WorkerPool } from '../src/backends/python/worker-pool.js';
import { WorkerState } from '../src/backends/python/worker-session.js';

/**
 * The orchestrator's side of the worker protocol, driven by a DEALER socket that this test speaks
 * through frame by frame, so that every protocol path (including misbehaving peers) is exercised.
 * The real Python worker is tested against the real orchestrator in tests/.
 */
class Peer {
  readonly socket: zmq.Dealer;
  constructor(readonly id: string) {
    this.socket = new zmq.Dealer({ routingId: id, linger: 0 });
  }
  connect(endpoint: string): void {
    this.socket.connect(endpoint);
  }
  async send(message: object): Promise<void> {
    await this.socket.send(encodeMessage(message));
  }
  async receive(): Promise<Record<string, unknown>> {
    const [frame] = await this.socket.receive();
    return decodeMessage(frame!);
  }
  hello(extra: object = {}): Promise<void> {
    return this.send({ type: 'hello', worker_id: this.id, pid: 1, protocol: 1, capacity: 2, models: ['*'], loaded: [], memory_budget_bytes: 0, ...extra });
  }
  close(): void {
    this.socket.close();
  }
}

describe('worker-pool', () => {
  let pool: WorkerPool;
  const peers: Peer[] = [];
  const peer = (id: string): Peer => {
    const p = new Peer(`${id}-${process.pid}-${peers.length}`);
    p.connect(pool.endpoint);
    peers.push(p);
    return p;
  };

  beforeEach(async () => {
    pool = new WorkerPool({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300 });
    await pool.start();
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) p.close();
    await pool.close();
  });

  it('acknowledges hello and heartbeats, and asks unknown workers to say hello', async () => {
    const p = peer('w');
    await p.send({ type: 'heartbeat', worker_id: p.id, inflight: 0, loaded: [], rss_bytes: 1 });
    assert.deepEqual(await p.receive(), { type: 'error', code: 'UNKNOWN_WORKER', message: 'say hello first' });
    const connected = once(pool, 'worker-connected');
    await p.hello();
    assert.deepEqual(await p.receive(), { type: 'hello', protocol: 1, heartbeat_interval_ms: 50 });
    const [session] = await connected;
    assert.equal(session.id, p.id);
    assert.equal(session.capacity, 2);
    await p.send({ type: 'heartbeat', worker_id: p.id, inflight: 0, loaded: [], rss_bytes: 1234 });
    assert.deepEqual(await p.receive(), { type: 'heartbeat' });
    assert.equal(pool.session(p.id)!.rssBytes, 1234);
  });

  it('ignores a hello of another protocol version and unreadable frames', async () => {
    const p = peer('old');
    await p.hello({ protocol: 99 });
    await p.socket.send(Buffer.from([0xc1]));
    await p.send({ type: 'nonsense' });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pool.sessions().length, 0);
  });

  it('correlates replies with requests and translates worker errors', async () => {
    const p = peer('w');
    await p.hello();
    await p.receive();
    const session = pool.session(p.id)!;
    const first = pool.request(session, { type: 'stats' }, 1000);
    const second = pool.request(session, { type: 'stats' }, 1000);
    const a = await p.receive();
    const b = await p.receive();
    assert.equal(session.inflight, 2);
    await p.send({ type: 'error', id: b['id'], code: 'NOT_FOUND', message: 'no model x' });
    await p.send({ type: 'result', id: a['id'], rss_bytes: 7 });
    await p.send({ type: 'result', id: 12345 }); // unknown id: ignored
    assert.equal((await first)['rss_bytes'], 7);
    await assert.rejects(second, { code: 'NOT_FOUND', message: 'no model x' });
    assert.equal(session.inflight, 0);
  });

  it('times a request out with DEADLINE_EXCEEDED', async () => {
    const p = peer('slow');
    await p.hello();
    await p.receive();
    await assert.rejects(pool.request(pool.session(p.id)!, { type: 'infer' }, 50), { code: 'DEADLINE_EXCEEDED' });
  });

  it('declares a silent worker dead and fails its in-flight requests with UNAVAILABLE', async () => {
    const p = peer('silent');
    await p.hello();
    await p.receive();
    const session = pool.session(p.id)!;
    const lost = once(pool, 'worker-lost');
    const pending = pool.request(session, { type: 'infer' }, 0);
    await assert.rejects(pending, (err: Error & { code: string }) => {
      assert.equal(err.code, 'UNAVAILABLE');
      assert.match(err.message, /was lost while running the request: no heartbeat for 300 ms/);
      return true;
    });
    const [, reason] = await lost;
    assert.match(reason, /no heartbeat/);
    assert.equal(session.state, WorkerState.LOST);
    assert.equal(pool.sessions().length, 0);
    await assert.rejects(pool.request(session, { type: 'stats' }, 0), { code: 'UNAVAILABLE' });
  });

  it('treats a hello from a new process as a restart: the old incarnation loses its requests', async () => {
    const p = peer('again');
    await p.hello();
    await p.receive();
    const pending = pool.request(pool.session(p.id)!, { type: 'infer' }, 0);
    await p.receive();
    await p.hello({ pid: 2 });
    await assert.rejects(pending, /said hello again/);
    assert.equal(pool.sessions().length, 1);
    assert.equal(pool.session(p.id)!.pid, 2);
  });

  it('treats a repeated hello from the same process as re-registration: nothing is lost', async () => {
    const p = peer('same');
    await p.hello();
    await p.receive();
    const session = pool.session(p.id)!;
    const pending = pool.request(session, { type: 'stats' }, 1000);
    const request = await p.receive();
    await p.hello();
    assert.deepEqual(await p.receive(), { type: 'hello', protocol: 1, heartbeat_interval_ms: 50 });
    assert.equal(pool.session(p.id), session);
    await p.send({ type: 'result', id: request['id'], rss_bytes: 1 });
    assert.equal((await pending)['rss_bytes'], 1);
  });

  it('rejects bad heartbeat settings', () => {
    assert.throws(() => new WorkerPool({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 100 }), /must be larger/);
  });

  describe('python-backend on the pool', () => {
    it('loads on connected workers, routes to the least busy, and unloads', async () => {
      const backend = new PythonBackend(pool, { requestTimeoutMs: 1000, loadTimeoutMs: 1000 });
      await assert.rejects(backend.load('m', '1'), { code: 'UNAVAILABLE' });
      await assert.rejects(backend.infer('m', '1', []), /none is connected/);
      const p = peer('b');
      await p.hello({ models: ['m'] });
      await p.receive();
      await assert.rejects(backend.load('other', '1'), /may host model 'other'/);
      const loading = backend.load('m', '1');
      const load = await p.receive();
      assert.equal(load['type'], 'load');
      await p.send({
        type: 'result',
        id: load['id'],
        model: 'm',
        version: '1',
        metadata: { platform: 'x', backend: 'python', max_batch_size: 4, inputs: [{ name: 'a', datatype: 'FP32', shape: [-1, 2] }], outputs: [] },
      });
      const loaded = await loading;
      assert.equal(loaded.maxBatchSize, 4);
      assert.deepEqual(loaded.inputs, [{ name: 'a', datatype: 'FP32', shape: [-1, 2] }]);
      assert.ok(backend.isServing('m', '1'));
      await assert.rejects(backend.infer('m', '2', []), { code: 'MODEL_NOT_READY' });

      const data = Buffer.from(new Float32Array([1, 2]).buffer);
      const inferring = backend.infer('m', '1', [{ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 2], data }] }, { inputs: [] }]);
      const infer = await p.receive();
      const requests = infer['requests'] as { inputs: { data: Buffer }[] }[];
      assert.ok(Buffer.isBuffer(requests[0]!.inputs[0]!.data));
      assert.deepEqual(requests[0]!.inputs[0]!.data, data);
      await p.send({
        type: 'result',
        id: infer['id'],
        responses: [{ outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: Buffer.from(new Float32Array([3]).buffer) }] }, { error: { code: 'INVALID_ARGUMENT', message: 'row bad' } }],
      });
      const [ok, bad] = await inferring;
      assert.ok(ok && 'outputs' in ok);
      assert.equal(ok.outputs[0]!.data.readFloatLE(0), 3);
      assert.ok(bad && 'error' in bad);
      assert.equal(bad.error.message, 'row bad');

      const wrong = backend.infer('m', '1', [{ inputs: [] }]);
      const w = await p.receive();
      await p.send({ type: 'result', id: w['id'], responses: [] });
      await assert.rejects(wrong, /answered 0 responses for 1 requests/);

      const unloading = backend.unload('m', '1');
      assert.ok(!backend.isServing('m', '1'));
      const unload = await p.receive();
      assert.equal(unload['type'], 'unload');
      await p.send({ type: 'result', id: unload['id'], model: 'm', version: '1' });
      await unloading;
    });

    it('reports LOAD_FAILED with the worker reason, and loads wanted versions on workers that connect later', async () => {
      const backend = new PythonBackend(pool, { loadTimeoutMs: 1000 });
      const first = peer('f');
      await first.hello();
      await first.receive();
      const failing = backend.load('m', '1');
      const load = await first.receive();
      await first.send({ type: 'error', id: load['id'], code: 'LOAD_FAILED', message: 'bad onnx file' });
      await assert.rejects(failing, { code: 'LOAD_FAILED', message: 'bad onnx file' });

      const loading = backend.load('m', '2');
      const load2 = await first.receive();
      await first.send({ type: 'result', id: load2['id'], metadata: {} });
      await loading;
      const late = peer('late');
      await late.hello();
      await late.receive();
      const replay = await late.receive();
      assert.deepEqual([replay['type'], replay['model'], replay['version']], ['load', 'm', '2']);
      await late.send({ type: 'result', id: replay['id'], metadata: {} });
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(pool.session(late.id)!.state, WorkerState.READY);
      assert.ok(pool.session(late.id)!.loaded.size === 1);
    });
  });
});
