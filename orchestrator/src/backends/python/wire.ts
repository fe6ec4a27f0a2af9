import { Packr } from 'msgpackr';
import type { Datatype } from '../../protocol/datatypes.js';

/**
 * MessagePack frames of the worker protocol (docs/worker-protocol.md). Maps decode to plain objects
 * and `bin` to Buffers that are views into the received frame (no copies).
 */

export const PROTOCOL_VERSION = 1;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodeMessage(message: object): Buffer {
  return packr.pack(message);
}

export function decodeMessage(frame: Buffer): Record<string, unknown> {
  const value: unknown = packr.unpack(frame);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('worker message is not a MessagePack map');
  }
  return value as Record<string, unknown>;
}

export interface WireTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Buffer;
}

export interface WireVersionRef {
  model: string;
  version: string;
}

export interface HelloMessage {
  type: 'hello';
  worker_id: string;
  pid: number;
  protocol: number;
  capacity: number;
  models: string[];
  loaded: WireVersionRef[];
  memory_budget_bytes: number;
}

export interface HeartbeatMessage {
  type: 'heartbeat';
  worker_id: string;
  inflight: number;
  loaded: WireVersionRef[];
  rss_bytes: number;
}
