import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type InferneoConfig, loadConfig } from '../../orchestrator/src/config/index.js';
import { type InferneoServer, startInferneo } from '../../orchestrator/src/main.js';

/** Repository root (integration tests run from dist/tests). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const VENV_PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
export const MODEL_REPOSITORY = path.join(ROOT, 'model-repository');

export function redisUrl(): string {
  const url = process.env['REDIS_URL'];
  if (url === undefined || url === '') {
    throw new Error('integration tests need a Redis: run them with `npm test`, which starts one, or set REDIS_URL');
  }
  return url;
}

/**
 * Starts a real orchestrator in this process (so c8 sees its code) with real Python worker processes
 * and the real Redis of the test run. `tweak` adjusts the configuration before start.
 */
export async function startStack(tweak: (config: InferneoConfig) => void = () => undefined): Promise<InferneoServer & { url: string }> {
  const config = loadConfig({
    file: path.join(ROOT, 'worker-config', 'inferneo.yaml'),
    env: {
      INFERNEO_HTTP_HOST: '127.0.0.1',
      INFERNEO_HTTP_PORT: '0',
      INFERNEO_GRPC_PORT: '0',
      REDIS_URL: redisUrl(),
      INFERNEO_MODEL_REPOSITORY: MODEL_REPOSITORY,
      INFERNEO_PYTHON: VENV_PYTHON,
      INFERNEO_WORKER_CONFIG: path.join(ROOT, 'worker-config', 'worker.yaml'),
    },
  });
  config.workers.package_dir = path.join(ROOT, 'worker');
  // Each stack its own registry in the shared test Redis, unless a test shares one on purpose.
  config.redis_prefix = `inferneo-test-${randomUUID().slice(0, 8)}:`;
  config.admin_token = 'test-admin-token';
  config.workers.extra_args = ['--log-level', process.env['INFERNEO_TEST_WORKER_LOG'] ?? 'warning'];
  tweak(config);
  const server = await startInferneo(config);
  return Object.assign(server, { url: `http://127.0.0.1:${server.httpPort}` });
}

/**
 * Runs ONNX Runtime directly in Python on the model file and returns the raw output bytes: the oracle
 * that integration tests compare Inferneo's answers with. One intra-op thread, like the workers.
 */
export function onnxOracle(
  model: string,
  version: string,
  inputs: Record<string, { dtype: string; shape: number[]; data: Buffer }>,
): Record<string, { shape: number[]; data: Buffer }> {
  const request = JSON.stringify(
    Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape, hex: v.data.toString('hex') }])),
  );
  const script = `
import json, sys
import numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
req = json.loads(sys.stdin.read())
feed = {k: np.frombuffer(bytes.fromhex(v["hex"]), dtype=v["dtype"]).reshape(v["shape"]) for k, v in req.items()}
names = [o.name for o in sess.get_outputs()]
outs = sess.run(names, feed)
print(json.dumps({n: {"shape": list(o.shape), "hex": np.ascontiguousarray(o).tobytes().hex()} for n, o in zip(names, outs)}))
`;
  const result = spawnSync(VENV_PYTHON, ['-c', script, path.join(MODEL_REPOSITORY, model, version, 'model.onnx')], {
    input: request,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`ONNX Runtime oracle failed: ${result.stderr}`);
  const parsed = JSON.parse(result.stdout) as Record<string, { shape: number[]; hex: string }>;
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, { shape: v.shape, data: Buffer.from(v.hex, 'hex') }]));
}

/** Deterministic pseudo-random float32 features (a fixed LCG), so failures reproduce. */
export function features(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

/** A binary-extension request body: JSON header then the raw bytes of each input. */
export function binaryRequest(header: object, ...data: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    body: Buffer.concat([json, ...data]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length) },
  };
}

/** Splits a binary-extension response into its JSON header and the bytes of each binary output. */
export function parseBinaryResponse(body: Buffer, headerLength: number): { header: Record<string, unknown>; outputs: Map<string, Buffer> } {
  const header = JSON.parse(body.subarray(0, headerLength).toString()) as { outputs: { name: string; parameters?: { binary_data_size?: number } }[] };
  const outputs = new Map<string, Buffer>();
  let offset = headerLength;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    outputs.set(o.name, body.subarray(offset, offset + size));
    offset += size;
  }
  return { header, outputs };
}

/** Polls `check` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ApiReply<T = unknown> {
  status: number;
  body: T;
}

/** Calls the admin API of a stack with its token (or `token`), returning status and parsed JSON. */
export async function admin<T = Record<string, unknown>>(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = 'test-admin-token',
): Promise<ApiReply<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const res = await fetch(`${url}/admin${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

/** Sends one classifier-shaped inference request to `name` (a model or a route); resolves with status, arm and version. */
export async function inferOnce(
  url: string,
  name: string,
  headers: Record<string, string> = {},
  seed = 1,
): Promise<{ status: number; arm: string | null; version: string | undefined; error?: string }> {
  const res = await fetch(`${url}/v2/models/${name}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array.from(features(16, seed)) }] }),
  });
  const body = (await res.json()) as { model_version?: string; error?: string };
  const out: { status: number; arm: string | null; version: string | undefined; error?: string } = {
    status: res.status,
    arm: res.headers.get('x-inferneo-arm'),
    version: body.model_version,
  };
  if (body.error !== undefined) out.error = body.error;
  return out;
}
