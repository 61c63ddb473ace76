/**
 * ONNX ModelProto <-> the IR (ir.ts).
 *
 * Why a hand-written codec rather than onnx-proto's generated one: onnx-proto's
 * schema is ONNX 1.10 (IR 8) and protobufjs drops fields it does not know, so a
 * newer model (IR 9-11: NodeProto.overload, metadata_props, FunctionProto, new
 * data types...) would lose data on a read/write cycle. Here every message keeps
 * its field layout: fields the IR models are re-encoded from the IR in their
 * original position, fields it does not model are written back as their original
 * bytes, in place. Small sub-messages the IR holds as plain values (attributes,
 * value types, opset imports, metadata entries, external-data entries) reuse their
 * original bytes while unchanged. The result: a model the SDK does not change is
 * written back byte for byte, and an edited one keeps everything it did not touch.
 */
import { promises as fs, openSync, readSync, closeSync, fstatSync, realpathSync, constants as fsConstants } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import {
  DataType,
  type Attribute,
  type ExternalDataRef,
  type Graph,
  type Initializer,
  type Model,
  type Node,
  type OpsetImport,
  type TensorData,
  type TensorValues,
  type ValueInfo,
  type Dim,
} from './ir.js';
import { arrayTypeFor, byteLengthOf, dataTypeName, isElementwiseArrayType, numel } from './tensor.js';
import {
  WireError,
  WireReader,
  WireWriter,
  WT_I32,
  WT_I64,
  WT_LEN,
  WT_VARINT,
  fieldBytes,
  fieldRaw,
  fieldString,
  scanFields,
  type RawField,
} from './wire.js';
import { LesionFuseError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';

/** protobuf cannot serialize a message of 2 GiB or more. */
export const PROTOBUF_MAX_BYTES = 2 ** 31 - 1;

// ---------------------------------------------------------------------------------------------
// What `preserved` holds (opaque to other stages: treat as read-only, copy by reference).

/** One field of the original message: `raw` is set for fields written back verbatim. */
interface FieldRec {
  no: number;
  wt: number;
  raw?: Uint8Array;
}
/** The original bytes of a small sub-message and a key of the IR value decoded from it. */
interface Snap {
  key: string;
  raw: Uint8Array;
  fields?: FieldRec[];
}
/** The original bytes of a list of sub-messages, reused while the list is unchanged. */
interface ListSnap {
  key: string;
  raws: Uint8Array[];
}
interface ModelPreserved {
  fields: FieldRec[];
  opsets?: ListSnap;
  metadata?: ListSnap;
  /** The folder external data was read from. */
  baseDir?: string;
}
interface MessagePreserved {
  fields: FieldRec[];
}
interface NodePreserved extends MessagePreserved {
  attrs: Record<string, Snap>;
}
interface ValueInfoPreserved extends MessagePreserved {
  type?: Snap;
}
interface TensorPreserved extends MessagePreserved {
  /** Where the values were: raw_data or the typed repeated fields (float_data, int32_data...). */
  storage: 'raw' | 'typed';
  /** The original external_data entries (location, offset, length, any others), keyed by the ref read from them. */
  external?: ListSnap;
}

/** The payload of an `opaque` attribute: the AttributeProto's bytes, written back as they are. */
export interface OpaqueAttributeValue {
  bytes: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Field numbers (onnx.proto, IR 11).

const M = { irVersion: 1, producerName: 2, producerVersion: 3, domain: 4, modelVersion: 5, docString: 6, graph: 7, opsetImport: 8, metadataProps: 14 };
const MODEL_KNOWN = [1, 2, 3, 4, 5, 6, 7, 8, 14];
const GRAPH_KNOWN = [1, 2, 5, 10, 11, 12, 13];
const NODE_KNOWN = [1, 2, 3, 4, 5, 6, 7];
const TENSOR_KNOWN = [1, 2, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14];
const VALUEINFO_KNOWN = [1, 2, 3];
const ATTR_GRAPH_KNOWN = [1, 6, 20];

const ATTR_TYPE: Record<Exclude<Attribute['type'], 'opaque'>, number> = {
  float: 1,
  int: 2,
  string: 3,
  tensor: 4,
  graph: 5,
  floats: 6,
  ints: 7,
  strings: 8,
};

/** Wire types each known field may have (repeated scalars may be packed). */
const EXPECTED_WT: Record<string, Record<number, number[]>> = {
  model: { 1: [WT_VARINT], 2: [WT_LEN], 3: [WT_LEN], 4: [WT_LEN], 5: [WT_VARINT], 6: [WT_LEN], 7: [WT_LEN], 8: [WT_LEN], 14: [WT_LEN] },
  graph: { 1: [WT_LEN], 2: [WT_LEN], 5: [WT_LEN], 10: [WT_LEN], 11: [WT_LEN], 12: [WT_LEN], 13: [WT_LEN] },
  node: { 1: [WT_LEN], 2: [WT_LEN], 3: [WT_LEN], 4: [WT_LEN], 5: [WT_LEN], 6: [WT_LEN], 7: [WT_LEN] },
  tensor: {
    1: [WT_VARINT, WT_LEN],
    2: [WT_VARINT],
    4: [WT_I32, WT_LEN],
    5: [WT_VARINT, WT_LEN],
    7: [WT_VARINT, WT_LEN],
    8: [WT_LEN],
    9: [WT_LEN],
    10: [WT_I64, WT_LEN],
    11: [WT_VARINT, WT_LEN],
    12: [WT_LEN],
    13: [WT_LEN],
    14: [WT_VARINT],
  },
  valueinfo: { 1: [WT_LEN], 2: [WT_LEN], 3: [WT_LEN] },
};

function checkWireTypes(kind: keyof typeof EXPECTED_WT, fields: RawField[]): void {
  const exp = EXPECTED_WT[kind]!;
  for (const f of fields) {
    const ok = exp[f.no];
    if (ok && !ok.includes(f.wt)) throw new WireError(`${kind} field ${f.no} has wire type ${f.wt}, expected ${ok.join(' or ')}`);
  }
}

/** The layout of a message: known fields as markers, unknown ones with their bytes. */
function layoutOf(buf: Uint8Array, fields: RawField[], known: readonly number[]): FieldRec[] {
  return fields.map((f) => (known.includes(f.no) ? { no: f.no, wt: f.wt } : { no: f.no, wt: f.wt, raw: fieldRaw(buf, f) }));
}

// ---------------------------------------------------------------------------------------------
// Decoding.

interface DecodeContext {
  baseDir?: string;
  /** How many graphs enclose the one being decoded (If/Loop/Scan bodies nest). */
  depth?: number;
  loadExternalData: boolean;
  files: Map<string, { fd: number; size: number; path: string }>;
}

const utf8 = new TextDecoder('utf-8');

/**
 * A string that changes whenever an IR value changes: decides whether a small
 * sub-message can be written as its original bytes. Typed arrays are keyed by
 * their exact bytes (hashed when large, so big Constant tensors stay cheap).
 */
function keyOf(x: unknown): string {
  return JSON.stringify(x, (_k, v) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (ArrayBuffer.isView(v)) {
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      return { t: v.constructor.name, b: bytes.length > 256 ? createHash('sha1').update(bytes).digest('hex') : Buffer.from(bytes).toString('hex') };
    }
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    return v;
  });
}

function decodeStringEntries(buf: Uint8Array, f: RawField): [string, string] {
  let k = '';
  let v = '';
  for (const e of scanFields(buf, f.vstart, f.end)) {
    if (e.no === 1 && e.wt === WT_LEN) k = fieldString(buf, e);
    else if (e.no === 2 && e.wt === WT_LEN) v = fieldString(buf, e);
  }
  return [k, v];
}

function decodeModelFields(buf: Uint8Array, fields: RawField[], ctx: DecodeContext): Model {
  const model: Model = {
    irVersion: 0,
    opsetImports: [],
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    graph: undefined as unknown as Graph,
    metadata: {},
  };
  const opsetRaws: Uint8Array[] = [];
  const metaRaws: Uint8Array[] = [];
  for (const f of fields) {
    const r = new WireReader(buf, f.vstart, f.end);
    switch (f.no) {
      case M.irVersion:
        model.irVersion = r.int64();
        break;
      case M.producerName:
        model.producerName = fieldString(buf, f);
        break;
      case M.producerVersion:
        model.producerVersion = fieldString(buf, f);
        break;
      case M.domain:
        model.domain = fieldString(buf, f);
        break;
      case M.modelVersion:
        model.modelVersion = r.int64();
        break;
      case M.docString:
        model.docString = fieldString(buf, f);
        break;
      case M.graph:
        model.graph = decodeGraph(buf, f.vstart, f.end, ctx);
        break;
      case M.opsetImport: {
        const o: OpsetImport = { domain: '', version: 0 };
        for (const e of scanFields(buf, f.vstart, f.end)) {
          if (e.no === 1 && e.wt === WT_LEN) o.domain = fieldString(buf, e);
          else if (e.no === 2 && e.wt === WT_VARINT) o.version = new WireReader(buf, e.vstart, e.end).int64();
        }
        model.opsetImports.push(o);
        opsetRaws.push(fieldRaw(buf, f));
        break;
      }
      case M.metadataProps: {
        const [k, v] = decodeStringEntries(buf, f);
        model.metadata[k] = v;
        metaRaws.push(fieldRaw(buf, f));
        break;
      }
    }
  }
  const preserved: ModelPreserved = {
    fields: layoutOf(buf, fields, MODEL_KNOWN),
    opsets: { key: keyOf(model.opsetImports), raws: opsetRaws },
    metadata: { key: keyOf(Object.entries(model.metadata)), raws: metaRaws },
    baseDir: ctx.baseDir,
  };
  model.preserved = preserved;
  return model;
}

/** Subgraphs nested deeper than this are refused: every tool walks graphs recursively. */
export const MAX_SUBGRAPH_DEPTH = 64;

function decodeGraph(buf: Uint8Array, start: number, end: number, ctx: DecodeContext): Graph {
  const depth = ctx.depth ?? 0;
  if (depth > MAX_SUBGRAPH_DEPTH) throw new LesionFuseError(`subgraphs (If/Loop/Scan bodies) are nested more than ${MAX_SUBGRAPH_DEPTH} levels deep; refusing the model`);
  ctx.depth = depth + 1;
  try {
    return decodeGraphFields(buf, start, end, ctx);
  } finally {
    ctx.depth = depth;
  }
}

function decodeGraphFields(buf: Uint8Array, start: number, end: number, ctx: DecodeContext): Graph {
  const fields = scanFields(buf, start, end);
  checkWireTypes('graph', fields);
  const g: Graph = { name: '', nodes: [], inputs: [], outputs: [], initializers: [], valueInfo: [] };
  for (const f of fields) {
    switch (f.no) {
      case 1:
        g.nodes.push(decodeNode(buf, f, ctx));
        break;
      case 2:
        g.name = fieldString(buf, f);
        break;
      case 5:
        g.initializers.push(decodeTensor(buf, f.vstart, f.end, ctx) as Initializer);
        break;
      case 10:
        g.docString = fieldString(buf, f);
        break;
      case 11:
        g.inputs.push(decodeValueInfo(buf, f));
        break;
      case 12:
        g.outputs.push(decodeValueInfo(buf, f));
        break;
      case 13:
        g.valueInfo.push(decodeValueInfo(buf, f));
        break;
    }
  }
  g.preserved = { fields: layoutOf(buf, fields, GRAPH_KNOWN) } satisfies MessagePreserved;
  return g;
}

function decodeNode(buf: Uint8Array, nf: RawField, ctx: DecodeContext): Node {
  const fields = scanFields(buf, nf.vstart, nf.end);
  checkWireTypes('node', fields);
  const n: Node = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: {} };
  const attrs: Record<string, Snap> = {};
  for (const f of fields) {
    switch (f.no) {
      case 1:
        n.inputs.push(fieldString(buf, f));
        break;
      case 2:
        n.outputs.push(fieldString(buf, f));
        break;
      case 3:
        n.name = fieldString(buf, f);
        break;
      case 4:
        n.opType = fieldString(buf, f);
        break;
      case 5: {
        const [name, attr, afields] = decodeAttribute(buf, f, ctx);
        n.attributes[name] = attr;
        attrs[name] = { key: attr.type === 'graph' ? '' : keyOf(attr), raw: fieldRaw(buf, f), fields: afields };
        break;
      }
      case 6:
        n.docString = fieldString(buf, f);
        break;
      case 7:
        n.domain = fieldString(buf, f);
        break;
    }
  }
  n.preserved = { fields: layoutOf(buf, fields, NODE_KNOWN), attrs } satisfies NodePreserved;
  return n;
}

