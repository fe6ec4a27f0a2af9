import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import type { GenerationEvent } from '../src/backends/generation.js';
import { AsyncQueue } from '../src/backends/python/async-queue.js';
import { PythonBackend } from '../src/backends/python/python-backend.js';
import { decodeMessage, encodeMessage } from '../src/backends/python/wire.js';
import { WorkerPool } from '../src/backends/python/worker-pool.js';
import { CancelSource } from '../src/scheduling/cancel-signal.js';

/**
 * Streaming generation on the orchestrator's side of the worker protocol (`generate`, partial and
 * final `result`s, `cancel`), against a DEALER socket that plays the worker frame by frame.
 */
class FakeWorker {
  readonly socket: zmq.Dealer;
  constructor(readonly id: string) {
    this.socket = new zmq.Dealer({ routingId: id, linger: 0 });
  }
  async send(message: object): Promise<void> {
    await this.socket.send(encodeMessage(message));
  }
  async receive(): Promise<Record<string, unknown>> {
    const [frame] = await this.socket.receive();
    return decodeMessage(frame!);
  }
  /** Connects and says hello. */
  async connect(pool: WorkerPool): Promise<void> {
    this.socket.connect(pool.endpoint);
    await this.send({ type: 'hello', worker_id: this.id, pid: 1, protocol: 1, capacity: 1, models: ['*'], loaded: [], memory_budget_bytes: 0 });
    await this.receive();
  }
  /** Answers the `load` of `m` v1 as a decoupled model. */
  async answerLoad(maxSequences: number): Promise<void> {
    const load = await this.receive();
    await this.send({
      type: 'result',
      id: load['id'],
      model: 'm',
      version: '1',
      metadata: {
        platform: 'llama_cpp',
        backend: 'llama_cpp',
        max_batch_size: 0,
        inputs: [],
        outputs: [],
        generation: { context_length: 64, max_sequences: maxSequences, default_max_tokens: 8, chat_template: true },
      },
    });
  }
  close(): void {
    this.socket.close();
  }
}

