/**
 * fold-batchnorm: BatchNormalization right after Conv / ConvTranspose / Gemm becomes part of that layer's
 * weights and bias. At inference BN is a per-channel affine map y = s*(x - mean) + beta with
 * s = gamma / sqrt(var + eps), so scaling the layer's weights per output channel by s and replacing its bias
 * by (b - mean)*s + beta gives the same outputs with one node less, and, more importantly for INT8, no
 * separate BN whose scale the quantizer would have to handle. The arithmetic is done in float64 and
 * rounded once to the weights' storage type.
 */
import { DataType, type Graph, type Initializer, type Model, type Node, type TensorData } from '../onnx/ir.js';
import { float32ToFloat16, numel, tensorToFloat32 } from '../onnx/tensor.js';
import { readFloatAttr, readIntAttr } from '../onnx/graph.js';
import type { ChangeRecord, Pass } from './pass.js';
import { Constants, Names, isDefaultDomain, nodeLabel, readNames, record, useCounts } from './util.js';

const PASS = 'fold-batchnorm';

/** Values of a float tensor as float64 (float16/bfloat16 widened exactly). */
function asFloat64(t: TensorData): Float64Array {
  if (t.values instanceof Float64Array) return t.values;
  return Float64Array.from(tensorToFloat32(t));
}

/** Store float64 values in the storage type of `like` (float32, float16 or float64), rounding once. */
function storeAs(like: DataType, dims: number[], v: Float64Array): TensorData {
  if (like === DataType.DOUBLE) return { dataType: DataType.DOUBLE, dims, values: Float64Array.from(v) };
  const f32 = Float32Array.from(v);
  if (like === DataType.FLOAT16) return { dataType: DataType.FLOAT16, dims, values: float32ToFloat16(f32) };
  return { dataType: DataType.FLOAT, dims, values: f32 };
}

const FOLDABLE_TYPES = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.DOUBLE]);

/**
 * For each element of the weight tensor, the output channel it feeds. Returns null when the layout is not
 * one this pass understands (then the BN is left alone and reported).
 */
function outputChannelOf(layer: Node, w: TensorData, channels: number): ((idx: number) => number) | null {
  const dims = w.dims;
  if (layer.opType === 'Conv') {
    if (dims.length < 3 || dims[0] !== channels) return null;
    const per = numel(dims) / channels;
    return (i) => Math.floor(i / per);
  }
  if (layer.opType === 'ConvTranspose') {
    // W is [C_in, M/group, k...]; input channel ci belongs to group floor(ci / (C_in/group)), whose outputs are
    // channels group*(M/group) .. ; so the output channel of W[ci, j] is that offset plus j.
    const gAttr = layer.attributes['group'];
    const group = gAttr && gAttr.type === 'int' ? gAttr.value : 1;
    if (dims.length < 3) return null;
    const cin = dims[0]!;
    const mPerGroup = dims[1]!;
    if (mPerGroup * group !== channels || cin % group !== 0) return null;
    const k = numel(dims.slice(2));
    const cinPerGroup = cin / group;
    return (i) => {
      const ci = Math.floor(i / (mPerGroup * k));
      const j = Math.floor(i / k) % mPerGroup;
      return Math.floor(ci / cinPerGroup) * mPerGroup + j;
    };
  }
  if (layer.opType === 'Gemm') {
    if (dims.length !== 2) return null;
    const tb = layer.attributes['transB'];
    const transB = tb && tb.type === 'int' && tb.value !== 0;
    if (transB) {
      if (dims[0] !== channels) return null;
      const k = dims[1]!;
      return (i) => Math.floor(i / k);
    }
    if (dims[1] !== channels) return null;
    return (i) => i % channels;
  }
  return null;
}

export interface FoldBatchNormResult {
  model: Model;
  changes: ChangeRecord[];
  /** How many BatchNormalization nodes were folded. */
  folded: number;
}