function decodeAttribute(buf: Uint8Array, af: RawField, ctx: DecodeContext): [string, Attribute, FieldRec[]] {
  const fields = scanFields(buf, af.vstart, af.end);
  let name = '';
  let type = -1;
  let refAttr = false;
  const present = new Set<number>();
  let f32 = 0;
  let i64 = 0;
  let s = '';
  let t: TensorData | undefined;
  let g: Graph | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  const strings: string[] = [];
  for (const f of fields) {
    present.add(f.no);
    const r = new WireReader(buf, f.vstart, f.end);
    switch (f.no) {
      case 1:
        name = fieldString(buf, f);
        break;
      case 2:
        if (f.wt === WT_I32) f32 = r.float32();
        break;
      case 3:
        if (f.wt === WT_VARINT) i64 = r.int64();
        break;
      case 4:
        s = fieldString(buf, f);
        break;
      case 5:
        t = decodeTensor(buf, f.vstart, f.end, ctx);
        break;
      case 6:
        g = decodeGraph(buf, f.vstart, f.end, ctx);
        break;
      case 7:
        if (f.wt === WT_LEN) while (r.pos < r.end) floats.push(r.float32());
        else floats.push(r.float32());
        break;
      case 8:
        if (f.wt === WT_LEN) while (r.pos < r.end) ints.push(r.int64());
        else ints.push(r.int64());
        break;
      case 9:
        strings.push(fieldString(buf, f));
        break;
      case 20:
        type = r.int32();
        break;
      case 21:
        refAttr = true;
        break;
    }
  }
  if (type === -1) {
    // Very old models omit AttributeProto.type: infer it from the field that is set.
    const byField: [number, number][] = [[2, 1], [3, 2], [4, 3], [5, 4], [6, 5], [7, 6], [8, 7], [9, 8]];
    type = byField.find(([no]) => present.has(no))?.[1] ?? 0;
  }
  const graphFields = layoutOf(buf, fields, ATTR_GRAPH_KNOWN);
  if (refAttr) return [name, { type: 'opaque', value: { bytes: fieldBytes(buf, af) } satisfies OpaqueAttributeValue }, graphFields];
  switch (type) {
    case 1:
      return [name, { type: 'float', value: f32 }, graphFields];
    case 2:
      return [name, { type: 'int', value: i64 }, graphFields];
    case 3:
      return [name, { type: 'string', value: s }, graphFields];
    case 4:
      if (t) return [name, { type: 'tensor', value: t }, graphFields];
      break;
    case 5:
      if (g) return [name, { type: 'graph', value: g }, graphFields];
      break;
    case 6:
      return [name, { type: 'floats', value: floats }, graphFields];
    case 7:
      return [name, { type: 'ints', value: ints }, graphFields];
    case 8:
      return [name, { type: 'strings', value: strings }, graphFields];
  }
  return [name, { type: 'opaque', value: { bytes: fieldBytes(buf, af) } satisfies OpaqueAttributeValue }, graphFields];
}

