/**
 * Tensor values: element counts, float16 codecs, conversions between ONNX data
 * types, JS typed arrays and onnxruntime-node tensors. The one place that knows
 * how each `DataType` is held in memory (see `TensorValues` in ir.ts).
 */
import { Tensor as OrtTensor } from '../util/ort.js';
import { DataType, type TensorData, type TensorValues } from './ir.js';
import { LesionFuseError } from '../util/errors.js';

/** Number of elements of a tensor with these dims (1 for a scalar, []). */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

const NAMES: Record<number, string> = {
  [DataType.UNDEFINED]: 'undefined',
  [DataType.FLOAT]: 'float32',
  [DataType.UINT8]: 'uint8',
  [DataType.INT8]: 'int8',
  [DataType.UINT16]: 'uint16',
  [DataType.INT16]: 'int16',
  [DataType.INT32]: 'int32',
  [DataType.INT64]: 'int64',
  [DataType.STRING]: 'string',
  [DataType.BOOL]: 'bool',
  [DataType.FLOAT16]: 'float16',
  [DataType.DOUBLE]: 'float64',
  [DataType.UINT32]: 'uint32',
  [DataType.UINT64]: 'uint64',
  [DataType.COMPLEX64]: 'complex64',
  [DataType.COMPLEX128]: 'complex128',
  [DataType.BFLOAT16]: 'bfloat16',
  [DataType.FLOAT8E4M3FN]: 'float8e4m3fn',
  [DataType.FLOAT8E4M3FNUZ]: 'float8e4m3fnuz',
  [DataType.FLOAT8E5M2]: 'float8e5m2',
  [DataType.FLOAT8E5M2FNUZ]: 'float8e5m2fnuz',
  [DataType.UINT4]: 'uint4',
  [DataType.INT4]: 'int4',
  [DataType.FLOAT4E2M1]: 'float4e2m1',
};

/** A short lower-case name for a data type (`float32`, `int64`, `float16`...), as onnxruntime spells them. */
export function dataTypeName(dt: DataType): string {
  return NAMES[dt] ?? `datatype(${dt})`;
}

/**
 * Bytes one element takes in raw_data. The 4-bit types (UINT4, INT4, FLOAT4E2M1)
 * pack two elements per byte and return 0.5; STRING and UNDEFINED return 0.
 */
export function bytesPerElement(dt: DataType): number {
  switch (dt) {
    case DataType.BOOL:
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ:
      return 1;
    case DataType.UINT16:
    case DataType.INT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return 2;
    case DataType.FLOAT:
    case DataType.INT32:
    case DataType.UINT32:
      return 4;
    case DataType.INT64:
    case DataType.UINT64:
    case DataType.DOUBLE:
    case DataType.COMPLEX64:
      return 8;
    case DataType.COMPLEX128:
      return 16;
    case DataType.UINT4:
    case DataType.INT4:
    case DataType.FLOAT4E2M1:
      return 0.5;
    default:
      return 0;
  }
}

/** Bytes `count` elements of `dt` take in raw_data (4-bit types round up to whole bytes). */
export function byteLengthOf(dt: DataType, count: number): number {
  return Math.ceil(bytesPerElement(dt) * count);
}

/**
 * The typed-array constructor that holds `dt` in memory, or Uint8Array (raw little-endian
 * bytes) for types JS has no array for (float8, 4-bit, complex, string).
 */
export function arrayTypeFor(dt: DataType): { new (n: number): TensorValues; BYTES_PER_ELEMENT: number } {
  switch (dt) {
    case DataType.FLOAT:
      return Float32Array;
    case DataType.DOUBLE:
      return Float64Array;
    case DataType.INT8:
      return Int8Array;
    case DataType.INT16:
      return Int16Array;
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return Uint16Array;
    case DataType.INT32:
      return Int32Array;
    case DataType.UINT32:
      return Uint32Array;
    case DataType.INT64:
      return BigInt64Array;
    case DataType.UINT64:
      return BigUint64Array;
    default:
      return Uint8Array;
  }
}

