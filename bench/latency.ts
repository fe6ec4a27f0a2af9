/**
 * `npm run bench`: latency and throughput of single-sample requests through Inferneo, beside two
 * baselines measured in the same run:
 *   - onnx_inprocess:     the model run by ONNX Runtime in a Python process (no server, no IPC);
 *   - worker_zmq_direct:  the same request sent from Node straight to one Python worker over ZeroMQ;
 *   - orchestrator_http:  the full path, HTTP keep-alive (binary tensor extension) → orchestrator → worker.
 * Each path runs alone (one worker process in both worker paths), at each concurrency, for a fixed
 * time after a warm-up. Writes bench/results/latency.json and latency.png.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PythonBackend } from '../orchestrator/src/backends/python/python-backend.js';
import { WorkerPool } from '../orchestrator/src/backends/python/worker-pool.js';
import { WorkerSupervisor } from '../orchestrator/src/backends/python/worker-supervisor.js';
import { closedLoop, type LatencySummary } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
const RESULTS = path.join(ROOT, 'bench', 'results');

interface ModelSpec {
  name: string;
  input: string;
  dims: number[];
}
const MODELS: Record<string, ModelSpec> = {
  classifier: { name: 'classifier', input: 'features', dims: [16] },
  mlp_wide: { name: 'mlp_wide', input: 'INPUT0', dims: [512] },
  mlp_tiny: { name: 'mlp_tiny', input: 'INPUT0', dims: [256] },
};

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const durationMs = Number(arg('duration-ms', '5000'));
const concurrencies = arg('concurrency', '1,16').split(',').map(Number);
const models = arg('models', 'classifier,mlp_wide').split(',').map((m) => {
  const spec = MODELS[m];
  if (spec === undefined) throw new Error(`unknown model ${m}; choose from ${Object.keys(MODELS).join(', ')}`);
  return spec;
});

function sample(spec: ModelSpec): Buffer {
  const n = spec.dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i);
  return Buffer.from(x.buffer);
}

/** Peak resident memory (VmHWM) of a process, in MiB. */
function peakRssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return Math.round((kb / 1024) * 10) / 10;
  } catch {
    return NaN;
  }
}

function childPids(parent: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(parent);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function inProcess(spec: ModelSpec): Record<string, LatencySummary> {
  const result = spawnSync(PYTHON, [path.join(ROOT, 'bench', 'onnx_inprocess.py')], {
    input: JSON.stringify({
      model_path: path.join(ROOT, 'model-repository', spec.name, '1', 'model.onnx'),
      input: spec.input,
      dims: spec.dims,
      concurrency: concurrencies,
      duration_s: durationMs / 1000,
    }),
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`in-process baseline failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, LatencySummary>;
}

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

async function startOrchestrator(modelNames: string[]): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'orchestrator', 'src', 'main.js')], {
    cwd: ROOT,
    env: {
      ...process.env,
      INFERNEO_HTTP_HOST: '127.0.0.1',
      INFERNEO_HTTP_PORT: String(port),
      INFERNEO_GRPC_PORT: String(await freePort()),
      INFERNEO_WORKERS: '1',
      INFERNEO_STARTUP_MODELS: modelNames.join(','),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the orchestrator exited with code ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${port}/v2/health/ready`).then((r) => r.ok, () => false);
    if (ok) return { child, port };
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGKILL');
  throw new Error('the orchestrator did not become ready in 120 s');
}

async function throughOrchestrator(port: number, spec: ModelSpec): Promise<Record<string, LatencySummary>> {
  const data = sample(spec);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: spec.input, datatype: 'FP32', shape: [1, ...spec.dims], parameters: { binary_data_size: data.length } }],
      parameters: { binary_data_output: true },
    }),
  );
  const body = Buffer.concat([header, data]);
  const results: Record<string, LatencySummary> = {};
  for (const c of concurrencies) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: c });
    const call = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `/v2/models/${spec.name}/versions/1/infer`,
            agent,
            headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': header.length, 'content-length': body.length },
          },
          (res) => {
            res.on('data', () => undefined);
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    results[String(c)] = await closedLoop(call, c, durationMs);
    agent.destroy();
  }
  return results;
}

async function main(): Promise<void> {
  const report: Record<string, unknown> = {
    title: `Single-sample latency: in-process ONNX Runtime vs Node→worker over ZeroMQ vs through the orchestrator (${os.cpus().length} cores)`,
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, memory_gb: Math.round(os.totalmem() / 2 ** 30) },
    duration_ms_per_point: durationMs,
    concurrency: concurrencies,
    models: {} as Record<string, Record<string, Record<string, LatencySummary>>>,
    memory: {} as Record<string, number>,
  };
  const byModel = report['models'] as Record<string, Record<string, Record<string, LatencySummary>>>;
  const memory = report['memory'] as Record<string, number>;
  for (const spec of models) {
    console.error(`[bench] ${spec.name}: in-process ONNX Runtime`);
    const inproc = inProcess(spec);
    console.error(`[bench] ${spec.name}: Node → worker over ZeroMQ`);
    const direct = await workerDirect(spec);
    byModel[spec.name] = { onnx_inprocess: inproc, worker_zmq_direct: direct.results };
    memory[`worker_direct_${spec.name}_peak_rss_mb`] = direct.workerPeakRssMb;
  }
  console.error(`[bench] through the orchestrator (HTTP)`);
  const { child, port } = await startOrchestrator(models.map((m) => m.name));
  try {
    for (const spec of models) {
      byModel[spec.name]!['orchestrator_http'] = await throughOrchestrator(port, spec);
    }
    memory['orchestrator_peak_rss_mb'] = peakRssMb(child.pid!);
    memory['orchestrator_worker_peak_rss_mb'] = Math.max(...childPids(child.pid!).map(peakRssMb));
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }

  mkdirSync(RESULTS, { recursive: true });
  const jsonPath = path.join(RESULTS, 'latency.json');
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  const plot = spawnSync(PYTHON, [path.join(ROOT, 'bench', 'plot.py'), jsonPath, path.join(RESULTS, 'latency.png')], { stdio: 'inherit' });
  if (plot.status !== 0) console.error('[bench] could not draw the chart (is matplotlib installed? `npm run bench` installs it)');
  console.log(JSON.stringify(report, null, 2));
  console.error(`[bench] wrote ${jsonPath} and latency.png`);
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
