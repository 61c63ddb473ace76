/**
 * The typed graph IR every LesionFuse stage works on.
 *
 * A `Model` is a plain, mutable object tree: rewrites edit it in place or build
 * a new one; `src/onnx/io.ts` converts it to and from ONNX ModelProto bytes.
 * Fields that the IR does not model (newer ONNX fields, unknown fields) are
 * carried in `preserved` so that nothing is dropped when a model is written.
 */

/** ONNX TensorProto.DataType codes (ONNX 1.17 / IR 10-11). */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
}

/**
 * Decoded tensor values. FLOAT16 and BFLOAT16 are held as their raw 16-bit
 * patterns in a Uint16Array (convert with `src/onnx/tensor.ts`); BOOL as
 * Uint8Array; INT64 as BigInt64Array; types without a JS array (float8, int4,
 * string, complex) as raw little-endian bytes in a Uint8Array.
 */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Where an initializer's bytes live when the model uses external data. */
export interface ExternalDataRef {
  location: string;
  offset: number;
  length: number;
  checksum?: string;
}

/** A constant tensor (initializer, Constant value, tensor attribute). */
export interface TensorData {
  dataType: DataType;
  dims: number[];
  values: TensorValues;
}

export interface Initializer extends TensorData {
  name: string;
  docString?: string;
  /** Set when the tensor was read from (or should be written to) an external file. */
  external?: ExternalDataRef;
  /** Fields of the TensorProto the IR does not model; written back unchanged. */
  preserved?: unknown;
}

/** A static or symbolic dimension: a number, a name (dim_param) or unknown. */
export type Dim = number | string | null;

/** The type and shape of a graph value (ValueInfoProto, tensor types only). */
export interface ValueInfo {
  name: string;
  dataType: DataType;
  /** null when the rank is unknown. */
  shape: Dim[] | null;
  docString?: string;
  preserved?: unknown;
}

export type Attribute =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: TensorData }
  | { type: 'graph'; value: Graph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  /** Any other AttributeProto kind (sparse tensors, type protos, ref_attr_name): kept opaque. */
  | { type: 'opaque'; value: unknown };

export interface Node {
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') is the default ONNX domain. */
  domain: string;
  /** '' marks an omitted optional input/output, as in ONNX. */
  inputs: string[];
  outputs: string[];
  attributes: Record<string, Attribute>;
  docString?: string;
  preserved?: unknown;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Initializer[];
  /** Intermediate value types (graph.value_info). */
  valueInfo: ValueInfo[];
  docString?: string;
  preserved?: unknown;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface Model {
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph: Graph;
  /** metadata_props, in file order. */
  metadata: Record<string, string>;
  /** Fields of the ModelProto the IR does not model (functions, training_info, newer fields). */
  preserved?: unknown;
}

/** The default ONNX opset of the domain '' in `model`, or undefined. */
export function defaultOpset(model: Model): number | undefined {
  return model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version;
}
