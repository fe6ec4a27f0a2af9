/**
 * KServe-v2 / Triton tensor datatypes and how each is laid out in raw (binary) form: little-endian,
 * row-major; BOOL one byte per element; BYTES as 4-byte length-prefixed elements (see bytes-elements.ts).
 */

export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'BF16',
  'FP32',
  'FP64',
  'BYTES',
] as const;

export type Datatype = (typeof DATATYPES)[number];

const ELEMENT_SIZE: Readonly<Record<Exclude<Datatype, 'BYTES'>, number>> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  BF16: 2,
  FP32: 4,
  FP64: 8,
};

const DATATYPE_SET: ReadonlySet<string> = new Set(DATATYPES);

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && DATATYPE_SET.has(value);
}

/** Bytes per element, or undefined for BYTES, whose elements vary in size. */
export function elementSize(datatype: Datatype): number | undefined {
  return datatype === 'BYTES' ? undefined : ELEMENT_SIZE[datatype];
}

/** Triton's model-config `TYPE_*` names for each datatype (`TYPE_STRING` is BYTES). */
const CONFIG_TYPE: Readonly<Record<Datatype, string>> = {
  BOOL: 'TYPE_BOOL',
  UINT8: 'TYPE_UINT8',
  UINT16: 'TYPE_UINT16',
  UINT32: 'TYPE_UINT32',
  UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8',
  INT16: 'TYPE_INT16',
  INT32: 'TYPE_INT32',
  INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16',
  BF16: 'TYPE_BF16',
  FP32: 'TYPE_FP32',
  FP64: 'TYPE_FP64',
  BYTES: 'TYPE_STRING',
};

const FROM_CONFIG_TYPE: ReadonlyMap<string, Datatype> = new Map(
  Object.entries(CONFIG_TYPE).map(([dt, cfg]) => [cfg, dt as Datatype]),
);

export function configTypeOf(datatype: Datatype): string {
  return CONFIG_TYPE[datatype];
}

/** The datatype for a model-config `data_type` such as `TYPE_FP32`, or undefined if there is none. */
export function datatypeFromConfigType(configType: string): Datatype | undefined {
  return FROM_CONFIG_TYPE.get(configType);
}
