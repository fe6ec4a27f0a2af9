/**
 * `npm run bench:triton`: what Inferneo adds in front of a real Triton. One workload — single-sample
 * requests to `tri_mlp` (mlp_tiny's weights run by ONNX Runtime inside Triton's Python backend, the
 * Triton backend tests' fixture) — measured in one run, at each concurrency, along these paths:
 *   - triton_http, triton_grpc:  straight to tritonserver (binary tensors / raw_input_contents);
 *   - inferneo_<front>__triton_<back>:  to the orchestrator over HTTP or gRPC (<front>), which sends
 *     it on to the same Triton over HTTP or gRPC (<back>), with batching off so that Triton runs
 *     exactly the calls it would get directly.
 * The load generator is the same for both: undici (HTTP/1.1 keep-alive, one connection per client)
 * and @grpc/grpc-js (one HTTP/2 channel) with the repository's grpc_service.proto. Reports
 * p50/p95/p99, throughput, peak memory, and the latency Inferneo adds at p50 and p99 where the front
 * and back protocols match. Writes bench/results/triton.json and triton.png.
 */
import { rmSync } from 'node:fs';
import { buildTritonRepository } from '../tests/support/triton-repository.js';
import { startTriton, type TritonServer } from '../tests/support/triton-server.js';
import { freePort } from '../tests/support/free-port.js';
import { arg, childPids, cpuSeconds, grpcInferCaller, httpInferCaller, machine, type ModelSpec, peakRssMb, startOrchestrator, writeResults } from './harness.js';
import { closedLoop, type LatencySummary } from './stats.js';

const durationMs = Number(arg('duration-ms', '4000'));
const concurrencies = arg('concurrency', '1,16').split(',').map(Number);
const backProtocols = arg('backend-protocols', 'http,grpc').split(',') as ('http' | 'grpc')[];
const MODEL: ModelSpec = { name: 'tri_mlp', input: 'INPUT0', dims: [256] };

type Protocol = 'http' | 'grpc';
type Caller = { call: () => Promise<void>; close: () => void };

/** A measured point plus the CPU cores each process group used over its measured window. */
interface Point extends LatencySummary {
  cpu_cores: Record<string, number>;
}

/**
 * CPU cores used between begin() and end() by named process trees (a pid and its children, listed
 * again at the end: Triton restarts its Python stub when a model is reloaded) and by this process.
 */
class TreeCpuProbe {
  private start = new Map<number, number>();
  private self = process.cpuUsage();
  private t0 = 0n;
  cores: Record<string, number> = {};

  constructor(private readonly roots: Record<string, number>) {}

  begin = (): void => {
    for (const pid of Object.values(this.roots).flatMap((root) => [root, ...childPids(root)])) this.start.set(pid, cpuSeconds(pid));
    this.self = process.cpuUsage();
    this.t0 = process.hrtime.bigint();
  };

  end = (): void => {
    const wall = Number(process.hrtime.bigint() - this.t0) / 1e9;
    const round = (x: number): number => Math.round(x * 1000) / 1000;
    for (const [name, root] of Object.entries(this.roots)) {
      // A process that exited during the window is left out (its last CPU reading is gone with it).
      const used = [root, ...childPids(root)].reduce((sum, pid) => sum + Math.max(0, cpuSeconds(pid) - (this.start.get(pid) ?? 0)), 0);
      this.cores[name] = round(used / wall);
    }
    const self = process.cpuUsage(this.self);
    this.cores['load_generator'] = round((self.user + self.system) / 1e6 / wall);
  };
}

function caller(protocol: Protocol, httpPort: number, grpcAddress: string, concurrency: number): Caller {
  return protocol === 'http' ? httpInferCaller(httpPort, MODEL, concurrency) : grpcInferCaller(grpcAddress, MODEL);
}

async function sweep(protocol: Protocol, httpPort: number, grpcAddress: string, processes: Record<string, number>): Promise<Record<string, Point>> {
  const results: Record<string, Point> = {};
  for (const c of concurrencies) {
    const client = caller(protocol, httpPort, grpcAddress, c);
    try {
      // One call first: a path that cannot serve fails here, not as a point full of errors.
      await client.call();
      const cpu = new TreeCpuProbe(processes);
      const summary = await closedLoop(client.call, c, durationMs, 500, { begin: cpu.begin, end: cpu.end });
      results[String(c)] = { ...summary, cpu_cores: cpu.cores };
    } finally {
      client.close();
    }
  }
  return results;
}