function decodeValueInfo(buf: Uint8Array, vf: RawField): ValueInfo {
  const fields = scanFields(buf, vf.vstart, vf.end);
  checkWireTypes('valueinfo', fields);
  const vi: ValueInfo = { name: '', dataType: DataType.UNDEFINED, shape: null };
  let typeSnap: Snap | undefined;
  for (const f of fields) {
    if (f.no === 1) vi.name = fieldString(buf, f);
    else if (f.no === 3) vi.docString = fieldString(buf, f);
    else if (f.no === 2) {
      for (const tf of scanFields(buf, f.vstart, f.end)) {
        if (tf.no !== 1 || tf.wt !== WT_LEN) continue; // only tensor_type is modelled
        for (const ef of scanFields(buf, tf.vstart, tf.end)) {
          if (ef.no === 1 && ef.wt === WT_VARINT) vi.dataType = new WireReader(buf, ef.vstart, ef.end).int32() as DataType;
          else if (ef.no === 2 && ef.wt === WT_LEN) {
            const shape: Dim[] = [];
            for (const df of scanFields(buf, ef.vstart, ef.end)) {
              if (df.no !== 1 || df.wt !== WT_LEN) continue;
              let d: Dim = null;
              for (const xf of scanFields(buf, df.vstart, df.end)) {
                if (xf.no === 1 && xf.wt === WT_VARINT) d = new WireReader(buf, xf.vstart, xf.end).int64();
                else if (xf.no === 2 && xf.wt === WT_LEN) d = fieldString(buf, xf);
              }
              shape.push(d);
            }
            vi.shape = shape;
          }
        }
      }
      typeSnap = { key: '', raw: fieldRaw(buf, f) };
    }
  }
  if (typeSnap) typeSnap.key = keyOf([vi.dataType, vi.shape]);
  vi.preserved = { fields: layoutOf(buf, fields, VALUEINFO_KNOWN), type: typeSnap } satisfies ValueInfoPreserved;
  return vi;
}

/** Copy (or view, when aligned) raw little-endian bytes as the typed array for `dt`. */
function valuesFromBytes(dt: DataType, bytes: Uint8Array, count: number, what: string): TensorValues {
  const Ctor = arrayTypeFor(dt);
  // An own, aligned copy: values never alias the file's bytes (and Buffer#slice would not copy).
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  if (Ctor === Uint8Array) {
    const need = byteLengthOf(dt, count);
    if (isElementwiseArrayType(dt) && bytes.length !== need) throw new WireError(`${what} has ${bytes.length} bytes of data, its dims need ${need}`);
    return copy;
  }
  const need = count * Ctor.BYTES_PER_ELEMENT;
  if (bytes.length !== need) throw new WireError(`${what} has ${bytes.length} bytes of data, its dims need ${need}`);
  return new (Ctor as unknown as new (b: ArrayBuffer, o: number, n: number) => TensorValues)(copy.buffer, 0, count);
}

