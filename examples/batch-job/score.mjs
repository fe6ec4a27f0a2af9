#!/usr/bin/env node
// A batch job against a running Inferneo (`npm start`), with nothing but Node: write rows as JSON
// Lines, upload the file (streamed from disk, multipart), follow the job's progress as server-sent
// events, then download its results — one JSON line per row, in row order — and summarise them.
//
//   node examples/batch-job/score.mjs [--url http://127.0.0.1:8000] [--token TOKEN] [--rows 2000] [--route classifier]
//
// The token defaults to $INFERNEO_ADMIN_TOKEN, else .inferneo/admin-token (where `npm start` writes it).
import { openAsBlob } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const url = arg('url', process.env.INFERNEO_URL ?? 'http://127.0.0.1:8000');
const token = arg('token', process.env.INFERNEO_ADMIN_TOKEN ?? (await readFile('.inferneo/admin-token', 'utf8').catch(() => '')).trim());
const rowCount = Number(arg('rows', '2000'));
const route = arg('route', 'classifier');
const auth = { authorization: `Bearer ${token}` };

// 1. The rows: one KServe-v2 request body per line. Every 500th row is broken on purpose (3 features
//    instead of 16): it gets an error line of its own, the others run.
const dir = await mkdtemp(path.join(tmpdir(), 'inferneo-batch-'));
const file = path.join(dir, 'rows.jsonl');
const lines = [];
for (let r = 0; r < rowCount; r++) {
  const n = r % 500 === 499 ? 3 : 16;
  const data = Array.from({ length: n }, (_, k) => Math.round(Math.sin(r * 16 + k) * 1000) / 1000);
  lines.push(JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, n], data }] }));
}
await writeFile(file, `${lines.join('\n')}\n`);

// 2. Submit: the file goes up as multipart; the answer (202) comes once it is checked and stored.
const form = new FormData();
form.append('model', route);
form.append('chunk_size', '250');
form.append('rows', await openAsBlob(file, { type: 'application/x-ndjson' }), 'rows.jsonl');
const submitted = await fetch(`${url}/admin/jobs`, { method: 'POST', headers: auth, body: form });
const job = await submitted.json();
if (submitted.status !== 202) throw new Error(`submit: HTTP ${submitted.status}: ${job.error}`);
console.log(`job ${job.id}: ${job.progress.total} rows of ${job.model} in ${job.chunks} chunks`);

// 3. Progress as server-sent events; the stream ends after the job does.
const events = await fetch(`${url}/admin/jobs/${job.id}/events`, { headers: auth });
let buffer = '';
let last;
for await (const chunk of events.body.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let end;
  while ((end = buffer.indexOf('\n\n')) >= 0) {
    const event = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    const type = /^event: (\w+)/m.exec(event)?.[1];
    const data = /^data: (.*)$/m.exec(event)?.[1];
    if (type !== 'progress' || data === undefined) continue;
    last = JSON.parse(data);
    const { done, failed, total } = last.progress;
    console.log(`progress: ${last.state} ${done + failed}/${total} rows (${failed} failed)`);
  }
}
if (last?.state !== 'completed') throw new Error(`the job ended ${last?.state}`);

// 4. Results, in row order.
const res = await fetch(`${url}/admin/jobs/${job.id}/results`, { headers: auth });
const results = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
const labels = new Map();
const errors = [];
for (const r of results) {
  if (r.error !== undefined) errors.push(r);
  else {
    const label = r.outputs.find((o) => o.name === 'label').data[0];
    labels.set(label, (labels.get(label) ?? 0) + 1);
  }
}
const inOrder = results.every((r, i) => r.row === i);
console.log(`results: ${results.length} lines in row order: ${inOrder}; labels ${[...labels].sort().map(([l, n]) => `${l}:${n}`).join(' ')}`);
console.log(`errors: ${errors.length} (first: row ${errors[0]?.row}: ${errors[0]?.error})`);
await rm(dir, { recursive: true, force: true });
