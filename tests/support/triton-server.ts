import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './free-port.js';
import { ROOT } from './stack.js';

/**
 * A real NVIDIA tritonserver (2.51, CPU build with the Python backend, as PyTriton ships it in
 * `.venv-triton`, installed by `npm test`) started for a test in explicit model-control mode on free
 * local ports. Not a mock: the Triton backend, the conformance tests and `bench:triton` talk to it.
 */

export const TRITON_VENV = path.join(ROOT, '.venv-triton');
export const TRITON_PYTHON = path.join(TRITON_VENV, 'bin', 'python');

export interface TritonServer {
  httpUrl: string;
  /** `host:port` of the gRPC endpoint. */
  grpcAddress: string;
  httpPort: number;
  grpcPort: number;
  child: ChildProcess;
  /** Everything Triton wrote to stdout/stderr so far (for error messages). */
  log(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (a crash, for fault tests). */
  kill(): Promise<void>;
}

function pytritonDir(): string {
  const lib = path.join(TRITON_VENV, 'lib');
  const python = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('python3')) : undefined;
  const dir = python === undefined ? '' : path.join(lib, python, 'site-packages', 'pytriton', 'tritonserver');
  if (dir === '' || !existsSync(path.join(dir, 'bin', 'tritonserver'))) {
    throw new Error('tritonserver is not installed in .venv-triton: run `npm run setup` or `npm test`, which install tests/triton/requirements.txt');
  }
  return dir;
}


export interface TritonOptions {
  modelRepository: string;
  /** Models to load at start (explicit mode loads nothing by default). */
  loadModels?: string[];
  /** Reuse these ports (to restart a server where clients expect it). */
  httpPort?: number;
  grpcPort?: number;
  /** How long to wait for `/v2/health/ready`. @defaultValue 60000 */
  readyTimeoutMs?: number;
}

export async function startTriton(options: TritonOptions): Promise<TritonServer> {
  const dir = pytritonDir();
  // <venv>/lib/python3.X/site-packages/pytriton/tritonserver
  const pythonVersion = path.basename(path.resolve(dir, '..', '..', '..')).replace('python', '');
  // PyTriton copies the Python-backend stub matching the interpreter next to the backend at run
  // time; do the same once.
  const stub = path.join(dir, 'backends', 'python', 'triton_python_backend_stub');
  if (!existsSync(stub)) copyFileSync(path.join(dir, 'python_backend_stubs', pythonVersion, 'triton_python_backend_stub'), stub);
  const httpPort = options.httpPort ?? (await freePort());
  const grpcPort = options.grpcPort ?? (await freePort());
  const metricsPort = await freePort();
  const args = [
    `--model-repository=${options.modelRepository}`,
    '--model-control-mode=explicit',
    ...(options.loadModels ?? []).map((m) => `--load-model=${m}`),
    `--backend-directory=${path.join(dir, 'backends')}`,
    `--cache-directory=${path.join(dir, 'caches')}`,
    '--http-address=127.0.0.1',
    `--http-port=${httpPort}`,
    '--grpc-address=127.0.0.1',
    `--grpc-port=${grpcPort}`,
    `--metrics-port=${metricsPort}`,
    '--log-verbose=0',
    '--exit-timeout-secs=5',
  ];
  // The Python stub finds numpy and onnxruntime through the venv's interpreter on PATH.
  const env = { ...process.env, PATH: `${path.join(TRITON_VENV, 'bin')}:${process.env['PATH'] ?? ''}` };
  const child = spawn(path.join(dir, 'bin', 'tritonserver'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`tritonserver exited with code ${child.exitCode}:\n${output.slice(-4000)}`);
    if (await fetch(`${httpUrl}/v2/health/ready`).then((r) => r.ok, () => false)) {
      return { httpUrl, grpcAddress: `127.0.0.1:${grpcPort}`, httpPort, grpcPort, child, log: () => output, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await end('SIGKILL');
  throw new Error(`tritonserver did not become ready:\n${output.slice(-4000)}`);
}
