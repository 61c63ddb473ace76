/**
 * What a model is, at a glance: inputs/outputs, opsets, ops, parameters, what is
 * quantized, multiply-adds per image at the model's input size. Used by
 * `lesionfuse inspect`, the benchmark reports and edge-bundle manifests.
 */
import { DataType, defaultOpset, type Dim, type Graph, type Model, type Node, type OpsetImport, type TensorData } from './ir.js';
import { consumerMap, initializerMap } from './graph.js';
import { inferGraphShapes } from './shape.js';
import { dataTypeName, numel, byteLengthOf } from './tensor.js';
import { readSegmentationMetadata } from './metadata.js';

export interface ValueSummary {
  name: string;
  /** e.g. 'float32'. */
  type: string;
  shape: Dim[] | null;
}

export interface QuantizationSummary {
  /** QuantizeLinear nodes whose output feeds a DequantizeLinear (activation QDQ pairs). */
  qdqPairs: number;
  quantizeLinear: number;
  dequantizeLinear: number;
  /** DequantizeLinear nodes reading an 8-bit (or 4-bit) integer initializer: quantized weights. */
  int8Weights: number;
  /** Elements in those integer weights. */
  int8WeightParams: number;
  /** DequantizeLinear nodes reading an int32 initializer (quantized biases). */
  int32Biases: number;
  /** DynamicQuantizeLinear / MatMulInteger / ConvInteger / QLinear* nodes (integer ops that are not QDQ). */
  integerOps: number;
  /** True when any of the above is present. */
  quantized: boolean;
}

export interface ModelSummary {
  graphName: string;
  irVersion: number;
  opsets: OpsetImport[];
  producer: string;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  nodeCount: number;
  /** op type (with domain prefix when not ai.onnx) -> count, most frequent first. */
  opHistogram: Record<string, number>;
  /**
   * Learned parameters: elements of weight tensors, each counted once (quantization scales, zero points and
   * shape constants excluded). Weights are found wherever a graph keeps them: initializers, `Constant` nodes,
   * and both inside the subgraphs of If / Loop / Scan nodes.
   */
  parameters: number;
  /** Of `parameters`, those held in `Constant` nodes (any graph). */
  parametersInConstantNodes: number;
  /** Of `parameters`, those held inside If / Loop / Scan subgraphs (initializers or Constant nodes there). */
  parametersInSubgraphs: number;
  /** Bytes of all initializer data (subgraph initializers included). */
  initializerBytes: number;
  /** Initializers, subgraph initializers included. */
  initializerCount: number;
  /** Initializers by data type name -> element count. */
  parametersByType: Record<string, number>;
  quantization: QuantizationSummary;
  /** Multiply-adds for one image at `macsInputShape`, from Conv, ConvTranspose, Gemm, MatMul (and their integer forms); null when a shape is unknown. */
  macsPerImage: number | null;
  macsByOp: Record<string, number>;
  /** The input shapes the multiply-adds were computed at (batch 1; H x W from metadata when the model's are symbolic). */
  macsInputShape: Record<string, Dim[] | null>;
  /** Nodes whose multiply-adds could not be computed (shape unknown). */
  macsUnknownNodes: string[];
  fileSizeBytes?: number;
  metadata: Record<string, string>;
}

export interface InspectOptions {
  /** The model file's size, when it came from a file. */
  fileSizeBytes?: number;
  /** H x W for the multiply-adds where the model's input height/width are symbolic (overrides the metadata's). */
  inputSize?: { height: number; width: number };
}