function decodeTensor(buf: Uint8Array, start: number, end: number, ctx: DecodeContext): TensorData & Partial<Initializer> {
  const fields = scanFields(buf, start, end);
  checkWireTypes('tensor', fields);
  const dims: number[] = [];
  let dataType = DataType.UNDEFINED;
  let name = '';
  let docString: string | undefined;
  let raw: Uint8Array | undefined;
  let location = 0;
  const extEntries: [string, string][] = [];
  const extRaws: Uint8Array[] = [];
  const typed: Record<number, RawField[]> = {};
  for (const f of fields) {
    const r = new WireReader(buf, f.vstart, f.end);
    switch (f.no) {
      case 1:
        if (f.wt === WT_LEN) while (r.pos < r.end) dims.push(r.int64());
        else dims.push(r.int64());
        break;
      case 2:
        dataType = r.int32() as DataType;
        break;
      case 8:
        name = fieldString(buf, f);
        break;
      case 9:
        raw = fieldBytes(buf, f);
        break;
      case 12:
        docString = fieldString(buf, f);
        break;
      case 13:
        extEntries.push(decodeStringEntries(buf, f));
        extRaws.push(fieldRaw(buf, f));
        break;
      case 14:
        location = r.int32();
        break;
      case 4:
      case 5:
      case 7:
      case 10:
      case 11:
        (typed[f.no] ??= []).push(f);
        break;
    }
  }
  const what = `tensor '${name}'`;
  const count = numel(dims);
  const t: TensorData & Partial<Initializer> = { name, dataType, dims, values: new Uint8Array(0) };
  if (docString !== undefined) t.docString = docString;
  const preserved: TensorPreserved = { fields: layoutOf(buf, fields, TENSOR_KNOWN), storage: raw !== undefined ? 'raw' : 'typed' };
  if (location === 1) {
    const e = Object.fromEntries(extEntries);
    if (!e.location) throw new WireError(`${what} says its data is external but names no location`);
    const ref: ExternalDataRef = {
      location: e.location,
      offset: e.offset !== undefined ? Number(e.offset) : 0,
      length: e.length !== undefined ? Number(e.length) : byteLengthOf(dataType, count),
    };
    if (e.checksum !== undefined) ref.checksum = e.checksum;
    t.external = ref;
    preserved.storage = 'raw';
    preserved.external = { key: keyOf(ref), raws: extRaws };
    if (ctx.loadExternalData) t.values = loadExternal(ref, dataType, count, name, ctx);
  } else if (raw !== undefined) {
    if (dataType !== DataType.STRING) t.values = valuesFromBytes(dataType, raw, count, what);
  } else {
    t.values = valuesFromTyped(buf, dataType, typed, count, what);
  }
  t.preserved = preserved;
  return t;
}

/** Read a repeated scalar field written packed or not (both are valid protobuf), calling `each` per element. */
function readPacked(buf: Uint8Array, fs: RawField[] | undefined, each: (r: WireReader) => void): void {
  for (const f of fs ?? []) {
    const r = new WireReader(buf, f.vstart, f.end);
    if (f.wt === WT_LEN) while (r.pos < r.end) each(r);
    else each(r);
  }
}

function valuesFromTyped(buf: Uint8Array, dt: DataType, typed: Record<number, RawField[]>, count: number, what: string): TensorValues {
  // Fast path: one packed float_data / double_data field is exactly the little-endian values.
  const fixedNo = dt === DataType.FLOAT || dt === DataType.COMPLEX64 ? 4 : dt === DataType.DOUBLE || dt === DataType.COMPLEX128 ? 10 : 0;
  const only = fixedNo ? typed[fixedNo] : undefined;
  if (only && only.length === 1 && only[0]!.wt === WT_LEN) {
    const bytes = fieldBytes(buf, only[0]!);
    if (dt === DataType.COMPLEX64 || dt === DataType.COMPLEX128) return valuesFromBytes(DataType.UINT8, bytes, bytes.length, what);
    return valuesFromBytes(dt, bytes, count, what);
  }
  let out: TensorValues;
  switch (dt) {
    case DataType.FLOAT:
    case DataType.COMPLEX64: {
      const vals: number[] = [];
      readPacked(buf, typed[4], (r) => vals.push(r.float32()));
      const f = Float32Array.from(vals);
      out = dt === DataType.FLOAT ? f : new Uint8Array(f.buffer);
      break;
    }
    case DataType.DOUBLE:
    case DataType.COMPLEX128: {
      const vals: number[] = [];
      readPacked(buf, typed[10], (r) => vals.push(r.float64()));
      const f = Float64Array.from(vals);
      out = dt === DataType.DOUBLE ? f : new Uint8Array(f.buffer);
      break;
    }
    case DataType.INT64: {
      const vals: bigint[] = [];
      readPacked(buf, typed[7], (r) => vals.push(r.int64Big()));
      out = BigInt64Array.from(vals);
      break;
    }
    case DataType.UINT64: {
      const vals: bigint[] = [];
      readPacked(buf, typed[11], (r) => vals.push(r.uint64Big()));
      out = BigUint64Array.from(vals);
      break;
    }
    case DataType.UINT32: {
      const vals: number[] = [];
      readPacked(buf, typed[11], (r) => vals.push(r.uint()));
      out = Uint32Array.from(vals);
      break;
    }
    case DataType.STRING:
    case DataType.UNDEFINED:
      return new Uint8Array(0);
    default: {
      // int32_data carries INT32, INT16/UINT16, INT8/UINT8, BOOL, FLOAT16/BFLOAT16 (bit patterns), float8 and packed 4-bit bytes.
      const vals: number[] = [];
      readPacked(buf, typed[5], (r) => vals.push(r.int32()));
      const Ctor = arrayTypeFor(dt) as unknown as { from(a: number[]): TensorValues };
      out = Ctor.from(vals);
    }
  }
  const expected = isElementwiseArrayType(dt) ? count : byteLengthOf(dt, count);
  if (out.length !== expected && !(out.length === 0 && count === 0)) {
    throw new WireError(`${what} (${dataTypeName(dt)}) holds ${out.length} values, its dims need ${expected}`);
  }
  return out;
}

