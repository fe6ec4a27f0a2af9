/**
 * `npm run bench:batching`: what dynamic batching buys. Single-sample requests over HTTP keep-alive
 * at rising concurrency, through the orchestrator with batching on and with it off, beside the
 * model's own limit (ONNX Runtime in-process, one thread, at its best batch size), all in one run,
 * for a compute-heavy model (mlp_wide) and a tiny one (mlp_tiny). Writes
 * bench/results/batching.json and batching.png, and checks the targets of the compute-heavy model.
 */
import { arg, childPids, httpInferCaller, inProcess, machine, modelsArg, peakRssMb, startOrchestrator, writeResults } from './harness.js';
import { closedLoop, type LatencySummary } from './stats.js';

const durationMs = Number(arg('duration-ms', '4000'));
const concurrencies = arg('concurrency', '1,8,32,64,128').split(',').map(Number);
const workers = arg('workers', '1');
const models = modelsArg('mlp_wide,mlp_tiny');

interface BatchPoint {
  batch_size: number;
  samples_per_s: number;
  call_ms_p50: number;
  call_ms_p99: number;
}

async function sweep(batching: boolean): Promise<{ results: Record<string, Record<string, LatencySummary>>; memory: Record<string, number> }> {
  const orchestrator = await startOrchestrator({
    INFERNEO_WORKERS: workers,
    INFERNEO_BATCHING: String(batching),
    INFERNEO_STARTUP_MODELS: models.map((m) => m.name).join(','),
  });
  const results: Record<string, Record<string, LatencySummary>> = {};
  try {
    for (const spec of models) {
      results[spec.name] = {};
      for (const c of concurrencies) {
        console.error(`[bench] ${spec.name}: batching ${batching ? 'on' : 'off'}, ${c} clients`);
        const caller = httpInferCaller(orchestrator.port, spec, c);
        results[spec.name]![String(c)] = await closedLoop(caller.call, c, durationMs);
        caller.close();
      }
    }
    return {
      results,
      memory: {
        orchestrator_peak_rss_mb: peakRssMb(orchestrator.child.pid!),
        worker_peak_rss_mb: Math.max(...childPids(orchestrator.child.pid!).map(peakRssMb)),
      },
    };
  } finally {
    await orchestrator.stop();
  }
}

async function main(): Promise<void> {
  const limits: Record<string, { best: BatchPoint; all: Record<string, BatchPoint> }> = {};
  for (const spec of models) {
    console.error(`[bench] ${spec.name}: in-process ONNX Runtime by batch size`);
    const all = inProcess<Record<string, BatchPoint>>(spec, { batch_sizes: [1, 8, 16, 32, 64, 128], duration_s: Math.max(1, durationMs / 2000) });
    const best = Object.values(all).reduce((a, b) => (b.samples_per_s > a.samples_per_s ? b : a));
    limits[spec.name] = { best, all };
  }
  const on = await sweep(true);
  const off = await sweep(false);

  const byModel: Record<string, unknown> = {};
  const checks: Record<string, unknown> = {};
  for (const spec of models) {
    const limit = limits[spec.name]!;
    byModel[spec.name] = {
      inprocess_limit: limit.best,
      inprocess_by_batch_size: limit.all,
      batching_on: on.results[spec.name],
      batching_off: off.results[spec.name],
    };
    const c = concurrencies.includes(64) ? '64' : String(concurrencies[concurrencies.length - 1]);
    const onPoint = on.results[spec.name]![c]!;
    const offPoint = off.results[spec.name]![c]!;
    checks[spec.name] = {
      concurrency: Number(c),
      speedup_vs_batching_off: Math.round((onPoint.throughput_rps / offPoint.throughput_rps) * 100) / 100,
      share_of_inprocess_limit: Math.round((onPoint.throughput_rps / limit.best.samples_per_s) * 1000) / 1000,
      p99_ms: onPoint.p99_ms,
      request_rate_ceiling_rps: Math.max(...Object.values(on.results[spec.name]!).map((p) => p.throughput_rps)),
    };
  }
  writeResults(
    'batching',
    {
      title: `Dynamic batching: single-sample clients over HTTP, batching on vs off, beside the in-process limit (${workers} worker(s))`,
      date: new Date().toISOString(),
      machine: machine(),
      duration_ms_per_point: durationMs,
      workers: Number(workers),
      models: byModel,
      checks,
      memory: { batching_on: on.memory, batching_off: off.memory },
    },
    'batching',
  );
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