const QPARAM_POSITIONS: Record<string, number[]> = {
  QuantizeLinear: [1, 2],
  DequantizeLinear: [1, 2],
  QLinearConv: [1, 2, 4, 5, 6, 7],
  QLinearMatMul: [1, 2, 4, 5, 6, 7],
  QLinearAdd: [1, 2, 4, 5, 6, 7],
  ConvInteger: [2, 3],
  MatMulInteger: [2, 3],
};
const INTEGER_OPS = new Set(['DynamicQuantizeLinear', 'MatMulInteger', 'ConvInteger', 'QLinearConv', 'QLinearMatMul', 'QLinearAdd', 'QLinearMul', 'QLinearConcat', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearGlobalAveragePool']);
const INT8ISH = new Set([DataType.INT8, DataType.UINT8, DataType.INT4, DataType.UINT4, DataType.INT16, DataType.UINT16]);
const FLOATISH = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

function opKey(n: { opType: string; domain: string }): string {
  return n.domain === '' || n.domain === 'ai.onnx' ? n.opType : `${n.domain}:${n.opType}`;
}

/** Inputs with batch 1 and, where H/W are symbolic, the metadata's input size. */
function concreteInputs(model: Model, given?: { height: number; width: number }): Graph['inputs'] {
  let size: { height: number; width: number } | null = given ?? null;
  if (!size) {
    try {
      size = readSegmentationMetadata(model.metadata).inputSize;
    } catch {
      size = null;
    }
  }
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  return model.graph.inputs
    .filter((v) => !inits.has(v.name))
    .map((v) => {
      if (!v.shape) return { ...v };
      const shape = v.shape.map((d, i) => {
        if (typeof d === 'number') return i === 0 && v.shape!.length === 4 ? 1 : d;
        if (i === 0) return 1;
        if (v.shape!.length === 4 && size && i === 2) return size.height;
        if (v.shape!.length === 4 && size && i === 3) return size.width;
        return d;
      });
      return { ...v, shape };
    });
}

interface ConstantTensor {
  name: string;
  tensor: TensorData;
  kind: 'initializer' | 'constant-node';
  /** 0 for the main graph, 1+ inside subgraphs. */
  depth: number;
}

/** The tensor a default-domain Constant node holds in `value` / `value_floats` (scalars and ints are never weights). */
function constantNodeValue(n: Node): TensorData | null {
  if (n.opType !== 'Constant' || !(n.domain === '' || n.domain === 'ai.onnx')) return null;
  const a = n.attributes['value'];
  if (a?.type === 'tensor') return a.value;
  const f = n.attributes['value_floats'];
  if (f && (f.type === 'floats' || f.type === 'ints')) return { dataType: DataType.FLOAT, dims: [f.value.length], values: Float32Array.from(f.value) };
  return null;
}

/** Every initializer and Constant-node tensor of `g` and of its subgraphs, recursively. */
function constantTensors(g: Graph, depth = 0, out: ConstantTensor[] = []): ConstantTensor[] {
  for (const t of g.initializers) out.push({ name: t.name, tensor: t, kind: 'initializer', depth });
  for (const n of g.nodes) {
    const v = constantNodeValue(n);
    if (v && n.outputs[0]) out.push({ name: n.outputs[0], tensor: v, kind: 'constant-node', depth });
    for (const a of Object.values(n.attributes)) if (a.type === 'graph') constantTensors(a.value, depth + 1, out);
  }
  return out;
}

/** value name -> the nodes reading it, in the graph and all its subgraphs (they may read outer-scope names). */
function deepConsumerMap(g: Graph, into: Map<string, Node[]> = new Map()): Map<string, Node[]> {
  for (const [k, v] of consumerMap(g)) into.set(k, [...(into.get(k) ?? []), ...v]);
  for (const n of g.nodes) for (const a of Object.values(n.attributes)) if (a.type === 'graph') deepConsumerMap(a.value, into);
  return into;
}

/**
 * A learned weight, judged by its type and uses, the same way wherever it is kept (so that folding a
 * Constant node into an initializer does not change the count): float tensors that are not quantization
 * scales, integer tensors that are dequantized or read by integer ops.
 */
function isWeightTensor(t: TensorData, uses: { op: string; pos: number }[]): boolean {
  const isQParam = uses.length > 0 && uses.every((u) => QPARAM_POSITIONS[u.op]?.includes(u.pos));
  if (isQParam) return false;
  const feedsDq = uses.some((u) => u.op === 'DequantizeLinear' && u.pos === 0);
  return FLOATISH.has(t.dataType) || feedsDq || (INT8ISH.has(t.dataType) && uses.some((u) => INTEGER_OPS.has(u.op))) || (t.dataType === DataType.INT32 && uses.some((u) => u.op === 'QLinearConv' && u.pos === 8));
}

/** Summarise a model (no file access; pass the file size if you have it). */
export function inspectModel(model: Model, opts: InspectOptions = {}): ModelSummary {
  const g = model.graph;
  const inits = initializerMap(g);
  const initNames = new Set(inits.keys());
  const consumers = consumerMap(g);

  const opHistogram: Record<string, number> = {};
  for (const n of g.nodes) opHistogram[opKey(n)] = (opHistogram[opKey(n)] ?? 0) + 1;
  const sortedHist = Object.fromEntries(Object.entries(opHistogram).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));

  // Parameters: each constant tensor once (initializers and Constant nodes, in the main graph and in every
  // If/Loop/Scan subgraph), classified by how it is used anywhere in the model.
  const tensors = constantTensors(g);
  const allConsumers = deepConsumerMap(g);
  let parameters = 0;
  let parametersInConstantNodes = 0;
  let parametersInSubgraphs = 0;
  let initializerBytes = 0;
  let initializerCount = 0;
  const parametersByType: Record<string, number> = {};
  for (const t of tensors) {
    const n = numel(t.tensor.dims);
    if (t.kind === 'initializer') {
      initializerBytes += byteLengthOf(t.tensor.dataType, n);
      initializerCount++;
    }
    const uses: { op: string; pos: number }[] = [];
    for (const c of allConsumers.get(t.name) ?? []) c.inputs.forEach((inp, pos) => inp === t.name && uses.push({ op: c.opType, pos }));
    if (isWeightTensor(t.tensor, uses)) {
      parameters += n;
      if (t.kind === 'constant-node') parametersInConstantNodes += n;
      if (t.depth > 0) parametersInSubgraphs += n;
      const k = dataTypeName(t.tensor.dataType);
      parametersByType[k] = (parametersByType[k] ?? 0) + n;
    }
  }
  const constByName = new Map<string, TensorData>(tensors.filter((t) => t.depth === 0).map((t) => [t.name, t.tensor]));

  // Quantization.
  const q: QuantizationSummary = { qdqPairs: 0, quantizeLinear: 0, dequantizeLinear: 0, int8Weights: 0, int8WeightParams: 0, int32Biases: 0, integerOps: 0, quantized: false };
  for (const n of g.nodes) {
    if (n.opType === 'QuantizeLinear') {
      q.quantizeLinear++;
      if ((consumers.get(n.outputs[0] ?? '') ?? []).some((c) => c.opType === 'DequantizeLinear')) q.qdqPairs++;
    } else if (n.opType === 'DequantizeLinear') {
      q.dequantizeLinear++;
      const w = inits.get(n.inputs[0] ?? '') ?? constByName.get(n.inputs[0] ?? '');
      if (w && INT8ISH.has(w.dataType)) {
        q.int8Weights++;
        q.int8WeightParams += numel(w.dims);
      } else if (w && w.dataType === DataType.INT32) q.int32Biases++;
    } else if (INTEGER_OPS.has(n.opType)) q.integerOps++;
  }
  q.quantized = q.quantizeLinear + q.dequantizeLinear + q.integerOps > 0;

  // Multiply-adds at batch 1 and the model's input size.
  const inputs = concreteInputs(model, opts.inputSize);
  const shapes = inferGraphShapes({ ...g, inputs: [...inputs, ...g.inputs.filter((v) => initNames.has(v.name))] }, defaultOpset(model) ?? 17);
  const macsByOp: Record<string, number> = {};
  const unknown: string[] = [];
  const shapeOf = (name: string | undefined) => (name ? shapes.get(name)?.shape ?? null : null);
  const allNum = (s: Dim[] | null): s is number[] => !!s && s.every((d) => typeof d === 'number');
  for (const n of g.nodes) {
    let macs: number | null | undefined;
    switch (n.opType) {
      case 'Conv':
      case 'ConvInteger':
      case 'QLinearConv': {
        const w = shapeOf(n.opType === 'QLinearConv' ? n.inputs[3] : n.inputs[1]);
        const y = shapeOf(n.outputs[0]);
        macs = allNum(w) && allNum(y) ? numel(y) * numel(w.slice(1)) : null;
        break;
      }
      case 'ConvTranspose': {
        const w = shapeOf(n.inputs[1]);
        const x = shapeOf(n.inputs[0]);
        macs = allNum(w) && allNum(x) ? numel(x) * numel(w.slice(1)) : null;
        break;
      }
      case 'Gemm': {
        const a = shapeOf(n.inputs[0]);
        const y = shapeOf(n.outputs[0]);
        const transA = n.attributes.transA?.type === 'int' && n.attributes.transA.value === 1;
        macs = allNum(a) && allNum(y) && a.length === 2 ? numel(y) * (transA ? a[0]! : a[1]!) : null;
        break;
      }
      case 'MatMul':
      case 'MatMulInteger':
      case 'QLinearMatMul': {
        const a = shapeOf(n.inputs[0]);
        const y = shapeOf(n.outputs[0]);
        macs = allNum(a) && allNum(y) ? numel(y) * a[a.length - 1]! : null;
        break;
      }
      default:
        macs = undefined;
    }
    if (macs === undefined) continue;
    if (macs === null) unknown.push(n.name || `${n.opType} -> ${n.outputs[0]}`);
    else macsByOp[n.opType] = (macsByOp[n.opType] ?? 0) + macs;
  }
  const total = Object.values(macsByOp).reduce((s, x) => s + x, 0);

  const summary: ModelSummary = {
    graphName: g.name,
    irVersion: model.irVersion,
    opsets: model.opsetImports.map((o) => ({ ...o })),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    inputs: g.inputs.filter((v) => !initNames.has(v.name)).map((v) => ({ name: v.name, type: dataTypeName(v.dataType), shape: v.shape })),
    outputs: g.outputs.map((v) => ({ name: v.name, type: dataTypeName(v.dataType), shape: v.shape })),
    nodeCount: g.nodes.length,
    opHistogram: sortedHist,
    parameters,
    parametersInConstantNodes,
    parametersInSubgraphs,
    initializerBytes,
    initializerCount,
    parametersByType,
    quantization: q,
    macsPerImage: unknown.length > 0 ? null : total,
    macsByOp,
    macsInputShape: Object.fromEntries(inputs.map((v) => [v.name, v.shape])),
    macsUnknownNodes: unknown,
    metadata: { ...model.metadata },
  };
  if (opts.fileSizeBytes !== undefined) summary.fileSizeBytes = opts.fileSizeBytes;
  return summary;
}

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}
function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
function fmtShape(s: Dim[] | null): string {
  return s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '(unknown)';
}

