/**
 * What the benchmarks share: free ports, starting an orchestrator as its own process (so that the
 * load generator never competes with it for an event loop), an HTTP caller over keep-alive, the
 * in-process ONNX Runtime baseline, peak memory from /proc, and writing results beside a chart.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Pool } from 'undici';
import { freePort } from '../tests/support/free-port.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
export const RESULTS = path.join(ROOT, 'bench', 'results');

export interface ModelSpec {
  name: string;
  input: string;
  dims: number[];
}

export const MODELS: Record<string, ModelSpec> = {
  classifier: { name: 'classifier', input: 'features', dims: [16] },
  mlp_wide: { name: 'mlp_wide', input: 'INPUT0', dims: [512] },
  mlp_tiny: { name: 'mlp_tiny', input: 'INPUT0', dims: [256] },
};

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

export function modelsArg(fallback: string): ModelSpec[] {
  return arg('models', fallback)
    .split(',')
    .map((m) => {
      const spec = MODELS[m];
      if (spec === undefined) throw new Error(`unknown model ${m}; choose from ${Object.keys(MODELS).join(', ')}`);
      return spec;
    });
}

export function machine(): Record<string, unknown> {
  return { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, memory_gb: Math.round(os.totalmem() / 2 ** 30) };
}

/** One deterministic sample of the model's input, as raw float32 bytes. */
export function sample(spec: ModelSpec): Buffer {
  const n = spec.dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i);
  return Buffer.from(x.buffer);
}

/** Peak resident memory (VmHWM) of a process, in MiB. */
export function peakRssMb(pid: number): number {
  try {
    const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return Math.round((kb / 1024) * 10) / 10;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), in clock ticks of 1/100 s on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * Where the CPU went during a measured window: cores used by the orchestrator, by its workers (all
 * children together) and by this load generator, and the same as microseconds per request.
 */
export class CpuProbe {
  private t0 = 0n;
  private start: number[] = [];
  private self = process.cpuUsage();
  private pids: number[] = [];
  cores: { orchestrator: number; workers: number; load_generator: number } = { orchestrator: 0, workers: 0, load_generator: 0 };

  constructor(private readonly orchestratorPid: number) {}

  begin = (): void => {
    this.pids = [this.orchestratorPid, ...childPids(this.orchestratorPid)];
    this.start = this.pids.map(cpuSeconds);
    this.self = process.cpuUsage();
    this.t0 = process.hrtime.bigint();
  };

  end = (): void => {
    const wall = Number(process.hrtime.bigint() - this.t0) / 1e9;
    const used = this.pids.map((p, i) => cpuSeconds(p) - this.start[i]!);
    const self = process.cpuUsage(this.self);
    const round = (x: number): number => Math.round(x * 1000) / 1000;
    this.cores = {
      orchestrator: round(used[0]! / wall),
      workers: round(used.slice(1).reduce((a, b) => a + b, 0) / wall),
      load_generator: round((self.user + self.system) / 1e6 / wall),
    };
  };

  /** CPU microseconds per request, given the measured throughput. */
  perRequestUs(rps: number): Record<string, number> {
    return Object.fromEntries(Object.entries(this.cores).map(([k, v]) => [k, Math.round((v / rps) * 1e6)]));
  }
}

export function childPids(parent: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === String(parent);
      } catch {
        return false;
      }
    })
    .map(Number);
}


