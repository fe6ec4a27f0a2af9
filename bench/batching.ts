/**
 * `npm run bench:batching`: what dynamic batching buys. Single-sample requests over HTTP keep-alive
 * at rising concurrency, through the orchestrator with batching on and with it off, beside the
 * model's own limit (ONNX Runtime in-process, one thread, at its best batch size), all in one run,
 * for a compute-heavy model (mlp_wide) and a tiny one (mlp_tiny). Writes
 * bench/results/batching.json and batching.png, and checks the targets of the compute-heavy model.
 */
import { arg, childPids, CpuProbe, httpInferCaller, inProcess, machine, modelsArg, peakRssMb, startOrchestrator, writeResults } from './harness.js';
import { closedLoop, type LatencySummary } from './stats.js';

/** A measured point plus where its CPU went and how large the batches the model ran were. */
interface Point extends LatencySummary {
  cpu_cores: CpuProbe['cores'];
  cpu_us_per_request: Record<string, number>;
  mean_batch_size: number;
}

/** Triton's per-version counters (`GET /v2/models/{m}/versions/1/stats`): rows and executions so far. */
async function counters(port: number, model: string): Promise<{ rows: number; executions: number }> {
  const body = (await (await fetch(`http://127.0.0.1:${port}/v2/models/${model}/versions/1/stats`)).json()) as {
    model_stats: { inference_count: number; execution_count: number }[];
  };
  const s = body.model_stats[0];
  return { rows: s?.inference_count ?? 0, executions: s?.execution_count ?? 0 };
}

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

async function sweep(batching: boolean): Promise<{ results: Record<string, Record<string, Point>>; memory: Record<string, number> }> {
  const orchestrator = await startOrchestrator({
    INFERNEO_WORKERS: workers,
    INFERNEO_BATCHING: String(batching),
    INFERNEO_STARTUP_MODELS: models.map((m) => m.name).join(','),
  });
  const results: Record<string, Record<string, Point>> = {};
  try {
    for (const spec of models) {
      results[spec.name] = {};
      for (const c of concurrencies) {
        console.error(`[bench] ${spec.name}: batching ${batching ? 'on' : 'off'}, ${c} clients`);
        const caller = httpInferCaller(orchestrator.port, spec, c);
        const cpu = new CpuProbe(orchestrator.child.pid!);
        let before = { rows: 0, executions: 0 };
        let after = before;
        const summary = await closedLoop(caller.call, c, durationMs, 500, {
          begin: async () => {
            before = await counters(orchestrator.port, spec.name);
            cpu.begin();
          },
          end: async () => {
            cpu.end();
            after = await counters(orchestrator.port, spec.name);
          },
        });
        caller.close();
        const executions = after.executions - before.executions;
        results[spec.name]![String(c)] = {
          ...summary,
          cpu_cores: cpu.cores,
          cpu_us_per_request: cpu.perRequestUs(summary.throughput_rps),
          mean_batch_size: executions > 0 ? Math.round(((after.rows - before.rows) / executions) * 100) / 100 : 0,
        };
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
