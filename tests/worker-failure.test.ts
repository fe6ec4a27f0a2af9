import assert from 'node:assert/strict';
import { features, startStack, waitFor } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface Outcome {
  status: number;
  error?: string;
  hung?: boolean;
}

/**
 * Workers die under load: the orchestrator answers the requests they held with a clear 503 (never a
 * hang), restarts them with backoff, and serves again once they have reloaded their models.
 */
describe('worker failure under load (real workers)', function () {
  this.timeout(180_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 2;
      c.workers.heartbeat_interval_ms = 200;
      c.workers.heartbeat_timeout_ms = 1500;
    });
  });
  after(async () => {
    await stack?.close();
  });

  const body = JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [4, 16], data: Array.from(features(64, 3)) }] });
  const once = async (): Promise<Outcome> => {
    try {
      const res = await fetch(`${stack.url}/v2/models/classifier/infer`, { method: 'POST', body, signal: AbortSignal.timeout(15_000) });
      const text = await res.text();
      return res.status === 200 ? { status: 200 } : { status: res.status, error: (JSON.parse(text) as { error: string }).error };
    } catch (err) {
      return { status: 0, hung: (err as Error).name === 'TimeoutError', error: (err as Error).message };
    }
  };

  /** Runs `clients` request loops until `stop()` resolves; returns every outcome. */
  const load = (clients: number): { stop: () => Promise<Outcome[]> } => {
    let running = true;
    const outcomes: Outcome[] = [];
    const loops = Array.from({ length: clients }, async () => {
      while (running) outcomes.push(await once());
    });
    return {
      stop: async () => {
        running = false;
        await Promise.all(loops);
        return outcomes;
      },
    };
  };

  const allServing = (): boolean =>
    stack.pool.sessions().length === 2 && stack.pool.sessions().every((s) => s.state === 'ready' && s.loaded.size >= 3);

  it('restarts a SIGKILLed worker; its requests get 503 and nothing hangs', async () => {
    await waitFor('both workers ready', allServing);
    const supervisor = stack.supervisor!;
    const victim = 'worker-0';
    const pid = supervisor.pids().get(victim)!;
    const traffic = load(8);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(pid, 'SIGKILL');
    await waitFor('the worker to restart', () => supervisor.restartCount(victim) >= 1 && supervisor.pids().get(victim) !== pid);
    await waitFor('the restarted worker to serve', allServing);
    await new Promise((r) => setTimeout(r, 500));
    const outcomes = await traffic.stop();

    assert.ok(outcomes.length > 20, `only ${outcomes.length} requests ran`);
    assert.deepEqual(outcomes.filter((o) => o.hung || o.status === 0), [], 'no request may hang or lose its connection');
    const others = outcomes.filter((o) => o.status !== 200 && o.status !== 503);
    assert.deepEqual(others, [], 'requests either succeed or get 503');
    const refused = outcomes.filter((x) => x.status === 503);
    assert.ok(refused.length > 0, 'the requests the killed worker held were answered with 503');
    for (const o of refused) assert.match(o.error!, /worker|not loaded|no worker/);
    assert.equal(outcomes[outcomes.length - 1]!.status, 200, 'serving again at the end');
  });

  it('declares a frozen worker (no heartbeats) dead, fails what it held, kills and restarts it', async () => {
    await waitFor('both workers ready', allServing);
    const supervisor = stack.supervisor!;
    const victim = 'worker-1';
    const pid = supervisor.pids().get(victim)!;
    const restarts = supervisor.restartCount(victim);
    const traffic = load(4);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor('the frozen worker to be restarted', () => supervisor.restartCount(victim) > restarts);
    assert.ok(Date.now() - stoppedAt >= 1000, 'declared dead only after the heartbeat timeout');
    await waitFor('the restarted worker to serve', allServing);
    const outcomes = await traffic.stop();
    assert.deepEqual(outcomes.filter((o) => o.hung || o.status === 0), []);
    assert.deepEqual(outcomes.filter((o) => o.status !== 200 && o.status !== 503), []);
    assert.ok(outcomes.some((o) => o.status === 503 && /no heartbeat/.test(o.error!)), 'the frozen worker\'s requests got 503 naming the missed heartbeats');
  });

  it('answers 503 while every worker is down, then recovers', async () => {
    await waitFor('both workers ready', allServing);
    const supervisor = stack.supervisor!;
    for (const pid of supervisor.pids().values()) process.kill(pid, 'SIGKILL');
    await waitFor('the workers to be gone', () => stack.pool.sessions().length === 0, 5_000);
    const during = await once();
    assert.equal(during.status, 503);
    assert.match(during.error!, /no worker is available|not loaded/);
    await waitFor('both workers back', allServing);
    assert.equal((await once()).status, 200);
  });
});