/** True when values of `dt` live in a typed array with one element per tensor element. */
export function isElementwiseArrayType(dt: DataType): boolean {
  return arrayTypeFor(dt) !== Uint8Array || dt === DataType.UINT8 || dt === DataType.BOOL;
}

// Shared scratch views for bit casts between float32 and uint32.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits -> float16 bits, rounding to nearest even; overflow -> inf, NaN stays NaN, subnormals exact. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Result is a float16 subnormal (or zero): shift the full 24-bit significand into place.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and 0x7bff + 1 = inf).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

/** float16 bits -> float32 bits (exact: every float16 is a float32; NaN payloads kept). */
function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: normalise the mantissa.
    let e = -14;
    let m = mant;
    while ((m & 0x400) === 0) {
      m <<= 1;
      e--;
    }
    return (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
}

/** Convert float32 values to IEEE float16 bit patterns (round to nearest even, like numpy's astype). */
export function float32ToFloat16(a: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) {
    f32[0] = a[i]!;
    out[i] = f32BitsToF16(u32[0]!);
  }
  return out;
}

/** Convert IEEE float16 bit patterns to float32 values (exact). */
export function float16ToFloat32(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < a.length; i++) bits[i] = f16BitsToF32(a[i]!);
  return out;
}

/** bfloat16 bit patterns -> float32 (exact: bfloat16 is the top half of a float32). */
export function bfloat16ToFloat32(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < a.length; i++) bits[i] = (a[i]! << 16) >>> 0;
  return out;
}

/** float32 -> bfloat16 bit patterns, rounding to nearest even; NaN stays NaN. */
export function float32ToBfloat16(a: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) {
    f32[0] = a[i]!;
    const x = u32[0]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    const rounded = x + 0x7fff + ((x >>> 16) & 1);
    out[i] = (rounded >>> 16) & 0xffff;
  }
  return out;
}

/**
 * The values of any numeric tensor as float32: float16/bfloat16 decoded, integers
 * (int8 ... int64, bool) converted. Types with no numeric meaning here (string,
 * complex, float8, 4-bit) throw, naming the type.
 */
export function tensorToFloat32(t: TensorData): Float32Array {
  const v = t.values;
  switch (t.dataType) {
    case DataType.FLOAT:
      return v as Float32Array;
    case DataType.FLOAT16:
      return float16ToFloat32(v as Uint16Array);
    case DataType.BFLOAT16:
      return bfloat16ToFloat32(v as Uint16Array);
    case DataType.INT64:
    case DataType.UINT64: {
      const out = new Float32Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = Number((v as BigInt64Array)[i]!);
      return out;
    }
    case DataType.DOUBLE:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.INT16:
    case DataType.UINT16:
    case DataType.INT32:
    case DataType.UINT32:
    case DataType.BOOL:
      return Float32Array.from(v as ArrayLike<number>);
    default:
      throw new LesionFuseError(`cannot read a ${dataTypeName(t.dataType)} tensor as float32`);
  }
}

/** The values of a numeric tensor as JS numbers (shape tensors, axes; int64 beyond 2^53 loses precision). */
export function tensorToNumbers(t: TensorData): number[] {
  if (t.dataType === DataType.FLOAT16 || t.dataType === DataType.BFLOAT16) return Array.from(tensorToFloat32(t));
  const out: number[] = new Array(t.values.length);
  for (let i = 0; i < t.values.length; i++) out[i] = Number(t.values[i]!);
  return out;
}

function checkCount(dims: readonly number[], n: number, what: string): void {
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new LesionFuseError(`${what}: dims must be non-negative integers, got [${dims.join(', ')}]`);
  }
  if (numel(dims) !== n) throw new LesionFuseError(`${what}: dims [${dims.join(', ')}] need ${numel(dims)} values, got ${n}`);
}

/** A FLOAT tensor; `values` is copied when given as an array of numbers, shared when a Float32Array. */
export function floatTensor(dims: number[], values: Float32Array | readonly number[]): TensorData {
  const v = values instanceof Float32Array ? values : Float32Array.from(values);
  checkCount(dims, v.length, 'floatTensor');
  return { dataType: DataType.FLOAT, dims: [...dims], values: v };
}

