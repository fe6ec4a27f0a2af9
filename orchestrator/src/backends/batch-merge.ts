import { concatRows, splitRows, type Tensor } from '../protocol/tensor.js';
import type { BackendRequest } from './backend.js';

/**
 * A batch of requests as one call with one tensor per input (rows concatenated along axis 0), and
 * the way back: what the Python worker's whole-batch form and a single Triton request both need.
 */

export interface MergedBatch {
  /** One tensor per input, in the first request's input order. */
  inputs: Tensor[];
  /** Rows each request contributed, in order. */
  rows: number[];
  /** The outputs every request asked for (empty = all). */
  outputs: string[];
}

/**
 * Merges more than one request when they share their inputs' names and requested outputs (the
 * batcher's shape key already guarantees datatypes and non-batch dimensions); otherwise undefined.
 * The caller says whether the model batches at all.
 */
export function mergeRequests(requests: readonly BackendRequest[]): MergedBatch | undefined {
  if (requests.length < 2) return undefined;
  const first = requests[0]!;
  const outputs = first.outputs ?? [];
  const names = first.inputs.map((t) => t.name);
  const columns: Tensor[][] = names.map(() => []);
  const rows: number[] = [];
  for (const r of requests) {
    if (r.inputs.length !== names.length || (r.outputs ?? []).join('\u0000') !== outputs.join('\u0000')) return undefined;
    for (let i = 0; i < names.length; i++) {
      const t = r.inputs[i]!.name === names[i] ? r.inputs[i] : r.inputs.find((x) => x.name === names[i]);
      if (t === undefined) return undefined;
      columns[i]!.push(t);
    }
    rows.push(r.inputs[0]!.shape[0] ?? 1);
  }
  return { inputs: columns.map(concatRows), rows, outputs };
}

/** Each request's outputs, cut from the whole batch's by the rows it contributed. */
export function splitOutputs(outputs: readonly Tensor[], rows: readonly number[]): { outputs: Tensor[] }[] {
  const pieces = outputs.map((o) => splitRows(o, rows));
  return rows.map((_, i) => ({ outputs: pieces.map((p) => p[i]!) }));
}
