/**
 * `npm run bench:llm [-- --concurrency 1,4,16 --max-tokens 64 --per-client 2]`: time to first token
 * (p50/p99) and generated tokens/s of SmolLM2-135M at each concurrency, in one run, along three paths:
 *
 * - `inferneo`: streamed `POST /v1/completions` through the orchestrator (own process) to one Python
 *   worker (continuous batching in one llama.cpp engine);
 * - `engine_inprocess`: the same worker engine called in-process (no HTTP, no orchestrator, no ZeroMQ);
 * - `llama_cpp_inprocess`: llama-cpp-python's own `Llama.create_completion(stream=True)`, which runs
 *   one sequence at a time (concurrent clients take turns).
 *
 * Each of `c` clients sends `per-client` requests one after the other; every request generates
 * exactly `max-tokens` tokens (end-of-sequence ignored), so the paths do the same work. The model
 * gets `max_sequences` = the highest concurrency, one engine, one thread (a temporary copy of
 * model-repository/smollm2). Writes bench/results/llm.json and llm.png.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { arg, machine, peakRssMb, PYTHON, ROOT, startOrchestrator, writeResults } from './harness.js';
import { percentile } from './stats.js';

const concurrency = arg('concurrency', '1,4,16').split(',').map(Number);
const maxTokens = Number(arg('max-tokens', '64'));
const perClient = Number(arg('per-client', '2'));
const threads = Number(arg('threads', '1'));
const prompt = 'Once upon a time, in a small village by the sea, there lived';
const temperature = 0.8;
const seed = 1234;

interface PathPoint {
  requests: number;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  e2e_p50_ms: number;
  e2e_p99_ms: number;
}

/** A copy of smollm2 with one engine of `maxSequences` slots and `threads` threads, version 1 only. */
function benchRepository(maxSequences: number): string {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'inferneo-bench-llm-'));
  const source = path.join(ROOT, 'model-repository', 'smollm2');
  const target = path.join(repo, 'smollm2');
  cpSync(path.join(source, '1'), path.join(target, '1'), { recursive: true });
  const config = readFileSync(path.join(source, 'config.pbtxt'), 'utf8')
    .replace(/key: "max_sequences" value: \{ string_value: "\d+" \}/, `key: "max_sequences" value: { string_value: "${maxSequences}" }`)
    .replace(/key: "n_threads" value: \{ string_value: "\d+" \}/, `key: "n_threads" value: { string_value: "${threads}" }`)
    .replace(/version_policy: \{ all \{ \} \}/, '');
  writeFileSync(path.join(target, 'config.pbtxt'), config);
  return repo;
}

/** One streamed completion: time to its first text, to its end, and the tokens it generated. */
async function complete(agent: Agent, port: number, i: number): Promise<{ ttft: number; e2e: number; tokens: number }> {
  const t0 = performance.now();
  const res = await request(`http://127.0.0.1:${port}/v1/completions`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'smollm2',
      prompt,
      max_tokens: maxTokens,
      temperature,
      seed: seed + i,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${await res.body.text()}`);
  let ttft = NaN;
  let tokens = 0;
  let buffered = '';
  for await (const chunk of res.body) {
    buffered += (chunk as Buffer).toString();
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(6, end); // after "data: "
      buffered = buffered.slice(end + 2);
      if (event === '[DONE]') continue;
      const data = JSON.parse(event) as { choices: { text: string }[]; usage?: { completion_tokens: number } | null };
      if (Number.isNaN(ttft) && (data.choices[0]?.text ?? '') !== '') ttft = performance.now() - t0;
      if (data.usage) tokens = data.usage.completion_tokens;
    }
  }
  return { ttft, e2e: performance.now() - t0, tokens };
}

async function inferneoPoint(agent: Agent, port: number, c: number): Promise<PathPoint> {
  const ttft: number[] = [];
  const e2e: number[] = [];
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async (_, k) => {
      for (let j = 0; j < perClient; j++) {
        const r = await complete(agent, port, k * perClient + j);
        ttft.push(r.ttft);
        e2e.push(r.e2e);
        tokens += r.tokens;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    requests: e2e.length,
    tokens,
    seconds: Math.round(seconds * 1000) / 1000,
    tokens_per_s: round(tokens / seconds),
    ttft_p50_ms: round(percentile(sorted(ttft), 50)),
    ttft_p99_ms: round(percentile(sorted(ttft), 99)),
    e2e_p50_ms: round(percentile(sorted(e2e), 50)),
    e2e_p99_ms: round(percentile(sorted(e2e), 99)),
  };
}

async function main(): Promise<void> {
  const repo = benchRepository(Math.max(...concurrency));
  const paths: Record<string, Record<string, PathPoint>> = {};
  let memory: Record<string, number> | undefined;
  try {
    const orchestrator = await startOrchestrator({
      INFERNEO_MODEL_REPOSITORY: repo,
      INFERNEO_WORKERS: '1',
      INFERNEO_STARTUP_MODELS: 'smollm2',
    });
    const agent = new Agent({ connections: Math.max(...concurrency) + 1 });
    try {
      await complete(agent, orchestrator.port, 0); // warm-up
      paths['inferneo'] = {};
      for (const c of concurrency) {
        paths['inferneo'][String(c)] = await inferneoPoint(agent, orchestrator.port, c);
        console.error(`[bench] inferneo c=${c}: ${JSON.stringify(paths['inferneo'][String(c)])}`);
      }
      memory = { orchestrator_mb: peakRssMb(orchestrator.child.pid!) };
    } finally {
      await agent.close();
      await orchestrator.stop();
    }
    const spec = { worker_dir: path.join(ROOT, 'worker'), model_dir: path.join(repo, 'smollm2'), prompt, max_tokens: maxTokens, temperature, seed, concurrency, per_client: perClient };
    const baseline = spawnSync(PYTHON, [path.join(ROOT, 'bench', 'llm_inprocess.py')], { input: JSON.stringify(spec), encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    if (baseline.status !== 0) throw new Error(`in-process baselines failed: ${baseline.stderr}`);
    const inProcess = JSON.parse(baseline.stdout) as { engine: Record<string, PathPoint>; llama_cpp: Record<string, PathPoint> };
    paths['engine_inprocess'] = inProcess.engine;
    paths['llama_cpp_inprocess'] = inProcess.llama_cpp;
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
  const bridge: Record<string, { ttft_p50_ms: number; tokens_per_s_ratio: number }> = {};
  for (const c of concurrency.map(String)) {
    const via = paths['inferneo']![c]!;
    const direct = paths['engine_inprocess']![c]!;
    bridge[c] = { ttft_p50_ms: Math.round((via.ttft_p50_ms - direct.ttft_p50_ms) * 10) / 10, tokens_per_s_ratio: Math.round((via.tokens_per_s / direct.tokens_per_s) * 100) / 100 };
  }
  writeResults(
    'llm',
    {
      title: `SmolLM2-135M Q4_1, ${maxTokens} tokens per request, ${threads} thread(s): Inferneo vs in-process llama.cpp`,
      machine: machine(),
      model: 'smollm2 (SmolLM2-135M-Instruct Q4_1 GGUF, llama.cpp via llama-cpp-python)',
      prompt,
      max_tokens: maxTokens,
      per_client: perClient,
      concurrency,
      paths,
      inferneo_vs_engine_inprocess: bridge,
      memory: memory ?? {},
    },
    'llm',
  );
}

await main();