/**
 * Open an external-data file for reading only if it is a regular file whose real path (symbolic links
 * resolved) stays inside the model's own folder: a link to a file elsewhere, a FIFO or a device is refused
 * (opened non-blocking, so a FIFO cannot hang the reader).
 */
function openExternal(path: string, baseDir: string, location: string, tensor: string): { fd: number; size: number; path: string } {
  let real: string;
  let realBase: string;
  try {
    realBase = realpathSync(baseDir);
  } catch {
    throw new LesionFuseError(`the model's folder cannot be resolved: ${baseDir}`);
  }
  try {
    real = realpathSync(path);
  } catch {
    throw new LesionFuseError(`external data file '${location}' (for tensor '${tensor}') is missing: ${path}`);
  }
  if (!real.startsWith(realBase + sep)) {
    throw new LesionFuseError(`tensor '${tensor}': external data file '${location}' resolves to ${real}, outside the model's folder (through a symbolic link); refusing to read it`);
  }
  let fd: number;
  try {
    fd = openSync(real, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw new LesionFuseError(`external data file '${location}' (for tensor '${tensor}') cannot be opened: ${(err as Error).message}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new LesionFuseError(`external data file '${location}' (for tensor '${tensor}') is not a regular file (a FIFO, device or folder); refusing to read it`);
  }
  return { fd, size: st.size, path: real };
}

function loadExternal(ref: ExternalDataRef, dt: DataType, count: number, tensor: string, ctx: DecodeContext): TensorValues {
  const baseDir = ctx.baseDir ?? process.cwd();
  if (isAbsolute(ref.location) || normalize(ref.location).split(/[\\/]/)[0] === '..') {
    throw new LesionFuseError(`tensor '${tensor}': external data location '${ref.location}' is outside the model's folder; refusing to read it`);
  }
  const path = resolve(baseDir, ref.location);
  let file = ctx.files.get(path);
  if (!file) {
    file = openExternal(path, baseDir, ref.location, tensor);
    ctx.files.set(path, file);
  }
  const need = byteLengthOf(dt, count);
  if (ref.length !== need) {
    throw new LesionFuseError(`tensor '${tensor}': external data length ${ref.length} does not match its dims (${need} bytes)`);
  }
  if (ref.offset + ref.length > file.size) {
    throw new LesionFuseError(
      `external data file '${ref.location}' is ${file.size} bytes, shorter than declared: tensor '${tensor}' needs bytes ${ref.offset}..${ref.offset + ref.length} (${path})`,
    );
  }
  const bytes = new Uint8Array(ref.length);
  let done = 0;
  while (done < ref.length) {
    const n = readSync(file.fd, bytes, done, ref.length - done, ref.offset + done);
    if (n <= 0) throw new LesionFuseError(`external data file '${ref.location}' ended early while reading tensor '${tensor}'`);
    done += n;
  }
  return valuesFromBytes(dt, bytes, count, `tensor '${tensor}'`);
}

export interface DecodeOptions {
  /** The file the bytes came from: named in errors. */
  path?: string;
  /** Folder that external data locations are relative to (default: the folder of `path`, else the working directory). */
  baseDir?: string;
  /** Read external data into the initializers' values (default true). When false, `values` of external tensors are empty. */
  loadExternalData?: boolean;
}

/**
 * Decode ONNX ModelProto bytes into the IR. Bad input (empty, not protobuf,
 * truncated, no graph, external data missing or short) throws a LesionFuseError
 * naming the file.
 */
export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  const subject = opts.path ?? 'model bytes';
  if (bytes.length === 0) throw new LesionFuseError('empty file (0 bytes), not an ONNX model', { subject });
  checkProtobufSize(bytes.length, subject, 'read');
  let fields: RawField[];
  try {
    fields = scanFields(bytes);
    checkWireTypes('model', fields);
  } catch (err) {
    if (err instanceof WireError) {
      throw new LesionFuseError(
        err.truncated ? `truncated ONNX file (${err.message})` : `not an ONNX model (not a valid ModelProto: ${err.message})`,
        { subject, cause: err },
      );
    }
    throw err;
  }
  const hasGraph = fields.some((f) => f.no === M.graph);
  const hasIr = fields.some((f) => f.no === M.irVersion);
  if (!hasGraph && !hasIr) throw new LesionFuseError('not an ONNX model (no ir_version and no graph)', { subject });
  if (!hasGraph) throw new LesionFuseError('ONNX ModelProto has no graph', { subject });
  if (!fields.some((f) => f.no === M.opsetImport)) {
    throw new LesionFuseError('ONNX ModelProto has no opset_import (truncated file?)', { subject });
  }
  const ctx: DecodeContext = {
    baseDir: opts.baseDir ?? (opts.path ? dirname(resolve(opts.path)) : undefined),
    loadExternalData: opts.loadExternalData ?? true,
    files: new Map(),
  };
  try {
    return decodeModelFields(bytes, fields, ctx);
  } catch (err) {
    if (err instanceof WireError) {
      throw new LesionFuseError(err.truncated ? `truncated or corrupt ONNX file (${err.message})` : `corrupt ONNX model (${err.message})`, {
        subject,
        cause: err,
      });
    }
    if (err instanceof LesionFuseError && !err.subject) throw new LesionFuseError(err.message, { subject, cause: err.cause });
    throw err;
  } finally {
    for (const f of ctx.files.values()) closeSync(f.fd);
  }
}

/** Refuse sizes protobuf cannot hold, saying what to do instead. */
export function checkProtobufSize(bytes: number, subject: string, action: 'read' | 'write'): void {
  if (bytes <= PROTOBUF_MAX_BYTES) return;
  const gb = (bytes / 2 ** 30).toFixed(2);
  const fix =
    action === 'read'
      ? 'an ONNX file this large must keep its weights in external data (onnx.save(..., save_as_external_data=True))'
      : 'write it with writeModel(model, path, { externalData: true })';
  throw new LesionFuseError(`model is ${gb} GiB, over protobuf's 2 GiB limit; ${fix}`, { subject });
}

/** Read an ONNX file (and its external data, relative to the file's folder). */
export async function readModel(path: string, opts: Omit<DecodeOptions, 'path'> = {}): Promise<Model> {
  let st;
  try {
    st = await fs.stat(path);
  } catch {
    throw new LesionFuseError('no such file', { subject: path });
  }
  if (st.isDirectory()) throw new LesionFuseError('is a directory, expected an ONNX file', { subject: path });
  if (!st.isFile()) throw new LesionFuseError('is not a regular file (a FIFO, socket or device), expected an ONNX file', { subject: path });
  checkProtobufSize(st.size, path, 'read');
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    throw new LesionFuseError(`cannot read: ${(err as Error).message}`, { subject: path, cause: err });
  }
  return decodeModel(bytes, { ...opts, path });
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/** How each initializer's data is written: `undefined` = as its `external` field says, `null` = inline, a ref = external there. */
type ExternalPlan = Map<Initializer, ExternalDataRef | null>;

interface EncodeContext {
  plan?: ExternalPlan;
  storage?: TensorStorage;
}

/**
 * Write the fields of a message in the order of its original layout: unknown fields
 * verbatim where they were, known fields (via `emit`) where they first appeared,
 * and known fields that were absent before in field-number order among them.
 */
function assemble(
  w: WireWriter,
  known: readonly number[],
  layout: FieldRec[] | undefined,
  emit: (no: number, present: boolean, rec: FieldRec | undefined) => void,
): void {
  const done = new Set<number>();
  const inLayout = new Set<number>();
  for (const r of layout ?? []) if (!r.raw) inLayout.add(r.no);
  const emitBefore = (limit: number) => {
    for (const no of known) {
      if (no < limit && !done.has(no) && !inLayout.has(no)) {
        done.add(no);
        emit(no, false, undefined);
      }
    }
  };
  for (const rec of layout ?? []) {
    if (rec.raw) {
      emitBefore(rec.no);
      w.raw(rec.raw);
    } else if (!done.has(rec.no)) {
      emitBefore(rec.no);
      done.add(rec.no);
      emit(rec.no, true, rec);
    }
  }
  emitBefore(Infinity);
}

function str(w: WireWriter, no: number, s: string | undefined, present: boolean): void {
  if (present || (s !== undefined && s !== '')) w.stringField(no, s ?? '');
}

function encodeModelTo(w: WireWriter, m: Model, ctx: EncodeContext): void {
  const p = m.preserved as ModelPreserved | undefined;
  assemble(w, MODEL_KNOWN, p?.fields, (no, present) => {
    switch (no) {
      case M.irVersion:
        w.tag(1, WT_VARINT).varint(m.irVersion);
        break;
      case M.producerName:
        str(w, 2, m.producerName, present);
        break;
      case M.producerVersion:
        str(w, 3, m.producerVersion, present);
        break;
      case M.domain:
        str(w, 4, m.domain, present);
        break;
      case M.modelVersion:
        if (present || m.modelVersion !== 0) w.tag(5, WT_VARINT).varint(m.modelVersion);
        break;
      case M.docString:
        str(w, 6, m.docString, present);
        break;
      case M.graph:
        w.message(7, (gw) => encodeGraphTo(gw, m.graph, ctx, true));
        break;
      case M.opsetImport:
        if (p?.opsets && p.opsets.key === keyOf(m.opsetImports)) for (const r of p.opsets.raws) w.raw(r);
        else
          for (const o of m.opsetImports) {
            w.message(8, (ow) => {
              ow.stringField(1, o.domain);
              ow.tag(2, WT_VARINT).varint(o.version);
            });
          }
        break;
      case M.metadataProps: {
        const entries = Object.entries(m.metadata);
        if (p?.metadata && p.metadata.key === keyOf(entries)) for (const r of p.metadata.raws) w.raw(r);
        else
          for (const [k, v] of entries) {
            w.message(14, (ew) => {
              ew.stringField(1, k);
              ew.stringField(2, v);
            });
          }
        break;
      }
    }
  });
}

function encodeGraphTo(w: WireWriter, g: Graph, ctx: EncodeContext, topLevel: boolean): void {
  const p = g.preserved as MessagePreserved | undefined;
  assemble(w, GRAPH_KNOWN, p?.fields, (no, present) => {
    switch (no) {
      case 1:
        for (const n of g.nodes) w.message(1, (nw) => encodeNodeTo(nw, n, ctx));
        break;
      case 2:
        str(w, 2, g.name, present);
        break;
      case 5:
        for (const t of g.initializers) w.message(5, (tw) => encodeTensorTo(tw, t, topLevel ? ctx.plan?.get(t) : undefined, ctx.storage));
        break;
      case 10:
        str(w, 10, g.docString, present);
        break;
      case 11:
        for (const v of g.inputs) w.message(11, (vw) => encodeValueInfoTo(vw, v));
        break;
      case 12:
        for (const v of g.outputs) w.message(12, (vw) => encodeValueInfoTo(vw, v));
        break;
      case 13:
        for (const v of g.valueInfo) w.message(13, (vw) => encodeValueInfoTo(vw, v));
        break;
    }
  });
}

function encodeNodeTo(w: WireWriter, n: Node, ctx: EncodeContext): void {
  const p = n.preserved as NodePreserved | undefined;
  assemble(w, NODE_KNOWN, p?.fields, (no, present) => {
    switch (no) {
      case 1:
        for (const s of n.inputs) w.stringField(1, s);
        break;
      case 2:
        for (const s of n.outputs) w.stringField(2, s);
        break;
      case 3:
        str(w, 3, n.name, present);
        break;
      case 4:
        w.stringField(4, n.opType);
        break;
      case 5:
        for (const [name, a] of Object.entries(n.attributes)) encodeAttributeField(w, name, a, p?.attrs[name], ctx);
        break;
      case 6:
        str(w, 6, n.docString, present);
        break;
      case 7:
        str(w, 7, n.domain, present);
        break;
    }
  });
}

function encodeAttributeField(w: WireWriter, name: string, a: Attribute, snap: Snap | undefined, ctx: EncodeContext): void {
  if (a.type === 'opaque') {
    const v = a.value as OpaqueAttributeValue;
    if (!(v?.bytes instanceof Uint8Array)) throw new LesionFuseError(`attribute '${name}': opaque attributes must keep the bytes they were read with`);
    w.lenField(5, v.bytes);
    return;
  }
  if (a.type !== 'graph' && snap && snap.key === keyOf(a)) {
    w.raw(snap.raw);
    return;
  }
  w.message(5, (aw) => {
    if (a.type === 'graph') {
      assemble(aw, ATTR_GRAPH_KNOWN, snap?.fields, (no) => {
        if (no === 1) aw.stringField(1, name);
        else if (no === 6) aw.message(6, (gw) => encodeGraphTo(gw, a.value, ctx, false));
        else if (no === 20) aw.tag(20, WT_VARINT).varint(ATTR_TYPE.graph);
      });
      return;
    }
    aw.stringField(1, name);
    switch (a.type) {
      case 'float':
        aw.tag(2, WT_I32).float32(a.value);
        break;
      case 'int':
        aw.tag(3, WT_VARINT).varint(a.value);
        break;
      case 'string':
        aw.stringField(4, a.value);
        break;
      case 'tensor':
        aw.message(5, (tw) => encodeTensorTo(tw, a.value, undefined, ctx.storage));
        break;
      case 'floats':
        for (const x of a.value) aw.tag(7, WT_I32).float32(x);
        break;
      case 'ints':
        for (const x of a.value) aw.tag(8, WT_VARINT).varint(x);
        break;
      case 'strings':
        for (const x of a.value) aw.stringField(9, x);
        break;
    }
    aw.tag(20, WT_VARINT).varint(ATTR_TYPE[a.type]);
  });
}

function encodeValueInfoTo(w: WireWriter, v: ValueInfo): void {
  const p = v.preserved as ValueInfoPreserved | undefined;
  assemble(w, VALUEINFO_KNOWN, p?.fields, (no, present) => {
    if (no === 1) str(w, 1, v.name, present);
    else if (no === 3) str(w, 3, v.docString, present);
    else if (no === 2) {
      if (p?.type && p.type.key === keyOf([v.dataType, v.shape])) {
        w.raw(p.type.raw);
        return;
      }
      // Nothing known about the value: no type at all (an elem_type of 0 is invalid to readers).
      if (v.dataType === DataType.UNDEFINED && v.shape === null) return;
      w.message(2, (tw) =>
        tw.message(1, (ew) => {
          ew.tag(1, WT_VARINT).varint(v.dataType);
          if (v.shape) {
            const shape = v.shape;
            ew.message(2, (sw) => {
              for (const d of shape) {
                sw.message(1, (dw) => {
                  if (typeof d === 'number') dw.tag(1, WT_VARINT).varint(d);
                  else if (typeof d === 'string') dw.stringField(2, d);
                });
              }
            });
          }
        }),
      );
    }
  });
}

function bytesOf(v: TensorValues): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function encodeTensorTo(w: WireWriter, t: TensorData & Partial<Initializer>, planned: ExternalDataRef | null | undefined, force: TensorStorage | undefined): void {
  const p = t.preserved as TensorPreserved | undefined;
  const ext = planned === undefined ? t.external : planned ?? undefined;
  const storage = ext ? 'external' : force && force !== 'keep' ? force : p?.storage ?? 'raw';
  const what = `tensor '${t.name ?? ''}'`;
  if (storage !== 'external' && t.external && t.values.length === 0 && numel(t.dims) > 0) {
    throw new LesionFuseError(`${what}: its external data was not loaded; read the model with loadExternalData: true to write it elsewhere`);
  }
  const packedOf = (rec: FieldRec | undefined) => !rec || rec.wt === WT_LEN;
  assemble(w, TENSOR_KNOWN, p?.fields, (no, present, rec) => {
    switch (no) {
      case 1:
        if (rec && rec.wt === WT_LEN) {
          if (t.dims.length) w.message(1, (dw) => t.dims.forEach((d) => dw.varint(d)));
        } else for (const d of t.dims) w.tag(1, WT_VARINT).varint(d);
        break;
      case 2:
        w.tag(2, WT_VARINT).varint(t.dataType);
        break;
      case 8:
        str(w, 8, t.name, present);
        break;
      case 12:
        str(w, 12, t.docString, present);
        break;
      case 9:
        if (storage === 'raw' && t.dataType !== DataType.STRING && (present || !p || t.values.length > 0)) w.lenField(9, bytesOf(t.values));
        break;
      case 13:
        if (ext) {
          if (p?.external && p.external.key === keyOf(ext)) for (const r of p.external.raws) w.raw(r);
          else {
            const entries: [string, string][] = [
              ['location', ext.location],
              ['offset', String(ext.offset)],
              ['length', String(ext.length)],
            ];
            if (ext.checksum !== undefined) entries.push(['checksum', ext.checksum]);
            for (const [k, v] of entries) {
              w.message(13, (ew) => {
                ew.stringField(1, k);
                ew.stringField(2, v);
              });
            }
          }
        }
        break;
      case 14:
        if (ext) w.tag(14, WT_VARINT).varint(1);
        break;
      default:
        if (storage === 'typed' && typedFieldOf(t.dataType) === no) writeTyped(w, no, t, packedOf(rec));
    }
  });
}

function typedFieldOf(dt: DataType): number {
  switch (dt) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      return 4;
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      return 10;
    case DataType.INT64:
      return 7;
    case DataType.UINT32:
    case DataType.UINT64:
      return 11;
    case DataType.STRING:
    case DataType.UNDEFINED:
      return -1;
    default:
      return 5;
  }
}

