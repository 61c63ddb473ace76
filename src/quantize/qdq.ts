/**
 * Static INT8 in QDQ form: which nodes to quantize (the plan), and the graph edit that
 * inserts QuantizeLinear/DequantizeLinear pairs with per-channel symmetric int8 weights
 * and int32 biases (the insertion).
 *
 * Why QDQ and not QOperator (QLinearConv...): a QDQ model is plain ONNX that every
 * runtime opens (onnxruntime-web has no ConvInteger kernel), it stays a float model to
 * tools that do not know INT8, and onnxruntime fuses DQ -> Conv -> Q into its INT8
 * kernels where the CPU has them. Choices follow onnxruntime's Python QDQ quantizer,
 * the peer, so the two can be compared: activation tensors get one Q/DQ pair each,
 * MaxPool/Resize/Reshape-like ops share their input's parameters (exact: they only move
 * or select values), a Relu whose input is a quantized layer's only output is folded
 * into that output's range (exact: the zero point then sits at the range's bottom).
 */
import { DataType, defaultOpset, type Attribute, type Graph, type Initializer, type Model, type Node } from '../onnx/ir.js';
import { numel, tensorToFloat32 } from '../onnx/tensor.js';
import { cloneModel, readFloatAttr, readIntAttr } from '../onnx/graph.js';
import { inferShapes } from '../onnx/shape.js';
import { LesionFuseError } from '../util/errors.js';
import {
  activationParams, adjustWeightScalesForBias, quantizeArray, quantizeBias, quantizePerChannel, perChannelWeightScales,
  quantizeWeightsPerTensor, type QParams, type QuantType,
} from './arith.js';