/**
 * Fold every BatchNormalization that directly follows a Conv, ConvTranspose or Gemm (whose output nothing
 * else reads) into that layer's weights and bias. Edits `model` in place and returns it with a change record;
 * BNs it cannot fold (non-constant parameters, weights behind a Cast or DequantizeLinear, a shared layer
 * output, training mode) are left untouched and listed as `skipped` with the reason.
 *
 * @example
 *   const { folded } = foldBatchNormIntoConv(model); // before quantization, so BN scales land in the weights
 */
export function foldBatchNormIntoConv(model: Model): FoldBatchNormResult {
  const g: Graph = model.graph;
  const changes: ChangeRecord[] = [];
  const consts = new Constants(g);
  const names = new Names(g);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const uses = useCounts(g);
  const initIndex = new Map<string, Initializer>(g.initializers.map((i) => [i.name, i]));
  const removed = new Set<Node>();
  const folded: string[] = [];
  const replacedBias = new Set<string>();

  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization' || !isDefaultDomain(bn)) continue;
    const label = nodeLabel(bn, g);
    const skip = (why: string) => changes.push(record(PASS, 'skipped', `left BatchNormalization ${label} unfolded: ${why}`, [label]));
    const x = bn.inputs[0];
    const layer = x ? producer.get(x) : undefined;
    if (!x || !layer || !isDefaultDomain(layer) || !['Conv', 'ConvTranspose', 'Gemm'].includes(layer.opType)) continue; // nothing to fold into: not a skip
    const layerLabel = nodeLabel(layer, g);
    if (readIntAttr(bn, 'training_mode', 0) !== 0) { skip('training_mode=1'); continue; }
    if (readIntAttr(bn, 'spatial', 1) !== 1) { skip('spatial=0 (opset < 9 per-activation BN)'); continue; }
    if (bn.outputs.slice(1).some((o) => o && ((uses.get(o) ?? 0) > 0 || graphOutputs.has(o)))) { skip('its running mean/var outputs are used'); continue; }
    if ((uses.get(x) ?? 0) !== 1 || graphOutputs.has(x)) { skip(`the output of ${layer.opType} ${layerLabel} is also read elsewhere`); continue; }
    const params = bn.inputs.slice(1, 5).map((n) => (n ? consts.get(n) : undefined));
    if (params.some((p) => !p || !FOLDABLE_TYPES.has(p.dataType))) { skip('scale/bias/mean/var are not float constants'); continue; }
    const [gamma, beta, mean, vari] = params.map((p) => asFloat64(p!)) as [Float64Array, Float64Array, Float64Array, Float64Array];
    const channels = gamma.length;
    if ([beta, mean, vari].some((a) => a.length !== channels)) { skip('scale/bias/mean/var lengths differ'); continue; }
    const wName = layer.inputs[1];
    const w = wName ? initIndex.get(wName) : undefined;
    if (!wName || !w || !consts.isInitializer(wName)) { skip(`the weight of ${layer.opType} ${layerLabel} is not an initializer (e.g. behind a Cast or DequantizeLinear)`); continue; }
    if (!FOLDABLE_TYPES.has(w.dataType)) { skip(`the weight of ${layerLabel} is ${DataType[w.dataType]}, not a float type`); continue; }
    const chOf = outputChannelOf(layer, w, channels);
    if (!chOf) { skip(`the weight shape [${w.dims.join(',')}] of ${layer.opType} ${layerLabel} does not match ${channels} channels`); continue; }

    const eps = readFloatAttr(bn, 'epsilon', 1e-5);
    // BN's epsilon attribute is a float32; onnxruntime adds it in float32, so round it the same way.
    const epsF = Math.fround(eps);
    const s = new Float64Array(channels);
    for (let c = 0; c < channels; c++) s[c] = gamma[c]! / Math.sqrt(vari[c]! + epsF);

    // Existing bias (Conv/ConvTranspose B, or Gemm C times beta).
    let bias: Float64Array = new Float64Array(channels);
    const bName = layer.inputs[2];
    if (layer.opType === 'Gemm') {
      if (bName) {
        const c = consts.get(bName);
        if (!c || !FOLDABLE_TYPES.has(c.dataType)) { skip(`the C input of Gemm ${layerLabel} is not a float constant`); continue; }
        const n = numel(c.dims);
        const last = c.dims.length ? c.dims[c.dims.length - 1]! : 1;
        const lead = c.dims.slice(0, -1).every((d) => d === 1);
        if (!(n === 1 || (n === channels && last === channels && lead))) { skip(`the C input of Gemm ${layerLabel} has shape [${c.dims.join(',')}], not per-channel`); continue; }
        const cv = asFloat64(c);
        const betaG = readFloatAttr(layer, 'beta', 1);
        for (let k = 0; k < channels; k++) bias[k] = betaG * cv[n === 1 ? 0 : k]!;
      }
    } else if (bName) {
      const b = consts.get(bName);
      if (!b || !FOLDABLE_TYPES.has(b.dataType) || numel(b.dims) !== channels) { skip(`the bias of ${layer.opType} ${layerLabel} is not a ${channels}-element float constant`); continue; }
      bias = Float64Array.from(asFloat64(b));
    }

    const wv = asFloat64(w);
    const nw = new Float64Array(wv.length);
    for (let i = 0; i < wv.length; i++) nw[i] = wv[i]! * s[chOf(i)]!;
    const nb = new Float64Array(channels);
    for (let c = 0; c < channels; c++) nb[c] = (bias[c]! - mean[c]!) * s[c]! + beta[c]!;

    // A weight read by other layers too (shared weights) gets a private copy.
    const newW = storeAs(w.dataType, [...w.dims], nw);
    if ((uses.get(wName) ?? 0) === 1) {
      w.values = newW.values;
      w.dataType = newW.dataType;
      delete w.external;
    } else {
      const nm = names.fresh(`${wName}_bnfold`);
      const init: Initializer = { name: nm, ...newW };
      g.initializers.push(init);
      initIndex.set(nm, init);
      layer.inputs[1] = nm;
    }
    const biasName = names.fresh(`${layerLabel}_bias_bnfold`);
    g.initializers.push({ name: biasName, ...storeAs(w.dataType, [channels], nb) });
    if (bName) replacedBias.add(bName);
    while (layer.inputs.length < 3) layer.inputs.push('');
    layer.inputs[2] = biasName;
    if (layer.opType === 'Gemm') layer.attributes['beta'] = { type: 'float', value: 1 };
    // The layer now writes what the BN wrote.
    layer.outputs[0] = bn.outputs[0]!;
    g.valueInfo = g.valueInfo.filter((v) => v.name !== x);
    for (const p of bn.inputs.slice(1)) if (p) replacedBias.add(p);
    removed.add(bn);
    folded.push(`${label} -> ${layerLabel}`);
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n));
  if (folded.length) {
    changes.unshift(record(PASS, 'fused', `folded ${folded.length} BatchNormalization node(s) into the preceding Conv/ConvTranspose/Gemm`, folded, folded.length));
  } else if (!changes.length) {
    changes.push(record(PASS, 'changed', 'no BatchNormalization after Conv/ConvTranspose/Gemm found', [], 0));
  }
  // Replaced biases and BN parameters that nothing reads any more go too, so that a caller that runs only this pass gets no stale weights.
  if (replacedBias.size) {
    const read = readNames(g);
    g.initializers = g.initializers.filter((i) => !replacedBias.has(i.name) || read.has(i.name));
  }
  return { model, changes, folded: folded.length };
}

export const foldBatchNormPass: Pass = {
  name: 'fold-batchnorm',
  description: 'fold BatchNormalization into the preceding Conv/ConvTranspose/Gemm weights and bias (float64 arithmetic)',
  precision: 'float32',
  run: (model) => {
    const r = foldBatchNormIntoConv(model);
    return { model: r.model, changes: r.changes };
  },
};
