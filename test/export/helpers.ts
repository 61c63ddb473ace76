/**
 * Test helpers for the rewrite passes: a few-line way to make small graphs, run them in onnxruntime-node and
 * compare outputs. The reference for every pass is onnxruntime's output on the graph before the pass.
 */
import * as ort from '../../src/util/ort.js';
import { DataType, type Attribute, type Dim, type Model, type Node, type TensorData } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { floatTensor, fromOrtTensor, tensorToFloat32 } from '../../src/onnx/tensor.js';
import { mulberry32 } from '../../src/runtime/metrics.js';

/** A seeded uniform generator in [-1, 1), so tests are repeatable. */
export function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

export function randomTensor(dims: number[], seed: number, scale = 1, offset = 0): TensorData {
  const r = rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = r() * scale + offset;
  return floatTensor(dims, v);
}

type AttrValue = number | number[] | string | TensorData | Attribute;
function toAttr(v: AttrValue): Attribute {
  if (typeof v === 'object' && v !== null && 'type' in v && 'value' in v) return v as Attribute;
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) return v.every((x) => Number.isInteger(x)) ? { type: 'ints', value: v } : { type: 'floats', value: v };
  return { type: 'tensor', value: v as TensorData };
}
export const f = (value: number): Attribute => ({ type: 'float', value });

/** A tiny graph maker (tests only). */
export class Net {
  nodes: Node[] = [];
  model: Model;
  private k = 0;
  constructor(opset = 17) {
    this.model = {
      irVersion: 8,
      opsetImports: [{ domain: '', version: opset }],
      producerName: 'lesionfuse-test',
      producerVersion: '',
      domain: '',
      modelVersion: 0,
      docString: '',
      metadata: {},
      graph: { name: 'test', nodes: this.nodes, inputs: [], outputs: [], initializers: [], valueInfo: [] },
    };
  }
  input(name: string, shape: Dim[], dataType = DataType.FLOAT): string {
    this.model.graph.inputs.push({ name, dataType, shape });
    return name;
  }
  init(name: string, t: TensorData): string {
    this.model.graph.initializers.push({ name, ...t });
    return name;
  }
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, name?: string): string {
    return this.opN(opType, inputs, attrs, nOut, name)[0]!;
  }
  opN(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, name?: string): string[] {
    const id = name ?? `${opType.toLowerCase()}${this.k++}`;
    const outputs = Array.from({ length: nOut }, (_, i) => (nOut === 1 ? `${id}_out` : `${id}_out${i}`));
    const attributes: Record<string, Attribute> = {};
    for (const [k, v] of Object.entries(attrs)) attributes[k] = toAttr(v);
    this.nodes.push({ name: id, opType, domain: '', inputs, outputs, attributes });
    return outputs;
  }
  output(value: string, shape: Dim[] | null = null, dataType = DataType.FLOAT): void {
    this.model.graph.outputs.push({ name: value, dataType, shape });
  }
  build(metadata: Record<string, string> = {}): Model {
    this.model.metadata = metadata;
    return structuredClone(this.model);
  }
}

/** Run a model in onnxruntime-node; returns every output as float32 values plus dims. */
export async function runModel(model: Model, feeds: Record<string, TensorData>): Promise<Record<string, { dims: number[]; values: Float32Array }>> {
  const s = await ort.InferenceSession.create(encodeModel(model), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) f[k] = new ort.Tensor(t.dataType === DataType.FLOAT16 ? 'float16' : 'float32', t.values as never, t.dims);
    const r = await s.run(f);
    const out: Record<string, { dims: number[]; values: Float32Array }> = {};
    for (const [k, v] of Object.entries(r)) {
      const t = fromOrtTensor(v);
      out[k] = { dims: t.dims, values: tensorToFloat32(t) };
    }
    return out;
  } finally {
    await s.release();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Run both models on the same inputs and return the largest output difference (Infinity if shapes differ). */
export async function outputDrift(before: Model, after: Model, feeds: Record<string, TensorData>): Promise<number> {
  const a = await runModel(before, feeds);
  const b = await runModel(after, feeds);
  let m = 0;
  for (const k of Object.keys(a)) {
    if (!b[k] || a[k]!.dims.join() !== b[k]!.dims.join()) return Infinity;
    m = Math.max(m, maxAbsDiff(a[k]!.values, b[k]!.values));
  }
  return m;
}

export function countOps(m: Model, op: string): number {
  return m.graph.nodes.filter((n) => n.opType === op).length;
}