function writeTyped(w: WireWriter, no: number, t: TensorData, packed: boolean): void {
  const v = t.values;
  if (v.length === 0) return;
  if (no === 4 || no === 10) {
    // Packed fixed-width floats are exactly the little-endian bytes.
    if (packed) w.lenField(no, bytesOf(v));
    else {
      const f = no === 4 ? new Float32Array(v.buffer, v.byteOffset, v.byteLength / 4) : new Float64Array(v.buffer, v.byteOffset, v.byteLength / 8);
      for (const x of f) (no === 4 ? w.tag(no, WT_I32).float32(x) : w.tag(no, WT_I64).float64(x));
    }
    return;
  }
  // Varint fields: int32_data holds sign-extended values for signed types, bit patterns for float16.
  const items = v as ArrayLike<number | bigint>;
  if (packed) {
    w.message(no, (pw) => {
      for (let i = 0; i < items.length; i++) pw.varint(items[i]!);
    });
  } else for (let i = 0; i < items.length; i++) w.tag(no, WT_VARINT).varint(items[i]!);
}

function encodeWith(model: Model, ctx: EncodeContext, subject: string): Uint8Array[] {
  const w = new WireWriter();
  encodeModelTo(w, model, ctx);
  checkProtobufSize(w.length, subject, 'write');
  return w.chunks();
}

