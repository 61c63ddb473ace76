/**
 * fuse-bias-add: an Add of a per-channel constant right after a Conv / ConvTranspose / Gemm (what exporters
 * emit for `conv(x) + b` or a bias kept outside the layer) goes into the layer's own bias, so the runtime does
 * one pass over the output instead of two and the quantizer sees an int32 bias instead of a float Add.
 */
import { DataType, type Model, type Node, type TensorData } from '../onnx/ir.js';
import { float32ToFloat16, numel, tensorToFloat32 } from '../onnx/tensor.js';
import type { ChangeRecord, Pass } from './pass.js';
import { Constants, Names, isDefaultDomain, nodeLabel, readNames, record, useCounts } from './util.js';

const PASS = 'fuse-bias-add';
const FLOATS = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.DOUBLE]);

function toF64(t: TensorData): Float64Array {
  return t.values instanceof Float64Array ? t.values : Float64Array.from(tensorToFloat32(t));
}
function store(dt: DataType, dims: number[], v: Float64Array): TensorData {
  if (dt === DataType.DOUBLE) return { dataType: dt, dims, values: Float64Array.from(v) };
  const f = Float32Array.from(v);
  return dt === DataType.FLOAT16 ? { dataType: dt, dims, values: float32ToFloat16(f) } : { dataType: DataType.FLOAT, dims, values: f };
}

/** The weight's dims, looking through a Cast or DequantizeLinear of an initializer (fp16 or int8 storage). */
function weightTensor(consts: Constants, producer: Map<string, Node>, name: string | undefined): TensorData | undefined {
  if (!name) return undefined;
  const c = consts.get(name);
  if (c) return c;
  const p = producer.get(name);
  if (p && (p.opType === 'Cast' || p.opType === 'DequantizeLinear') && p.inputs[0]) return consts.get(p.inputs[0]);
  return undefined;
}

/** Output channels and output rank of a layer, from its weight shape; null when unknown. */
function layerShape(layer: Node, w: TensorData | undefined): { channels: number; rank: number; channelAxis: number } | null {
  if (!w) return null;
  if (layer.opType === 'Conv' && w.dims.length >= 3) return { channels: w.dims[0]!, rank: w.dims.length, channelAxis: 1 };
  if (layer.opType === 'ConvTranspose' && w.dims.length >= 3) {
    const ga = layer.attributes['group'];
    const group = ga && ga.type === 'int' ? ga.value : 1;
    return { channels: w.dims[1]! * group, rank: w.dims.length, channelAxis: 1 };
  }
  if (layer.opType === 'Gemm' && w.dims.length === 2) {
    const tb = layer.attributes['transB'];
    const transB = tb && tb.type === 'int' && tb.value !== 0;
    return { channels: transB ? w.dims[0]! : w.dims[1]!, rank: 2, channelAxis: 1 };
  }
  return null;
}

/**
 * Whether `c` broadcasts against the layer output only along the channel axis (so adding it never grows the
 * output's shape); returns the per-channel values, or null.
 */
function perChannel(c: TensorData, shape: { channels: number; rank: number; channelAxis: number }): Float64Array | null {
  const r = c.dims.length;
  if (r > shape.rank) return null;
  const v = toF64(c);
  if (numel(c.dims) === 1) return new Float64Array(shape.channels).fill(v[0]!);
  for (let k = 0; k < r; k++) {
    const axis = shape.rank - r + k;
    const d = c.dims[k]!;
    if (axis === shape.channelAxis) {
      if (d !== shape.channels) return null;
    } else if (d !== 1) return null;
  }
  return v.length === shape.channels ? v : null;
}