function peakRssTree(pid: number): number {
  return Math.round([pid, ...childPids(pid)].map(peakRssMb).reduce((a, b) => a + b, 0) * 10) / 10;
}

function overhead(through: Record<string, LatencySummary>, direct: Record<string, LatencySummary>): Record<string, Record<string, number>> {
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return Object.fromEntries(
    concurrencies.map((c) => {
      const a = through[String(c)]!;
      const b = direct[String(c)]!;
      return [
        String(c),
        {
          p50_ms: round(a.p50_ms - b.p50_ms),
          p99_ms: round(a.p99_ms - b.p99_ms),
          throughput_ratio: round(a.throughput_rps / b.throughput_rps),
        },
      ];
    }),
  );
}

async function main(): Promise<void> {
  const repository = buildTritonRepository();
  let triton: TritonServer | undefined;
  try {
    console.error('[bench] starting tritonserver with tri_mlp');
    triton = await startTriton({ modelRepository: repository, loadModels: [MODEL.name] });
    const version = ((await (await fetch(`${triton.httpUrl}/v2`)).json()) as { version: string }).version;
    const paths: Record<string, Record<string, Point>> = {};
    for (const protocol of ['http', 'grpc'] as const) {
      console.error(`[bench] straight to Triton over ${protocol}`);
      paths[`triton_${protocol}`] = await sweep(protocol, triton.httpPort, triton.grpcAddress, { triton: triton.child.pid! });
    }
    const memory: Record<string, number> = {};
    for (const back of backProtocols) {
      const grpcPort = await freePort();
      const orchestrator = await startOrchestrator({
        INFERNEO_GRPC_PORT: String(grpcPort),
        INFERNEO_MODEL_REPOSITORY: repository,
        INFERNEO_WORKERS: '0',
        INFERNEO_WAIT_FOR_WORKERS: '0',
        INFERNEO_BATCHING: 'false',
        INFERNEO_STARTUP_MODELS: MODEL.name,
        INFERNEO_TRITON_URLS: back === 'http' ? triton.httpUrl : triton.grpcAddress,
        INFERNEO_TRITON_PROTOCOL: back,
        INFERNEO_TRITON_MODELS: MODEL.name,
        INFERNEO_ADMIN_TOKEN: 'bench',
      });
      try {
        for (const front of ['http', 'grpc'] as const) {
          console.error(`[bench] through Inferneo: ${front} in, ${back} to Triton`);
          paths[`inferneo_${front}__triton_${back}`] = await sweep(front, orchestrator.port, `127.0.0.1:${grpcPort}`, {
            triton: triton.child.pid!,
            orchestrator: orchestrator.child.pid!,
          });
        }
        memory[`orchestrator_triton_${back}_peak_rss_mb`] = peakRssMb(orchestrator.child.pid!);
      } finally {
        await orchestrator.stop();
      }
    }
    memory['triton_peak_rss_mb'] = peakRssTree(triton.child.pid!);
    memory['load_generator_peak_rss_mb'] = peakRssMb(process.pid);

    const overheads: Record<string, unknown> = {};
    for (const protocol of ['http', 'grpc'] as const) {
      const through = paths[`inferneo_${protocol}__triton_${protocol}`];
      if (through !== undefined) overheads[protocol] = overhead(through, paths[`triton_${protocol}`]!);
    }
    writeResults(
      'triton',
      {
        title: 'Single-sample requests to tri_mlp (mlp_tiny in Triton’s Python backend): straight to Triton vs through Inferneo',
        date: new Date().toISOString(),
        machine: machine(),
        triton_version: version,
        model: `${MODEL.name}: mlp_tiny (256 → 512 → 10) run by ONNX Runtime in Triton's Python backend, one instance, no dynamic batching`,
        duration_ms_per_point: durationMs,
        concurrency: concurrencies,
        paths,
        overhead_vs_direct: overheads,
        memory,
        notes:
          'Inferneo runs with batching off and no Python workers; the load generator, Triton and Inferneo share the machine. ' +
          "Inferneo keeps at most the version's instance_group count (1 for tri_mlp) of calls in flight to Triton, so at " +
          'concurrency 16 its round trips to Triton are serial, while direct clients have Triton queue their requests itself.',
      },
      'triton',
    );
  } finally {
    await triton?.stop();
    rmSync(repository, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