function concatChunks(chunks: Uint8Array[]): Uint8Array {
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/**
 * Where tensor values go in a TensorProto: 'keep' = where they were read from
 * (raw_data for tensors the SDK made), 'raw' = raw_data (what numpy_helper and
 * torch write; compact), 'typed' = the typed repeated fields (float_data,
 * int32_data, int64_data..., what onnx.helper.make_tensor writes by default).
 */
export type TensorStorage = 'keep' | 'raw' | 'typed';

export interface EncodeOptions {
  /** Default 'keep'. Applies to initializers and to tensor attributes that changed. */
  tensorStorage?: TensorStorage;
}

/**
 * Encode a model as ModelProto bytes. Initializers with `external` set are
 * written as references (their bytes are not included): use `writeModel` to
 * write the data file too.
 */
export function encodeModel(model: Model, opts: EncodeOptions = {}): Uint8Array {
  return concatChunks(encodeWith(model, { storage: opts.tensorStorage }, `model '${model.graph?.name ?? ''}'`));
}

export interface WriteOptions extends EncodeOptions {
  /**
   * Keep large initializers in a separate data file next to the model:
   * `true` = `<model file name>.data`, tensors of at least 1024 bytes;
   * an object sets `location` (a file name in the model's folder) and `sizeThreshold` (bytes);
   * INT64 tensors always stay inline (onnxruntime must read shape tensors while loading);
   * `false` = everything inside the model file.
   * Default: external when the model was read with external data (or any initializer has `external`), else inline.
   */
  externalData?: boolean | { location?: string; sizeThreshold?: number };
}

/**
 * Write a model atomically (temporary file, then rename); with external data the
 * data file is written (atomically) first, so the model never points at a
 * half-written data file.
 */
export async function writeModel(model: Model, path: string, opts: WriteOptions = {}): Promise<void> {
  const inits = model.graph.initializers;
  const wantExternal = opts.externalData ?? inits.some((t) => t.external);
  const plan: ExternalPlan = new Map();
  let dataFile: { path: string; chunks: Uint8Array[] } | undefined;
  if (!wantExternal) {
    for (const t of inits) plan.set(t, null);
  } else {
    const o = typeof wantExternal === 'object' ? wantExternal : {};
    const location = o.location ?? `${basename(path)}.data`;
    if (location.includes('/') || location.includes(sep) || location === '..' || location === '.') {
      throw new LesionFuseError(`external data location must be a plain file name in the model's folder, got '${location}'`, { subject: path });
    }
    const threshold = o.sizeThreshold ?? 1024;
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of inits) {
      if (t.external && t.values.length === 0 && numel(t.dims) > 0) {
        throw new LesionFuseError(`tensor '${t.name}': its external data was not loaded; read the model with loadExternalData: true`, { subject: path });
      }
      const bytes = bytesOf(t.values);
      // INT64 tensors (shapes, axes, indices) stay inline: onnxruntime reads them while loading the graph
      // and refuses ones kept in external data ("Cannot parse data from external tensors").
      if (t.dataType === DataType.STRING || t.dataType === DataType.INT64 || bytes.length < threshold) {
        plan.set(t, null);
        continue;
      }
      // Align each tensor to 64 bytes so readers can map it directly.
      const pad = (64 - (offset % 64)) % 64;
      if (pad) chunks.push(new Uint8Array(pad));
      offset += pad;
      chunks.push(bytes);
      plan.set(t, { location, offset, length: bytes.length });
      offset += bytes.length;
    }
    // The data file is written in one piece; a Node.js buffer holds at most 4 GiB.
    if (offset >= 2 ** 32) {
      throw new LesionFuseError(`external data would be ${(offset / 2 ** 30).toFixed(2)} GiB; writeModel writes at most 4 GiB of external data per model`, { subject: path });
    }
    dataFile = { path: join(dirname(path), location), chunks };
  }
  const modelChunks = encodeWith(model, { plan, storage: opts.tensorStorage }, path);
  if (dataFile && dataFile.chunks.length > 0) await writeFileAtomic(dataFile.path, concatChunks(dataFile.chunks));
  await writeFileAtomic(path, concatChunks(modelChunks));
}

