#!/usr/bin/env node
// A/B split and zero-downtime hot-swap against a running Inferneo (`npm start`), with Node's fetch:
//
//  1. an A/B route `ab-demo` sending 90 % of traffic to classifier v1 and 10 % to v2, sticky per
//     `x-inferneo-route-key`; 1,000 users' requests, the split they got, and the per-arm statistics;
//  2. a hot-swap under load: a route `swap-demo` serves v1 to 8 busy clients while it is promoted
//     to v2 and v1 is drained and unloaded — then every answer is counted: none may fail, and the
//     answers switch from v1 to v2 once, for good. v1 is loaded again at the end and both routes are
//     deleted, leaving the server as it was.
//
//   node examples/ab-hot-swap.mjs [--url http://127.0.0.1:8000] [--token ADMIN_TOKEN]
import { readFileSync } from 'node:fs';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback();
}
const url = option('url', () => process.env.INFERNEO_URL ?? 'http://127.0.0.1:8000');
// The admin token: --token, INFERNEO_ADMIN_TOKEN, or the one the orchestrator generated at start.
const token = option('token', () => process.env.INFERNEO_ADMIN_TOKEN ?? readFileSync('.inferneo/admin-token', 'utf8').trim());

async function admin(method, path, body) {
  const res = await fetch(`${url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-inferneo-actor': 'ab-hot-swap example' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /admin${path}: HTTP ${res.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

const features = JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array.from({ length: 16 }, (_, k) => Math.cos(k)) }] });

/** One request to a route; what served it, or why it failed. */
async function infer(route, key) {
  try {
    const res = await fetch(`${url}/v2/models/${route}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'x-inferneo-route-key': key }) },
      body: features,
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.json();
    return res.ok ? { arm: res.headers.get('x-inferneo-arm'), version: body.model_version } : { error: `HTTP ${res.status}: ${body.error}` };
  } catch (err) {
    return { error: err.message };
  }
}

// 1. A/B split, sticky per user.
await admin('PUT', '/routes/ab-demo', {
  arms: [
    { name: 'stable', model: 'classifier', version: '1', weight: 90 },
    { name: 'candidate', model: 'classifier', version: '2', weight: 10 },
  ],
  sticky: true,
});
const users = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
const first = [];
for (let i = 0; i < users.length; i += 50) first.push(...(await Promise.all(users.slice(i, i + 50).map((u) => infer('ab-demo', u)))));
const split = {};
for (const r of first) split[r.arm ?? 'failed'] = (split[r.arm ?? 'failed'] ?? 0) + 1;
console.log(`ab-demo: 1000 users → ${Object.entries(split).map(([arm, n]) => `${arm} ${n}`).join(', ')}`);
const again = await Promise.all(users.slice(0, 100).map((u) => infer('ab-demo', u)));
console.log(`sticky: the same 100 users again got the same arm: ${again.every((r, i) => r.arm === first[i].arm)}`);
const stats = await admin('GET', '/routes/ab-demo/stats');
for (const arm of stats.arms) {
  const p50 = arm.latency_ms.p50 === null ? '–' : `${arm.latency_ms.p50.toFixed(2)} ms`;
  console.log(`  arm ${arm.arm} (classifier v${arm.version}, weight ${arm.weight}): ${arm.requests} requests, ${arm.errors} errors, p50 ${p50}`);
}
await admin('DELETE', '/routes/ab-demo');

// 2. Hot-swap v1 → v2 under load.
await admin('PUT', '/routes/swap-demo', {
  arms: [
    { name: 'current', model: 'classifier', version: '1', weight: 100 },
    { name: 'next', model: 'classifier', version: '2', weight: 0 },
  ],
});
let running = true;
const answers = [];
const clients = Array.from({ length: 8 }, async () => {
  while (running) answers.push(await infer('swap-demo'));
});
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
await pause(300);
const swapStart = performance.now();
await admin('POST', '/routes/swap-demo/promote', { arm: 'next' });
const promotedMs = performance.now() - swapStart;
await admin('POST', '/models/classifier/versions/1/unload');
const unloadedMs = performance.now() - swapStart;
await pause(300);
running = false;
await Promise.all(clients);

const failed = answers.filter((a) => a.error !== undefined);
const versions = answers.filter((a) => a.error === undefined).map((a) => a.version);
const switches = versions.filter((v, i) => i > 0 && v !== versions[i - 1]).length;
console.log(`swap-demo: ${answers.length} requests during the swap, ${failed.length} failed${failed.length > 0 ? ` (first: ${failed[0].error})` : ''}`);
console.log(`answers: v${versions[0]} first, v${versions.at(-1)} last; ${versions.filter((v) => v === '1').length} by v1, ${versions.filter((v) => v === '2').length} by v2`);
console.log(`promoted to v2 in ${promotedMs.toFixed(0)} ms; v1 drained and unloaded ${(unloadedMs - promotedMs).toFixed(0)} ms later; answers switched ${switches > 0 ? 'from v1 to v2' : 'never'}`);

// Leave the server as it was.
await admin('DELETE', '/routes/swap-demo');
await admin('POST', '/models/classifier/versions/1/load');
console.log('cleaned up: routes deleted, classifier v1 loaded again');