async function collect(events: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe('python-backend generate (streamed worker results)', () => {
  let pool: WorkerPool;
  let backend: PythonBackend;
  const workers: FakeWorker[] = [];
  /** `count` workers connected, each with `m` v1 loaded. */
  const start = async (count = 1, maxSequences = 4): Promise<FakeWorker[]> => {
    const started: FakeWorker[] = [];
    for (let i = 0; i < count; i++) {
      const w = new FakeWorker(`gen-${process.pid}-${workers.length}`);
      workers.push(w);
      started.push(w);
      await w.connect(pool);
    }
    const loading = backend.load('m', '1');
    await Promise.all(started.map((w) => w.answerLoad(maxSequences)));
    await loading;
    return started;
  };

  beforeEach(async () => {
    pool = new WorkerPool({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 2000 });
    await pool.start();
    backend = new PythonBackend(pool, { requestTimeoutMs: 300, loadTimeoutMs: 1000 });
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) w.close();
    await pool.close();
  });

  it('streams partial results as deltas and the final result, and reports its capacity', async () => {
    assert.equal(backend.generationInfo('m', '1'), undefined);
    const [w] = (await start(1, 3)) as [FakeWorker];
    assert.deepEqual(backend.generationInfo('m', '1'), { info: { contextLength: 64, maxSequences: 3, defaultMaxTokens: 8, chatTemplate: true }, hosts: 1 });
    const done = collect(backend.generate('m', '1', { messages: [{ role: 'user', content: 'hi' }], parameters: { max_tokens: 2 } }));
    const request = await w.receive();
    assert.equal(request['type'], 'generate');
    assert.deepEqual(request['messages'], [{ role: 'user', content: 'hi' }]);
    assert.deepEqual(request['parameters'], { max_tokens: 2 });
    const id = request['id'];
    await w.send({ type: 'result', id, final: false, text: 'Hel', tokens: 1 });
    await w.send({ type: 'result', id, final: false, text: 'lo', tokens: 1 });
    await w.send({ type: 'result', id, final: true, text: '!', tokens: 0, finish_reason: 'length', usage: { prompt_tokens: 3, completion_tokens: 2 } });
    assert.deepEqual(await done, [
      { type: 'delta', text: 'Hel', tokens: 1 },
      { type: 'delta', text: 'lo', tokens: 1 },
      { type: 'final', text: '!', finishReason: 'length', usage: { prompt_tokens: 3, completion_tokens: 2 } },
    ]);
    assert.equal(pool.sessions()[0]!.inflight, 0);
    assert.equal(pool.sessions()[0]!.inflightByVersion.size, 0);
  });

  it('fails with the worker error, and with DEADLINE_EXCEEDED after a silence', async () => {
    const [w] = (await start()) as [FakeWorker];
    const failing = collect(backend.generate('m', '1', { prompt: 'x', parameters: {} }));
    const request = await w.receive();
    assert.equal(request['prompt'], 'x');
    await w.send({ type: 'error', id: request['id'], code: 'INVALID_ARGUMENT', message: 'prompt: too long' });
    await assert.rejects(failing, { code: 'INVALID_ARGUMENT', message: 'prompt: too long' });

    // Each partial result re-arms the timeout; only a silence longer than it fails the stream.
    const slow = collect(backend.generate('m', '1', { prompt: 'x', parameters: {} }));
    const second = await w.receive();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      await w.send({ type: 'result', id: second['id'], final: false, text: 'a', tokens: 1 });
    }
    await assert.rejects(slow, { code: 'DEADLINE_EXCEEDED' });
  });

  it('sends cancel when the caller leaves early or its signal fires', async () => {
    const [w] = (await start()) as [FakeWorker];
    const stream = backend.generate('m', '1', { prompt: 'x', parameters: {} })[Symbol.asyncIterator]();
    const pending = stream.next();
    const request = await w.receive();
    await w.send({ type: 'result', id: request['id'], final: false, text: 'a', tokens: 1 });
    assert.deepEqual((await pending).value, { type: 'delta', text: 'a', tokens: 1 });
    await stream.return(undefined);
    assert.deepEqual(await w.receive(), { type: 'cancel', id: request['id'] });
    // The worker's final result for the cancelled sequence arrives late and is ignored.
    await w.send({ type: 'result', id: request['id'], final: true, text: '', finish_reason: 'cancelled', usage: {} });

    const signal = new CancelSource();
    const cancelled = collect(backend.generate('m', '1', { prompt: 'y', parameters: {} }, signal));
    const second = await w.receive();
    signal.cancel();
    await assert.rejects(cancelled, { code: 'CANCELLED' });
    assert.deepEqual(await w.receive(), { type: 'cancel', id: second['id'] });
    assert.equal(pool.sessions()[0]!.inflight, 0);
  });

  it('spreads sequences over workers by the sequences each runs, and fails them when a worker is lost', async () => {
    await assert.rejects(collect(backend.generate('m', '1', { prompt: 'x', parameters: {} })), { code: 'MODEL_NOT_READY' });
    const [a, b] = (await start(2)) as [FakeWorker, FakeWorker];
    assert.equal(backend.generationInfo('m', '1')!.hosts, 2);
    const first = collect(backend.generate('m', '1', { prompt: '1', parameters: {} }));
    const second = collect(backend.generate('m', '1', { prompt: '2', parameters: {} }));
    const [ra, rb] = await Promise.all([a.receive(), b.receive()]);
    assert.equal(ra['type'], 'generate');
    assert.equal(rb['type'], 'generate');
    pool.markLost(a.id, 'test');
    await assert.rejects(ra['prompt'] === '1' ? first : second, { code: 'UNAVAILABLE' });
    await b.send({ type: 'result', id: rb['id'], final: true, text: 'ok', finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 1 } });
    assert.equal((await (rb['prompt'] === '1' ? first : second)).length, 1);
    await backend.unload('m', '1');
    assert.equal(backend.generationInfo('m', '1'), undefined);
  });
});

describe('AsyncQueue', () => {
  it('delivers what was pushed, in order, before ending or failing', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.push(2);
    setTimeout(() => {
      q.push(3);
      q.end();
      q.push(4); // after the end: dropped
    }, 10);
    const seen: number[] = [];
    for await (const n of q) seen.push(n);
    assert.deepEqual(seen, [1, 2, 3]);

    const failing = new AsyncQueue<string>();
    failing.push('a');
    failing.fail(new Error('boom'));
    failing.fail(new Error('ignored'));
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const s of failing) got.push(s);
      })(),
      /boom/,
    );
    assert.deepEqual(got, ['a']);
  });
});
