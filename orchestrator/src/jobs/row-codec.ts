import { Packr } from 'msgpackr';
import type { Datatype } from '../protocol/datatypes.js';
import { bufferToJsonData } from '../protocol/json-tensor.js';
import type { Tensor } from '../protocol/tensor.js';

/**
 * How a job's rows and results are stored in Redis. A chunk's valid rows are one MessagePack value
 * with every tensor as raw little-endian bytes (what the scheduler and workers take, so running a
 * chunk never parses JSON numbers again). A row's result is its final JSON Lines text, written
 * once and streamed back as is.
 */

/** One validated input row, ready to run. */
export interface JobRow {
  /** Index of the row in the job's input (0-based). */
  row: number;
  inputs: Tensor[];
  /** Output names asked for; empty = all. */
  outputs: string[];
}

interface WireTensor {
  n: string;
  t: Datatype;
  s: number[];
  d: Buffer;
}

interface WireRow {
  r: number;
  i: WireTensor[];
  o?: string[];
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodeRows(rows: readonly JobRow[]): Buffer {
  const wire: WireRow[] = rows.map((r) => {
    const row: WireRow = { r: r.row, i: r.inputs.map((t) => ({ n: t.name, t: t.datatype, s: t.shape, d: t.data })) };
    if (r.outputs.length > 0) row.o = r.outputs;
    return row;
  });
  return packr.pack(wire);
}

export function decodeRows(data: Buffer): JobRow[] {
  const wire = packr.unpack(data) as WireRow[];
  return wire.map((w) => ({
    row: w.r,
    inputs: w.i.map((t) => ({ name: t.n, datatype: t.t, shape: t.s, data: Buffer.isBuffer(t.d) ? t.d : Buffer.from(t.d) })),
    outputs: w.o ?? [],
  }));
}

/** `{"row":i,"model_name":…,"model_version":…,"outputs":[KServe-v2 JSON tensors]}` — built as text, never as number arrays. */
export function outputLine(row: number, model: string, version: string, outputs: readonly Tensor[]): string {
  const tensors = outputs.map(
    (t) => `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}],"data":${bufferToJsonData(t.datatype, t.data, t.name)}}`,
  );
  return `{"row":${row},"model_name":${JSON.stringify(model)},"model_version":${JSON.stringify(version)},"outputs":[${tensors.join(',')}]}`;
}

/** `{"row":i,"error":"…","code":"…"}` */
export function errorLine(row: number, message: string, code: string): string {
  return `{"row":${row},"error":${JSON.stringify(message)},"code":${JSON.stringify(code)}}`;
}