export function fuseBiasAdd(model: Model): { model: Model; changes: ChangeRecord[]; fused: number } {
  const g = model.graph;
  const changes: ChangeRecord[] = [];
  const consts = new Constants(g);
  const names = new Names(g);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const uses = useCounts(g);
  const removed = new Set<Node>();
  const replaced = new Set<string>();
  const fused: string[] = [];
  for (const add of g.nodes) {
    if (add.opType !== 'Add' || !isDefaultDomain(add) || add.inputs.length !== 2) continue;
    const [a, b] = add.inputs as [string, string];
    const pick = consts.has(b) && producer.has(a) ? { x: a, c: b } : consts.has(a) && producer.has(b) ? { x: b, c: a } : null;
    if (!pick) continue;
    const layer = producer.get(pick.x)!;
    if (!isDefaultDomain(layer) || !['Conv', 'ConvTranspose', 'Gemm'].includes(layer.opType) || removed.has(layer)) continue;
    const label = nodeLabel(add, g);
    const layerLabel = nodeLabel(layer, g);
    const skip = (why: string) => changes.push(record(PASS, 'skipped', `left Add ${label} after ${layer.opType} ${layerLabel}: ${why}`, [label]));
    if ((uses.get(pick.x) ?? 0) !== 1 || graphOutputs.has(pick.x)) { skip('the layer output is also read elsewhere'); continue; }
    const c = consts.get(pick.c)!;
    if (!FLOATS.has(c.dataType)) { skip(`the constant is ${DataType[c.dataType]}`); continue; }
    const w = weightTensor(consts, producer, layer.inputs[1]);
    const shape = layerShape(layer, w);
    if (!shape) { skip('the layer weight shape is unknown'); continue; }
    const add64 = perChannel(c, shape);
    if (!add64) { skip(`the constant's shape [${c.dims.join(',')}] is not per-channel for ${shape.channels} channels`); continue; }
    let old = new Float64Array(shape.channels);
    let biasType = w!.dataType === DataType.DOUBLE || w!.dataType === DataType.FLOAT16 ? w!.dataType : DataType.FLOAT;
    if (consts.get(layer.inputs[1] ?? '') === undefined) biasType = c.dataType; // weight behind a Cast: the bias follows the computation type
    const bName = layer.inputs[2];
    if (bName) {
      const bt = consts.get(bName);
      if (!bt || !FLOATS.has(bt.dataType)) { skip('the existing bias is not a float constant'); continue; }
      const pc = perChannel(bt, layer.opType === 'Gemm' ? shape : { channels: shape.channels, rank: 1, channelAxis: 0 });
      if (!pc) { skip(`the existing bias has shape [${bt.dims.join(',')}], not per-channel`); continue; }
      const beta = layer.opType === 'Gemm' ? ((a) => (a && (a.type === 'float' || a.type === 'int') ? a.value : 1))(layer.attributes['beta']) : 1;
      old = pc.map((x) => x * beta);
      biasType = bt.dataType;
    }
    const nb = new Float64Array(shape.channels);
    for (let k = 0; k < shape.channels; k++) nb[k] = old[k]! + add64[k]!;
    const biasName = names.fresh(`${layerLabel}_bias_fused`);
    g.initializers.push({ name: biasName, ...store(biasType, [shape.channels], nb) });
    while (layer.inputs.length < 3) layer.inputs.push('');
    if (bName) replaced.add(bName);
    replaced.add(pick.c);
    layer.inputs[2] = biasName;
    if (layer.opType === 'Gemm') layer.attributes['beta'] = { type: 'float', value: 1 };
    layer.outputs[0] = add.outputs[0]!;
    g.valueInfo = g.valueInfo.filter((v) => v.name !== pick.x);
    removed.add(add);
    fused.push(`${label} -> ${layerLabel}`);
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n));
  if (replaced.size) {
    const read = readNames(g);
    g.initializers = g.initializers.filter((i) => !replaced.has(i.name) || read.has(i.name));
  }
  if (fused.length) changes.unshift(record(PASS, 'fused', `fused ${fused.length} per-channel Add(s) into the bias of the preceding Conv/ConvTranspose/Gemm`, fused, fused.length));
  else if (!changes.length) changes.push(record(PASS, 'changed', 'no per-channel Add after Conv/ConvTranspose/Gemm found', [], 0));
  return { model, changes, fused: fused.length };
}

export const fuseBiasAddPass: Pass = {
  name: 'fuse-bias-add',
  description: 'fuse an Add of a per-channel constant after Conv/ConvTranspose/Gemm into the layer bias',
  precision: 'float32',
  run: (model) => {
    const r = fuseBiasAdd(model);
    return { model: r.model, changes: r.changes };
  },
};
