/**
 * `npm run bench`: latency and throughput of single-sample requests through Inferneo, beside two
 * baselines measured in the same run:
 *   - onnx_inprocess:     the model run by ONNX Runtime in a Python process (no server, no IPC);
 *   - worker_zmq_direct:  the same request sent from Node straight to one Python worker over ZeroMQ;
 *   - orchestrator_http:  the full path, HTTP keep-alive (binary tensor extension) → orchestrator → worker.
 * Each path runs alone (one worker process in both worker paths), at each concurrency, for a fixed
 * time after a warm-up. Writes bench/results/latency.json and latency.png.
 */
import path from 'node:path';
import { PythonBackend } from '../orchestrator/src/backends/python/python-backend.js';
import { WorkerPool } from '../orchestrator/src/backends/python/worker-pool.js';
import { WorkerSupervisor } from '../orchestrator/src/backends/python/worker-supervisor.js';
import { arg, childPids, httpInferCaller, inProcess, machine, type ModelSpec, modelsArg, peakRssMb, PYTHON, ROOT, sample, startOrchestrator, writeResults } from './harness.js';
import { closedLoop, type LatencySummary } from './stats.js';

const durationMs = Number(arg('duration-ms', '5000'));
const concurrencies = arg('concurrency', '1,16').split(',').map(Number);
const models = modelsArg('classifier,mlp_wide');

async function workerDirect(spec: ModelSpec): Promise<{ results: Record<string, LatencySummary>; workerPeakRssMb: number }> {
  const pool = new WorkerPool();
  await pool.start();
  const supervisor = new WorkerSupervisor(pool, {
    count: 1,
    python: PYTHON,
    packageDir: path.join(ROOT, 'worker'),
    configFile: path.join(ROOT, 'worker-config', 'worker.yaml'),
    modelRepository: path.join(ROOT, 'model-repository'),
    extraArgs: ['--log-level', 'warning'],
  });
  const backend = new PythonBackend(pool);
  try {
    const connected = new Promise((resolve) => pool.once('worker-connected', resolve));
    supervisor.start();
    await connected;
    await backend.load(spec.name, '1');
    const tensor = { name: spec.input, datatype: 'FP32' as const, shape: [1, ...spec.dims], data: sample(spec) };
    const results: Record<string, LatencySummary> = {};
    for (const c of concurrencies) {
      results[String(c)] = await closedLoop(async () => {
        const [r] = await backend.infer(spec.name, '1', [{ inputs: [tensor] }]);
        if (r === undefined || 'error' in r) throw new Error('inference failed');
      }, c, durationMs);
    }
    const pid = [...supervisor.pids().values()][0]!;
    return { results, workerPeakRssMb: peakRssMb(pid) };
  } finally {
    await supervisor.close();
    await pool.close();
  }
}

async function main(): Promise<void> {
  const report: Record<string, unknown> = {
    title: 'Single-sample latency: in-process ONNX Runtime vs Node→worker over ZeroMQ vs through the orchestrator (batching off)',
    date: new Date().toISOString(),
    machine: machine(),
    duration_ms_per_point: durationMs,
    concurrency: concurrencies,
    models: {} as Record<string, Record<string, Record<string, LatencySummary>>>,
    memory: {} as Record<string, number>,
  };
  const byModel = report['models'] as Record<string, Record<string, Record<string, LatencySummary>>>;
  const memory = report['memory'] as Record<string, number>;
  for (const spec of models) {
    console.error(`[bench] ${spec.name}: in-process ONNX Runtime`);
    const inproc = inProcess<Record<string, LatencySummary>>(spec, { concurrency: concurrencies, duration_s: durationMs / 1000 });
    console.error(`[bench] ${spec.name}: Node → worker over ZeroMQ`);
    const direct = await workerDirect(spec);
    byModel[spec.name] = { onnx_inprocess: inproc, worker_zmq_direct: direct.results };
    memory[`worker_direct_${spec.name}_peak_rss_mb`] = direct.workerPeakRssMb;
  }
  console.error(`[bench] through the orchestrator (HTTP)`);
  // One worker, batching off: the same work as the direct path, plus HTTP and the orchestrator.
  const orchestrator = await startOrchestrator({ INFERNEO_WORKERS: '1', INFERNEO_BATCHING: 'false', INFERNEO_STARTUP_MODELS: models.map((m) => m.name).join(',') });
  try {
    for (const spec of models) {
      const results: Record<string, LatencySummary> = {};
      for (const c of concurrencies) {
        const caller = httpInferCaller(orchestrator.port, spec, c);
        results[String(c)] = await closedLoop(caller.call, c, durationMs);
        caller.close();
      }
      byModel[spec.name]!['orchestrator_http'] = results;
    }
    memory['orchestrator_peak_rss_mb'] = peakRssMb(orchestrator.child.pid!);
    memory['orchestrator_worker_peak_rss_mb'] = Math.max(...childPids(orchestrator.child.pid!).map(peakRssMb));
  } finally {
    await orchestrator.stop();
  }
  writeResults('latency', report, 'latency');
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