/** A readable, aligned text rendering of a summary (what `lesionfuse inspect` prints). */
export function formatModelSummary(s: ModelSummary, title?: string): string {
  const lines: string[] = [];
  const kv = (k: string, v: string) => lines.push(`  ${k.padEnd(18)} ${v}`);
  if (title) lines.push(title);
  kv('graph', s.graphName || '(unnamed)');
  kv('producer', s.producer || '(unknown)');
  kv('ir version', String(s.irVersion));
  kv('opsets', s.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', '));
  if (s.fileSizeBytes !== undefined) kv('file size', fmtBytes(s.fileSizeBytes));
  kv('parameters', `${fmtCount(s.parameters)} (${s.parameters})` + (Object.keys(s.parametersByType).length ? `  ${Object.entries(s.parametersByType).map(([t, n]) => `${t} ${fmtCount(n)}`).join(', ')}` : ''));
  const where = [s.parametersInConstantNodes ? `${fmtCount(s.parametersInConstantNodes)} in Constant nodes` : '', s.parametersInSubgraphs ? `${fmtCount(s.parametersInSubgraphs)} inside If/Loop/Scan subgraphs` : ''].filter(Boolean);
  if (where.length) kv('', `of which ${where.join(', ')}`);
  kv('initializers', `${s.initializerCount} (${fmtBytes(s.initializerBytes)})`);
  kv('multiply-adds', s.macsPerImage === null ? `unknown (shapes not computable at: ${s.macsUnknownNodes.slice(0, 3).join(', ')})` : `${fmtCount(s.macsPerImage)} per image at ${Object.values(s.macsInputShape).map(fmtShape).join(', ')}`);
  const q = s.quantization;
  kv('quantized', q.quantized ? `yes: ${q.qdqPairs} QDQ pairs, ${q.int8Weights} int8 weights (${fmtCount(q.int8WeightParams)}), ${q.int32Biases} int32 biases, ${q.integerOps} integer ops` : 'no');
  lines.push('  inputs');
  for (const v of s.inputs) lines.push(`    ${v.name.padEnd(24)} ${v.type.padEnd(9)} ${fmtShape(v.shape)}`);
  lines.push('  outputs');
  for (const v of s.outputs) lines.push(`    ${v.name.padEnd(24)} ${v.type.padEnd(9)} ${fmtShape(v.shape)}`);
  lines.push(`  ops (${s.nodeCount} nodes)`);
  const hist = Object.entries(s.opHistogram);
  const width = Math.max(8, ...hist.map(([k]) => k.length));
  for (const [k, n] of hist) lines.push(`    ${k.padEnd(width)} ${String(n).padStart(6)}${s.macsByOp[k] ? `   ${fmtCount(s.macsByOp[k]!)} MACs` : ''}`);
  const meta = Object.entries(s.metadata);
  if (meta.length) {
    lines.push('  metadata');
    for (const [k, v] of meta) lines.push(`    ${k.padEnd(26)} ${v}`);
  }
  return lines.join('\n');
}