/**
 * Only a model file's metadata_props (and ir_version, opsets), without decoding
 * the graph or reading external data: cheap enough to list many models.
 */
export async function readModelMetadata(path: string): Promise<{ irVersion: number; opsetImports: OpsetImport[]; metadata: Record<string, string> }> {
  let st;
  try {
    st = await fs.stat(path);
  } catch {
    throw new LesionFuseError('no such file', { subject: path });
  }
  checkProtobufSize(st.size, path, 'read');
  const bytes = await fs.readFile(path);
  if (bytes.length === 0) throw new LesionFuseError('empty file (0 bytes), not an ONNX model', { subject: path });
  try {
    const fields = scanFields(bytes);
    checkWireTypes('model', fields);
    const out = { irVersion: 0, opsetImports: [] as OpsetImport[], metadata: {} as Record<string, string> };
    for (const f of fields) {
      if (f.no === M.irVersion) out.irVersion = new WireReader(bytes, f.vstart, f.end).int64();
      else if (f.no === M.metadataProps) {
        const [k, v] = decodeStringEntries(bytes, f);
        out.metadata[k] = v;
      } else if (f.no === M.opsetImport) {
        const o: OpsetImport = { domain: '', version: 0 };
        for (const e of scanFields(bytes, f.vstart, f.end)) {
          if (e.no === 1 && e.wt === WT_LEN) o.domain = fieldString(bytes, e);
          else if (e.no === 2 && e.wt === WT_VARINT) o.version = new WireReader(bytes, e.vstart, e.end).int64();
        }
        out.opsetImports.push(o);
      }
    }
    return out;
  } catch (err) {
    if (err instanceof WireError) throw new LesionFuseError(err.truncated ? `truncated ONNX file (${err.message})` : `not an ONNX model (${err.message})`, { subject: path });
    throw err;
  }
}