export interface Orchestrator {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts `dist/orchestrator/src/main.js` with extra environment (and Node flags, e.g. `--cpu-prof`)
 * and waits until it is ready.
 */
export async function startOrchestrator(env: Record<string, string>, nodeArgs: string[] = []): Promise<Orchestrator> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist', 'orchestrator', 'src', 'main.js')], {
    cwd: ROOT,
    env: {
      ...process.env,
      INFERNEO_HTTP_HOST: '127.0.0.1',
      INFERNEO_HTTP_PORT: String(port),
      INFERNEO_GRPC_PORT: String(await freePort()),
      INFERNEO_REDIS_PREFIX: `inferneo-bench-${process.pid}-${port}:`,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the orchestrator exited with code ${child.exitCode}`);
    if (await fetch(`http://127.0.0.1:${port}/v2/health/ready`).then((r) => r.ok, () => false)) return { child, port, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error('the orchestrator did not become ready in 120 s');
}

/**
 * A caller that sends one single-sample binary-tensor inference request to the model over
 * `sockets` keep-alive connections (undici's Pool: the leanest well-kept HTTP/1.1 client, so that
 * the load generator takes as little as possible of the CPU it shares with the server).
 */
export function httpInferCaller(port: number, spec: ModelSpec, sockets: number): { call: () => Promise<void>; close: () => void } {
  const data = sample(spec);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: spec.input, datatype: 'FP32', shape: [1, ...spec.dims], parameters: { binary_data_size: data.length } }],
      parameters: { binary_data_output: true },
    }),
  );
  const body = Buffer.concat([header, data]);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: sockets, pipelining: 1 });
  const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) };
  const path = `/v2/models/${spec.name}/versions/1/infer`;
  const call = async (): Promise<void> => {
    const res = await pool.request({ path, method: 'POST', headers, body });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  };
  return { call, close: () => void pool.close() };
}

/**
 * The gRPC twin of httpInferCaller: one single-sample `ModelInfer` call of Triton's
 * GRPCInferenceService (the repository's orchestrator/proto/grpc_service.proto, the same file Triton
 * serves) with the input as `raw_input_contents`, over one HTTP/2 channel as tritonclient uses, so
 * that Triton and Inferneo are driven by the same client.
 */
export function grpcInferCaller(address: string, spec: ModelSpec): { call: () => Promise<void>; close: () => void } {
  const definition = protoLoader.loadSync('grpc_service.proto', {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    bytes: Buffer,
    includeDirs: [path.join(ROOT, 'orchestrator', 'proto')],
  });
  const Client = grpc.makeClientConstructor(definition['inference.GRPCInferenceService'] as grpc.ServiceDefinition, 'GRPCInferenceService');
  const client = new Client(address, grpc.credentials.createInsecure());
  const request = {
    model_name: spec.name,
    model_version: '1',
    inputs: [{ name: spec.input, datatype: 'FP32', shape: [1, ...spec.dims] }],
    raw_input_contents: [sample(spec)],
  };
  const modelInfer = (client as unknown as Record<string, (req: object, cb: (err: grpc.ServiceError | null) => void) => void>)['ModelInfer']!.bind(client);
  const call = (): Promise<void> => new Promise((resolve, reject) => modelInfer(request, (err) => (err === null ? resolve() : reject(err))));
  return { call, close: () => client.close() };
}

/** Runs bench/onnx_inprocess.py with a JSON spec; returns its JSON answer. */
export function inProcess<T>(spec: ModelSpec, extra: Record<string, unknown>): T {
  const result = spawnSync(PYTHON, [path.join(ROOT, 'bench', 'onnx_inprocess.py')], {
    input: JSON.stringify({
      model_path: path.join(ROOT, 'model-repository', spec.name, '1', 'model.onnx'),
      input: spec.input,
      dims: spec.dims,
      ...extra,
    }),
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`in-process baseline failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Writes `<name>.json`, draws `<name>.png` with bench/plot.py (`kind` picks the chart), prints the JSON. */
export function writeResults(name: string, report: Record<string, unknown>, kind: 'latency' | 'batching' | 'triton' | 'jobs' | 'llm'): void {
  mkdirSync(RESULTS, { recursive: true });
  const jsonPath = path.join(RESULTS, `${name}.json`);
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  const plot = spawnSync(PYTHON, [path.join(ROOT, 'bench', 'plot.py'), jsonPath, path.join(RESULTS, `${name}.png`), kind], { stdio: 'inherit' });
  if (plot.status !== 0) console.error('[bench] could not draw the chart (is matplotlib installed? `npm run bench` installs it)');
  console.log(JSON.stringify(report, null, 2));
  console.error(`[bench] wrote ${jsonPath} and ${name}.png`);
}