/** An INT64 tensor (shapes, axes, sizes); numbers must be integers. */
export function int64Tensor(dims: number[], values: readonly number[] | BigInt64Array): TensorData {
  let v: BigInt64Array;
  if (values instanceof BigInt64Array) v = values;
  else {
    v = new BigInt64Array(values.length);
    values.forEach((x, i) => {
      if (!Number.isInteger(x)) throw new LesionFuseError(`int64Tensor: value ${x} is not an integer`);
      v[i] = BigInt(x);
    });
  }
  checkCount(dims, v.length, 'int64Tensor');
  return { dataType: DataType.INT64, dims: [...dims], values: v };
}

/**
 * A tensor of any type from plain numbers (or bigints) or an already-typed array.
 * FLOAT16/BFLOAT16 numbers are converted from float values (pass a Uint16Array
 * to give bit patterns directly); the 4-bit, float8 and complex types take raw bytes.
 */
export function tensorOf(dataType: DataType, dims: number[], values: TensorValues | readonly (number | bigint)[]): TensorData {
  const Ctor = arrayTypeFor(dataType);
  let v: TensorValues;
  if (ArrayBuffer.isView(values)) {
    v = values as TensorValues;
  } else {
    const arr = values as readonly (number | bigint)[];
    if (dataType === DataType.FLOAT16) v = float32ToFloat16(arr.map(Number));
    else if (dataType === DataType.BFLOAT16) v = float32ToBfloat16(arr.map(Number));
    else if (Ctor === BigInt64Array || Ctor === BigUint64Array) {
      v = new Ctor(arr.length);
      arr.forEach((x, i) => ((v as BigInt64Array)[i] = BigInt(x)));
    } else {
      v = new Ctor(arr.length);
      arr.forEach((x, i) => ((v as Float32Array)[i] = Number(x)));
    }
  }
  if (isElementwiseArrayType(dataType)) checkCount(dims, v.length, `tensorOf(${dataTypeName(dataType)})`);
  return { dataType, dims: [...dims], values: v };
}

type OrtType = 'float32' | 'float16' | 'float64' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool';

const ORT_TYPES: Partial<Record<DataType, OrtType>> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.DOUBLE]: 'float64',
  [DataType.INT8]: 'int8',
  [DataType.UINT8]: 'uint8',
  [DataType.INT16]: 'int16',
  [DataType.UINT16]: 'uint16',
  [DataType.INT32]: 'int32',
  [DataType.UINT32]: 'uint32',
  [DataType.INT64]: 'int64',
  [DataType.UINT64]: 'uint64',
  [DataType.BOOL]: 'bool',
};

/** The ONNX data type of an onnxruntime tensor type name ('float32' -> FLOAT...). */
export function dataTypeFromOrtType(type: string): DataType {
  for (const [dt, name] of Object.entries(ORT_TYPES)) if (name === type) return Number(dt) as DataType;
  throw new LesionFuseError(`onnxruntime tensor type '${type}' has no LesionFuse equivalent`);
}

/** An onnxruntime-node Tensor sharing `t`'s values (no copy). */
export function toOrtTensor(t: TensorData): OrtTensor {
  const type = ORT_TYPES[t.dataType];
  if (!type) throw new LesionFuseError(`onnxruntime-node cannot take a ${dataTypeName(t.dataType)} tensor`);
  // onnxruntime-node wants float16 as Uint16Array bit patterns and bool as Uint8Array, which is how the IR holds them.
  return new OrtTensor(type, t.values as never, t.dims);
}

/** A TensorData sharing an onnxruntime tensor's values (no copy). */
export function fromOrtTensor(t: OrtTensor): TensorData {
  const dataType = dataTypeFromOrtType(t.type);
  let values = t.data as unknown as TensorValues;
  // Newer onnxruntime builds may hand float16 back as Float16Array; the IR holds bit patterns.
  if (dataType === DataType.FLOAT16 && !(values instanceof Uint16Array)) {
    const view = values as unknown as ArrayBufferView;
    values = new Uint16Array(view.buffer, view.byteOffset, view.byteLength / 2);
  }
  return { dataType, dims: t.dims.map(Number), values };
}