/** Layers with a weight (or two activations, for MatMul): the INT8 work. */
export const WEIGHT_OPS: readonly string[] = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'];
/** Ops that only move or select values: their output reuses the input's scale and zero point (exact). */
export const SHARED_PARAM_OPS: readonly string[] = ['MaxPool', 'Resize', 'Relu', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze'];
/** Ops kept in INT8 whose output gets its own calibrated range. */
export const OWN_RANGE_OPS: readonly string[] = ['Add', 'Concat', 'AveragePool', 'GlobalAveragePool'];

/** A node LesionFuse quantizes, and how. */
export interface PlannedNode {
  key: string;
  opType: string;
  kind: 'weight' | 'activations' | 'shared' | 'own' | 'fused-relu';
}

/** A node left in float, with the reason in words. */
export interface FloatNode {
  key: string;
  opType: string;
  reason: string;
}

/** What to quantize: decided before calibration, so calibration only exposes the tensors it needs. */
export interface QuantizationPlan {
  quantized: PlannedNode[];
  float: FloatNode[];
  /** Activation tensors (names in the float model) whose calibrated range sets a scale. */
  calibrate: string[];
}

/** Options shared by planning and insertion. Defaults are the ViT-safe S8S8 per-channel preset. */
export interface QdqOptions {
  /** Activation type (default 'int8', onnxruntime's S8S8 QDQ default). */
  activationType?: QuantType;
  /**
   * Weight type (default 'int8': per-channel symmetric). 'uint8' gives per-tensor asymmetric uint8
   * weights: the form that collapses accuracy in other quantizers, kept only to show the trap.
   */
  weightType?: QuantType;
  /** One scale per output channel for int8 weights (default true). */
  perChannel?: boolean;
  /** Use the reduced 7-bit ranges (default false; for CPUs without VNNI that saturate in u8s8 kernels). */
  reduceRange?: boolean;
  /** Node names (or `OpType#index` for unnamed nodes) kept in float. */
  exclude?: readonly string[];
  /** 'vit-safe' (default) keeps a transformer's residual/bias Adds in float; 'all' quantizes every supported op. */
  preset?: 'vit-safe' | 'all';
  /** Quantize only these nodes (by key): used by the per-layer sensitivity probes. */
  only?: ReadonlySet<string>;
  /** MatMuls with a constant weight are left to dynamic INT8 (src/quantize/dynamic.ts) instead of static QDQ. */
  dynamicMatMuls?: boolean;
}

/** A node's key: its name, or `OpType#index` when it has none (stable for a given model). */
export function nodeKey(n: Node, index: number): string {
  return n.name || `${n.opType}#${index}`;
}

function isDefaultDomain(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}


/** A constant behind a value name: an initializer, a Constant node, or a Cast to float of either (fp16 storage). */
export interface ConstantValue {
  values: Float32Array;
  dims: number[];
}

/** Indexes of a graph that the planner and the insertion both need. */
class GraphIndex {
  readonly producer = new Map<string, Node>();
  readonly consumers = new Map<string, Node[]>();
  readonly inits = new Map<string, Initializer>();
  readonly outputs: Set<string>;
  readonly inputs: Set<string>;
  readonly keys = new Map<Node, string>();
  readonly byKey = new Map<string, Node>();
  constructor(readonly g: Graph) {
    g.nodes.forEach((n, i) => {
      const k = nodeKey(n, i);
      this.keys.set(n, k);
      this.byKey.set(k, n);
      for (const o of n.outputs) if (o) this.producer.set(o, n);
      for (const inp of n.inputs) {
        if (!inp) continue;
        const l = this.consumers.get(inp);
        if (l) {
          if (!l.includes(n)) l.push(n);
        } else this.consumers.set(inp, [n]);
      }
    });
    for (const t of g.initializers) this.inits.set(t.name, t);
    this.outputs = new Set(g.outputs.map((o) => o.name));
    this.inputs = new Set(g.inputs.filter((i) => !this.inits.has(i.name)).map((i) => i.name));
  }
  key(n: Node): string {
    return this.keys.get(n)!;
  }
  uses(name: string): number {
    return (this.consumers.get(name)?.length ?? 0) + (this.outputs.has(name) ? 1 : 0);
  }
  /** The float value of a constant input, or null when the value is computed at run time. */
  constant(name: string): ConstantValue | null {
    const t = this.inits.get(name);
    if (t) return isFloatType(t.dataType) ? { values: tensorToFloat32(t), dims: [...t.dims] } : null;
    const p = this.producer.get(name);
    if (!p || !isDefaultDomain(p)) return null;
    if (p.opType === 'Constant') {
      const v = p.attributes['value'];
      return v && v.type === 'tensor' && isFloatType(v.value.dataType) ? { values: tensorToFloat32(v.value), dims: [...v.value.dims] } : null;
    }
    if (p.opType === 'Cast' && readIntAttr(p, 'to', 0) === DataType.FLOAT && p.inputs[0]) return this.constant(p.inputs[0]);
    // exporters route shared initializers through Identity
    if (p.opType === 'Identity' && p.inputs[0]) return this.constant(p.inputs[0]);
    return null;
  }
  isConstant(name: string): boolean {
    if (this.inits.has(name)) return true;
    const p = this.producer.get(name);
    return Boolean(p && (p.opType === 'Constant' || ((p.opType === 'Cast' || p.opType === 'Identity') && p.inputs[0] && this.isConstant(p.inputs[0]))));
  }
}

function isFloatType(dt: DataType): boolean {
  return dt === DataType.FLOAT || dt === DataType.FLOAT16 || dt === DataType.DOUBLE || dt === DataType.BFLOAT16;
}

/** The activation inputs of a quantized node (the ones that get Q/DQ). */
function activationInputs(n: Node, idx: GraphIndex): string[] {
  switch (n.opType) {
    case 'Conv':
    case 'ConvTranspose':
    case 'Gemm':
    case 'MaxPool':
    case 'Resize':
    case 'Relu':
    case 'Reshape':
    case 'Transpose':
    case 'Flatten':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'AveragePool':
    case 'GlobalAveragePool':
      return n.inputs[0] ? [n.inputs[0]] : [];
    case 'MatMul':
      return n.inputs.filter((i) => i && !idx.isConstant(i));
    case 'Add':
    case 'Concat':
      return n.inputs.filter((i) => i && !idx.isConstant(i));
    default:
      return [];
  }
}

/** Constant inputs of Add/Concat that are quantized as tensors of the activation type. */
function constantActivationInputs(n: Node, idx: GraphIndex): string[] {
  if (n.opType !== 'Add' && n.opType !== 'Concat') return [];
  return n.inputs.filter((i) => i && idx.isConstant(i));
}

/** Why a supported op cannot be quantized here (or null when it can). */
function unsupportedReason(n: Node, idx: GraphIndex, opts: QdqOptions): string | null {
  if (!isDefaultDomain(n)) return `op in domain '${n.domain}' has no INT8 form here`;
  switch (n.opType) {
    case 'Conv':
    case 'ConvTranspose': {
      const w = n.inputs[1] ? idx.constant(n.inputs[1]) : null;
      if (!w) return 'weight is not a constant float tensor';
      if (n.inputs[2] && !idx.constant(n.inputs[2])) return 'bias is not a constant float tensor';
      return null;
    }
    case 'Gemm': {
      const w = n.inputs[1] ? idx.constant(n.inputs[1]) : null;
      if (!w || w.dims.length !== 2) return 'weight is not a constant 2-D float tensor';
      if (readIntAttr(n, 'transA', 0) !== 0) return 'transA=1 is not supported';
      if (readFloatAttr(n, 'alpha', 1) !== 1) return `alpha=${readFloatAttr(n, 'alpha', 1)} is not supported`;
      return null;
    }
    case 'MatMul': {
      const w = n.inputs[1] ? idx.constant(n.inputs[1]) : null;
      if (n.inputs[0] && idx.isConstant(n.inputs[0])) return 'constant first input';
      if (w && opts.dynamicMatMuls) return 'left to dynamic INT8 (DynamicQuantizeLinear + MatMulInteger)';
      if (w && w.dims.length < 2) return 'weight has rank < 2';
      return null;
    }
    case 'Resize': {
      const mode = n.attributes['mode'];
      if (mode && mode.type === 'string' && mode.value === 'cubic') return 'cubic Resize is not exact on INT8';
      return null;
    }
    case 'MaxPool':
      return n.outputs.length > 1 && n.outputs[1] ? 'MaxPool with an Indices output' : null;
    default:
      return null;
  }
}

/**
 * Nodes of a transformer branch that the ViT-safe preset keeps in float, found from the
 * graph's structure (not names): residual Adds (an Add whose input or output is also read
 * by a LayerNormalization, or by the ReduceMean that starts a decomposed one), Adds inside
 * a LayerNorm/GELU/Softmax pattern (next to Erf, Sqrt, Pow, ReduceMean, Softmax), and the
 * bias Add of a MatMul (a float bias is exact; an INT8 one adds error for nothing).
 * LayerNormalization, GELU, Erf and Softmax themselves have no INT8 form here anyway.
 */
export function transformerFloatAdds(model: Model): Map<string, string> {
  const idx = new GraphIndex(model.graph);
  const out = new Map<string, string>();
  const lnLike = (n: Node) => n.opType === 'LayerNormalization' || n.opType === 'ReduceMean';
  const inner = new Set(['Erf', 'Sqrt', 'Pow', 'ReduceMean', 'Softmax', 'Gelu', 'LayerNormalization']);
  for (const n of model.graph.nodes) {
    if (n.opType !== 'Add' || !isDefaultDomain(n)) continue;
    const k = idx.key(n);
    const ins = n.inputs.filter(Boolean);
    const readers = (t: string) => idx.consumers.get(t) ?? [];
    if (ins.some((i) => readers(i).some((c) => c !== n && lnLike(c))) || readers(n.outputs[0]!).some(lnLike)) {
      out.set(k, 'ViT-safe: residual Add of a transformer block (next to LayerNorm) kept in float');
      continue;
    }
    const prodTypes = ins.map((i) => idx.producer.get(i)?.opType);
    const consTypes = readers(n.outputs[0]!).map((c) => c.opType);
    if (prodTypes.some((t) => t && inner.has(t)) || consTypes.some((t) => inner.has(t))) {
      out.set(k, 'ViT-safe: Add inside a LayerNorm/GELU/Softmax pattern kept in float');
      continue;
    }
    if (ins.some((i) => idx.isConstant(i)) && prodTypes.some((t) => t === 'MatMul')) {
      out.set(k, 'ViT-safe: bias Add of a transformer MatMul kept in float');
    }
  }
  return out;
}

/** Why an op type is never quantized, for the record. */
function floatOpReason(opType: string): string {
  switch (opType) {
    case 'LayerNormalization':
    case 'Softmax':
    case 'Gelu':
    case 'Erf':
      return `ViT-safe: ${opType} kept in float`;
    case 'QuantizeLinear':
    case 'DequantizeLinear':
      return 'already a quantization node';
    default:
      return `no INT8 form in the QDQ set (${opType})`;
  }
}

/**
 * Decide which nodes get INT8 and which tensors need a calibrated range.
 * Unsupported nodes are not an error: they stay in float and the plan says why (docs/inputs.md, "Models").
 */
export function planQuantization(model: Model, opts: QdqOptions = {}): QuantizationPlan {
  const g = model.graph;
  const idx = new GraphIndex(g);
  const exclude = new Set(opts.exclude ?? []);
  const known = new Set(idx.byKey.keys());
  for (const e of exclude) {
    if (!known.has(e)) throw new LesionFuseError(`--exclude names node '${e}', which is not in the model (use node names, or OpType#index for unnamed nodes)`);
  }
  const vitSafe = (opts.preset ?? 'vit-safe') === 'vit-safe' ? transformerFloatAdds(model) : new Map<string, string>();
  const quantized = new Map<string, PlannedNode>();
  const float: FloatNode[] = [];
  const candidates = new Set([...WEIGHT_OPS, ...SHARED_PARAM_OPS, ...OWN_RANGE_OPS]);
  // value types: shape arithmetic (int64 Concat/Add/Reshape of Shape outputs) must never get a Q/DQ
  let types = new Map<string, DataType>();
  try {
    for (const [k, v] of inferShapes(model)) types.set(k, v.dataType);
  } catch {
    types = new Map();
  }
  const notFloat = (t: string) => {
    const dt = types.get(t);
    return dt !== undefined && dt !== DataType.UNDEFINED && dt !== DataType.FLOAT;
  };

  for (const n of g.nodes) {
    const k = idx.key(n);
    if (!candidates.has(n.opType) || !isDefaultDomain(n)) {
      float.push({ key: k, opType: n.opType, reason: isDefaultDomain(n) ? floatOpReason(n.opType) : `op in domain '${n.domain}'` });
      continue;
    }
    if (exclude.has(k)) {
      float.push({ key: k, opType: n.opType, reason: 'excluded by the user' });
      continue;
    }
    if (opts.only && !opts.only.has(k)) {
      float.push({ key: k, opType: n.opType, reason: 'not part of this probe' });
      continue;
    }
    const vit = vitSafe.get(k);
    if (vit) {
      float.push({ key: k, opType: n.opType, reason: vit });
      continue;
    }
    const tensors = [...activationInputs(n, idx), n.outputs[0]!];
    const bad = tensors.find((t) => t && notFloat(t));
    if (bad) {
      float.push({ key: k, opType: n.opType, reason: `works on ${DataType[types.get(bad)!] ?? types.get(bad)} tensors (shape arithmetic), not float32` });
      continue;
    }
    const why = unsupportedReason(n, idx, opts);
    if (why) {
      float.push({ key: k, opType: n.opType, reason: why });
      continue;
    }
    const kind: PlannedNode['kind'] = WEIGHT_OPS.includes(n.opType)
      ? n.opType === 'MatMul' && !(n.inputs[1] && idx.constant(n.inputs[1]))
        ? 'activations'
        : 'weight'
      : SHARED_PARAM_OPS.includes(n.opType)
        ? 'shared'
        : 'own';
    quantized.set(k, { key: k, opType: n.opType, kind });
  }

  // Shared-parameter ops only make sense next to real INT8 work: a Reshape between two float
  // ops would just add a Q/DQ pair. Keep them when they read or feed a weight/own node
  // (directly or through other shared ops); a probe (`only`) keeps exactly what it names.
  if (!opts.only) {
    let changed = true;
    const anchored = new Set<string>();
    for (const [k, p] of quantized) if (p.kind !== 'shared') anchored.add(k);
    while (changed) {
      changed = false;
      for (const [k, p] of quantized) {
        if (p.kind !== 'shared' || anchored.has(k)) continue;
        const n = idx.byKey.get(k)!;
        const prod = n.inputs[0] ? idx.producer.get(n.inputs[0]) : undefined;
        const cons = idx.consumers.get(n.outputs[0]!) ?? [];
        if ((prod && anchored.has(idx.key(prod))) || cons.some((c) => anchored.has(idx.key(c)))) {
          anchored.add(k);
          changed = true;
        }
      }
    }
    for (const [k, p] of [...quantized]) {
      if (p.kind === 'shared' && !anchored.has(k)) {
        quantized.delete(k);
        float.push({ key: k, opType: p.opType, reason: 'no INT8 neighbour: a Q/DQ pair here would only add work' });
      }
    }
  }

  // A Relu reading a quantized layer's only output folds into that output's range.
  for (const [k, p] of quantized) {
    if (p.opType !== 'Relu') continue;
    const n = idx.byKey.get(k)!;
    const x = n.inputs[0]!;
    const prod = idx.producer.get(x);
    if (prod && quantized.get(idx.key(prod))?.kind !== undefined && quantized.get(idx.key(prod))!.kind !== 'shared' && idx.uses(x) === 1 && !idx.outputs.has(x)) {
      p.kind = 'fused-relu';
    }
  }

  const sites = computeSites(model, idx, quantized);
  const calibrate = [...new Set([...sites.values()].filter((s) => s.kind === 'range').map((s) => (s as { kind: 'range'; of: string }).of))];
  return { quantized: [...quantized.values()], float, calibrate };
}

type Site = { kind: 'range'; of: string } | { kind: 'shared'; with: string };

/**
 * The activation tensors that get a Q/DQ pair (names after Relu folding) and where their
 * parameters come from: a calibrated range, or another tensor's parameters.
 */
function computeSites(model: Model, idx: GraphIndex, quantized: Map<string, PlannedNode>): Map<string, Site> {
  const sites = new Map<string, Site>();
  const fusedReluOf = new Map<string, string>(); // producer output -> relu output
  for (const p of quantized.values()) {
    if (p.kind !== 'fused-relu') continue;
    const n = idx.byKey.get(p.key)!;
    fusedReluOf.set(n.inputs[0]!, n.outputs[0]!);
  }
  const finalName = (t: string) => fusedReluOf.get(t) ?? t;
  // outputs first, so a shared op's output is not given its own range by a consumer
  for (const p of quantized.values()) {
    const n = idx.byKey.get(p.key)!;
    if (p.kind === 'fused-relu') continue;
    const out = finalName(n.outputs[0]!);
    if (p.kind === 'shared') sites.set(out, { kind: 'shared', with: finalName(n.inputs[0]!) });
    else sites.set(out, { kind: 'range', of: out });
  }
  for (const p of quantized.values()) {
    if (p.kind === 'fused-relu') continue;
    const n = idx.byKey.get(p.key)!;
    for (const i of activationInputs(n, idx)) {
      const f = finalName(i);
      if (!sites.has(f)) sites.set(f, { kind: 'range', of: f });
    }
  }
  void model;
  return sites;
}

/** Calibrated range of one tensor. */
export interface TensorRange {
  min: number;
  max: number;
}

/** What the insertion did, for the record. */
export interface QdqInsertionRecord {
  /** Activation tensors with a Q/DQ pair, and their parameters. */
  activations: { tensor: string; scale: number; zeroPoint: number; sharedWith?: string }[];
  /** Weights quantized, with the channel axis (null = per tensor) and how many bias values were clipped. */
  weights: { node: string; weight: string; axis: number | null; channels: number; biasClipped: number; weightScalesRaisedForBias: number }[];
  /** Relu nodes folded into the range of the layer before them. */
  foldedRelus: string[];
}

function scalarInit(name: string, dataType: DataType, value: number): Initializer {
  const values =
    dataType === DataType.FLOAT ? new Float32Array([value]) : dataType === DataType.INT8 ? new Int8Array([value]) : dataType === DataType.UINT8 ? new Uint8Array([value]) : new Int32Array([value]);
  return { name, dataType, dims: [], values };
}

function qType(t: QuantType): DataType {
  return t === 'int8' ? DataType.INT8 : DataType.UINT8;
}

function node(opType: string, inputs: string[], outputs: string[], name: string, attributes: Record<string, Attribute> = {}): Node {
  return { name, opType, domain: '', inputs, outputs, attributes };
}

/** Fresh names that collide with nothing in the graph. */
class Names {
  private readonly used = new Set<string>();
  constructor(g: Graph) {
    for (const n of g.nodes) {
      this.used.add(n.name);
      for (const o of n.outputs) this.used.add(o);
      for (const i of n.inputs) this.used.add(i);
    }
    for (const t of g.initializers) this.used.add(t.name);
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) this.used.add(v.name);
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** Weight layout: which axis holds output channels, for per-channel scales. */
function weightAxis(n: Node, dims: number[]): number | null {
  switch (n.opType) {
    case 'Conv':
      return 0;
    case 'ConvTranspose':
      // W is [C_in, C_out / group, k...]: axis 1 is per output channel only when group == 1
      return readIntAttr(n, 'group', 1) === 1 ? 1 : null;
    case 'Gemm':
      return readIntAttr(n, 'transB', 0) === 1 ? 0 : 1;
    case 'MatMul':
      return dims.length - 1;
    default:
      return null;
  }
}

/**
 * Insert Q/DQ pairs for `plan` with parameters from `ranges` into a deep copy of `model`.
 * Weights become int8 initializers behind DequantizeLinear (per channel when `perChannel`),
 * biases of Conv/ConvTranspose/Gemm int32 with s_b = s_in * s_w. Throws LesionFuseError when
 * a tensor the plan needs has no range, or when the opset is below 13 and per-channel
 * scales are asked for (DequantizeLinear's `axis` is opset 13).
 */
export function insertQdq(
  model: Model,
  plan: QuantizationPlan,
  ranges: ReadonlyMap<string, TensorRange>,
  opts: QdqOptions = {},
): { model: Model; record: QdqInsertionRecord } {
  const actType = opts.activationType ?? 'int8';
  const weightType = opts.weightType ?? 'int8';
  const perChannel = (opts.perChannel ?? true) && weightType === 'int8';
  const opset = defaultOpset(model) ?? 0;
  if (opset < 10) throw new LesionFuseError(`model opset ${opset} is below 10, the first with QuantizeLinear; update the opset first (lesionfuse rewrite --opset 13)`);
  if (perChannel && opset < 13) {
    throw new LesionFuseError(`model opset ${opset} is below 13, which per-channel DequantizeLinear (axis) needs; run \`lesionfuse rewrite IN OUT --opset 13\` first or pass per-channel off`);
  }
  const out = cloneModel(model);
  const g = out.graph;
  const idx = new GraphIndex(g);
  const names = new Names(g);
  const planned = new Map(plan.quantized.map((p) => [p.key, p]));
  const quantizedNodes = new Set<Node>([...planned.keys()].map((k) => idx.byKey.get(k)).filter((n): n is Node => Boolean(n)));
  if (quantizedNodes.size !== planned.size) throw new LesionFuseError('the quantization plan does not match this model (node names differ)');
  const record: QdqInsertionRecord = { activations: [], weights: [], foldedRelus: [] };

  // 1. fold Relus into the range of the layer before them
  const removed = new Set<Node>();
  for (const p of planned.values()) {
    if (p.kind !== 'fused-relu') continue;
    const relu = idx.byKey.get(p.key)!;
    const prod = idx.producer.get(relu.inputs[0]!)!;
    prod.outputs = prod.outputs.map((o) => (o === relu.inputs[0] ? relu.outputs[0]! : o));
    removed.add(relu);
    quantizedNodes.delete(relu);
    record.foldedRelus.push(p.key);
  }
  const live = g.nodes.filter((n) => !removed.has(n));
  const idx2 = new GraphIndex({ ...g, nodes: live });

  // 2. activation sites and their parameters
  const siteOf = new Map<string, Site>();
  for (const n of quantizedNodes) {
    const p = planned.get(idx.key(n))!;
    const o = n.outputs[0]!;
    if (p.kind === 'shared') siteOf.set(o, { kind: 'shared', with: n.inputs[0]! });
    else siteOf.set(o, { kind: 'range', of: o });
  }
  for (const n of quantizedNodes) for (const i of activationInputs(n, idx2)) if (!siteOf.has(i)) siteOf.set(i, { kind: 'range', of: i });
  const params = new Map<string, QParams>();
  const resolve = (t: string, depth = 0): QParams => {
    const have = params.get(t);
    if (have) return have;
    const s = siteOf.get(t);
    if (!s || depth > 10000) throw new LesionFuseError(`internal: no quantization site for tensor '${t}'`);
    let p: QParams;
    if (s.kind === 'shared') p = resolve(s.with, depth + 1);
    else {
      const r = ranges.get(s.of);
      if (!r) throw new LesionFuseError(`no calibrated range for tensor '${s.of}' (calibrate with the same plan)`);
      p = activationParams(r.min, r.max, actType, { reduceRange: false });
    }
    params.set(t, p);
    return p;
  };

  // 3. build the new node list: constants' DQ first, then each node followed by its outputs' Q/DQ
  const prefix: Node[] = [];
  const after = new Map<Node, Node[]>();
  const newInits: Initializer[] = [];
  const dqOf = new Map<string, string>();
  const addQdq = (t: string, anchor: Node | null) => {
    const p = resolve(t);
    const s = siteOf.get(t)!;
    record.activations.push({ tensor: t, scale: p.scale, zeroPoint: p.zeroPoint, ...(s.kind === 'shared' ? { sharedWith: s.with } : {}) });
    const scale = names.fresh(`${t}_scale`);
    const zp = names.fresh(`${t}_zero_point`);
    newInits.push(scalarInit(scale, DataType.FLOAT, p.scale), scalarInit(zp, qType(actType), p.zeroPoint));
    const producerQuantized = Boolean(anchor && quantizedNodes.has(anchor));
    let src = t;
    let dq = names.fresh(`${t}_DequantizeLinear_Output`);
    if (producerQuantized && idx2.outputs.has(t)) {
      // keep the graph output's name on the DQ output
      src = names.fresh(`${t}_QuantizeLinear_Input`);
      anchor!.outputs = anchor!.outputs.map((o) => (o === t ? src : o));
      dq = t;
    }
    const q = names.fresh(`${t}_QuantizeLinear_Output`);
    const nodes = [
      node('QuantizeLinear', [src, scale, zp], [q], names.fresh(`${t}_QuantizeLinear`)),
      node('DequantizeLinear', [q, scale, zp], [dq], names.fresh(`${t}_DequantizeLinear`)),
    ];
    if (anchor) after.set(anchor, [...(after.get(anchor) ?? []), ...nodes]);
    else prefix.push(...nodes);
    if (dq !== t) {
      for (const c of idx2.consumers.get(t) ?? []) {
        if (producerQuantized || quantizedNodes.has(c)) c.inputs = c.inputs.map((i) => (i === t ? dq : i));
      }
    }
    dqOf.set(t, dq);
  };
  for (const t of siteOf.keys()) addQdq(t, idx2.producer.get(t) ?? null);

  // constant inputs of Add/Concat: quantized initializers behind a DQ, with their own min/max
  for (const n of quantizedNodes) {
    for (const c of constantActivationInputs(n, idx2)) {
      const v = idx2.constant(c)!;
      let lo = Infinity;
      let hi = -Infinity;
      for (const x of v.values) {
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
      const p = activationParams(lo === Infinity ? 0 : lo, hi === -Infinity ? 0 : hi, actType);
      const qn = names.fresh(`${c}_quantized`);
      const sn = names.fresh(`${c}_scale`);
      const zn = names.fresh(`${c}_zero_point`);
      const dq = names.fresh(`${c}_DequantizeLinear_Output`);
      newInits.push({ name: qn, dataType: qType(actType), dims: v.dims, values: quantizeArray(v.values, p, actType) }, scalarInit(sn, DataType.FLOAT, p.scale), scalarInit(zn, qType(actType), p.zeroPoint));
      prefix.push(node('DequantizeLinear', [qn, sn, zn], [dq], names.fresh(`${c}_DequantizeLinear`)));
      n.inputs = n.inputs.map((i) => (i === c ? dq : i));
      record.activations.push({ tensor: c, scale: p.scale, zeroPoint: p.zeroPoint });
    }
  }

  // 4. weights and biases
  for (const n of quantizedNodes) {
    const p = planned.get(idx.key(n))!;
    if (p.kind !== 'weight') continue;
    const wName = n.inputs[1]!;
    const w = idx2.constant(wName)!;
    const inputTensor = findSiteByDq(dqOf, n.inputs[0]!);
    const inputScale = resolve(inputTensor).scale;
    const biasName = (n.opType === 'Conv' || n.opType === 'ConvTranspose' || n.opType === 'Gemm') && n.inputs[2] ? n.inputs[2] : null;
    let bias = biasName ? idx2.constant(biasName) : null;
    let axis = perChannel ? weightAxis(n, w.dims) : null;
    const channels = axis === null ? 1 : w.dims[axis]!;
    // an int32 bias needs a 1-D bias with one value per output (Gemm's C may broadcast a matrix)
    const outputs = n.opType === 'Gemm' ? w.dims[readIntAttr(n, 'transB', 0) === 1 ? 0 : 1]! : n.opType === 'Conv' ? w.dims[0]! : w.dims[1]! * readIntAttr(n, 'group', 1);
    if (bias && (bias.dims.length !== 1 || numel(bias.dims) !== outputs)) bias = null;
    if (n.opType === 'Gemm' && readFloatAttr(n, 'beta', 1) !== 1) bias = null;
    if (axis !== null && bias && bias.values.length !== channels) axis = null; // e.g. grouped ConvTranspose
    const wq = names.fresh(`${wName}_quantized`);
    const ws = names.fresh(`${wName}_scale`);
    const wz = names.fresh(`${wName}_zero_point`);
    const wdq = names.fresh(`${wName}_DequantizeLinear_Output`);
    let scales: Float32Array;
    let zps: Int8Array | Uint8Array;
    let values: Int8Array | Uint8Array;
    let raised = 0;
    if (weightType === 'uint8') {
      const r = quantizeWeightsPerTensor(w.values, 'uint8', { reduceRange: opts.reduceRange });
      scales = new Float32Array([r.params.scale]);
      zps = new Uint8Array([r.params.zeroPoint]);
      values = r.values;
    } else {
      scales = axis === null ? new Float32Array([quantizeWeightsPerTensor(w.values, 'int8', { reduceRange: opts.reduceRange }).params.scale]) : perChannelWeightScales(w.values, w.dims, axis, { reduceRange: opts.reduceRange });
      if (bias) raised = adjustWeightScalesForBias(bias.values, inputScale, scales).length;
      values = axis === null ? quantizeArray(w.values, { scale: scales[0]!, zeroPoint: 0 }, 'int8') : quantizePerChannel(w.values, w.dims, axis, scales);
      zps = new Int8Array(scales.length);
    }
    const perAxis = axis !== null && weightType === 'int8';
    newInits.push(
      { name: wq, dataType: weightType === 'int8' ? DataType.INT8 : DataType.UINT8, dims: w.dims, values },
      { name: ws, dataType: DataType.FLOAT, dims: perAxis ? [scales.length] : [], values: scales },
      { name: wz, dataType: weightType === 'int8' ? DataType.INT8 : DataType.UINT8, dims: perAxis ? [zps.length] : [], values: zps },
    );
    prefix.push(node('DequantizeLinear', [wq, ws, wz], [wdq], names.fresh(`${wName}_DequantizeLinear`), perAxis ? { axis: { type: 'int', value: axis! } } : {}));
    n.inputs[1] = wdq;
    let clipped = 0;
    if (bias && biasName) {
      const qb = quantizeBias(bias.values, inputScale, scales);
      clipped = qb.clipped;
      const bq = names.fresh(`${biasName}_quantized`);
      const bs = names.fresh(`${biasName}_scale`);
      const bz = names.fresh(`${biasName}_zero_point`);
      const bdq = names.fresh(`${biasName}_DequantizeLinear_Output`);
      const perAxisBias = qb.scales.length > 1;
      newInits.push(
        { name: bq, dataType: DataType.INT32, dims: [qb.values.length], values: qb.values },
        { name: bs, dataType: DataType.FLOAT, dims: perAxisBias ? [qb.scales.length] : [], values: qb.scales },
        { name: bz, dataType: DataType.INT32, dims: perAxisBias ? [qb.scales.length] : [], values: new Int32Array(qb.scales.length) },
      );
      prefix.push(node('DequantizeLinear', [bq, bs, bz], [bdq], names.fresh(`${biasName}_DequantizeLinear`), perAxisBias ? { axis: { type: 'int', value: 0 } } : {}));
      n.inputs[2] = bdq;
    }
    record.weights.push({ node: idx.key(n), weight: wName, axis: perAxis ? axis : null, channels: scales.length, biasClipped: clipped, weightScalesRaisedForBias: raised });
  }

  // 5. assemble: graph inputs' Q/DQ and constant DQs first, then every node followed by its Q/DQs
  const nodes: Node[] = [...prefix];
  for (const n of live) {
    nodes.push(n);
    const a = after.get(n);
    if (a) nodes.push(...a);
  }
  g.nodes = nodes;
  g.initializers.push(...newInits);
  // drop initializers nothing reads any more (the float weights and biases)
  const read = new Set<string>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
  for (const o of g.outputs) read.add(o.name);
  g.initializers = g.initializers.filter((t) => read.has(t.name) || g.inputs.some((i) => i.name === t.name));
  // stale intermediate types (renamed values) would mislead shape inference and tools
  g.valueInfo = [];
  removeDeadConstantProducers(g);
  return { model: out, record };
}

function findSiteByDq(dqOf: Map<string, string>, dq: string): string {
  for (const [t, d] of dqOf) if (d === dq) return t;
  return dq;
}

/** Cast/Constant/Identity nodes that fed float weights and are now read by nothing. */
function removeDeadConstantProducers(g: Graph): void {
  for (;;) {
    const read = new Set<string>();
    for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
    for (const o of g.outputs) read.add(o.name);
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((n) => !((n.opType === 'Cast' || n.opType === 'Constant' || n.opType === 'Identity') && n.outputs.every((o) => !read.has(o))));
    if (g.nodes.length === before) break;
  }
  const read = new Set<string>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
  g.initializers = g.initializers.filter((t) => read.has(t.name) || g.outputs.some((o) => o.name === t.name) || g.inputs.some((i) => i.name === t.name));
}
