/**
 * Dynamic INT8 for MatMuls with a constant weight (a transformer's projections and MLPs):
 * the activation's scale is computed at run time from each input, so no calibration is
 * needed and token ranges that vary from image to image cost nothing.
 *
 * Form: DynamicQuantizeLinear(A) -> MatMulInteger(A_q, B_q, A_zp) -> Cast -> Mul(A_s * B_s).
 * B is int8, symmetric, one scale per output column (zero point 0, so MatMulInteger's
 * b_zero_point is omitted). onnxruntime-node's CPU provider runs MatMulInteger with uint8
 * A and int8 B (and fuses the pattern into DynamicQuantizeMatMul); the tests run it.
 */
import { DataType, type Model, type Node } from '../onnx/ir.js';
import { cloneModel } from '../onnx/graph.js';
import { tensorToFloat32 } from '../onnx/tensor.js';
import { LesionFuseError } from '../util/errors.js';
import { perChannelWeightScales, quantizePerChannel } from './arith.js';
import { nodeKey, type FloatNode } from './qdq.js';

export interface DynamicOptions {
  /** Node keys kept in float. */
  exclude?: readonly string[];
  /** Only these node keys (default: every MatMul with a constant 2-D float weight). */
  only?: ReadonlySet<string>;
  /** 7-bit weights (see QuantizeOptions.reduceRange). Default false. */
  reduceRange?: boolean;
}

export interface DynamicResult {
  model: Model;
  /** MatMul node keys now in dynamic INT8. */
  quantized: string[];
  /** MatMuls left in float, with the reason. */
  float: FloatNode[];
}

/** Replace eligible MatMuls of a copy of `model` by dynamic INT8 (see the module comment). */
export function quantizeDynamicMatMuls(model: Model, opts: DynamicOptions = {}): DynamicResult {
  const out = cloneModel(model);
  const g = out.graph;
  const opset = out.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
  if (opset < 11) throw new LesionFuseError(`model opset ${opset} is below 11, the first with DynamicQuantizeLinear; update the opset first (lesionfuse rewrite --opset 13)`);
  const exclude = new Set(opts.exclude ?? []);
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const constant = (name: string) => {
    let t = inits.get(name);
    if (!t) {
      const p = producer.get(name);
      if ((p?.opType === 'Cast' || p?.opType === 'Identity') && p.inputs[0]) t = inits.get(p.inputs[0]);
    }
    return t && (t.dataType === DataType.FLOAT || t.dataType === DataType.FLOAT16) ? t : undefined;
  };
  const used = new Set<string>([...g.initializers.map((t) => t.name), ...g.nodes.flatMap((n) => [n.name, ...n.inputs, ...n.outputs])]);
  const fresh = (base: string) => {
    let s = base;
    for (let i = 1; used.has(s); i++) s = `${base}_${i}`;
    used.add(s);
    return s;
  };
  const quantized: string[] = [];
  const float: FloatNode[] = [];
  const nodes: Node[] = [];
  g.nodes.forEach((n, i) => {
    const k = nodeKey(n, i);
    if (n.opType !== 'MatMul' || (n.domain !== '' && n.domain !== 'ai.onnx')) {
      nodes.push(n);
      return;
    }
    const w = n.inputs[1] ? constant(n.inputs[1]) : undefined;
    const reason = exclude.has(k) ? 'excluded by the user' : opts.only && !opts.only.has(k) ? 'not part of this probe' : !w ? 'no constant weight (two activations): left to static QDQ or float' : w.dims.length !== 2 ? 'weight is not 2-D' : null;
    if (reason) {
      float.push({ key: k, opType: n.opType, reason });
      nodes.push(n);
      return;
    }
    const values = tensorToFloat32(w!);
    const dims = [...w!.dims];
    const scales = perChannelWeightScales(values, dims, 1, { reduceRange: opts.reduceRange });
    const q = quantizePerChannel(values, dims, 1, scales);
    const base = n.name || n.outputs[0]!;
    const bq = fresh(`${w!.name}_quantized`);
    const bs = fresh(`${w!.name}_scale`);
    g.initializers.push({ name: bq, dataType: DataType.INT8, dims, values: q }, { name: bs, dataType: DataType.FLOAT, dims: [dims[1]!], values: scales });
    const aq = fresh(`${base}_a_quantized`);
    const as = fresh(`${base}_a_scale`);
    const az = fresh(`${base}_a_zero_point`);
    const yi = fresh(`${base}_int32`);
    const yf = fresh(`${base}_int32_float`);
    const s = fresh(`${base}_output_scale`);
    const mk = (opType: string, inputs: string[], outputs: string[], attributes: Node['attributes'] = {}): Node => ({ name: fresh(`${base}_${opType}`), opType, domain: '', inputs, outputs, attributes });
    nodes.push(
      mk('DynamicQuantizeLinear', [n.inputs[0]!], [aq, as, az]),
      mk('MatMulInteger', [aq, bq, az], [yi]),
      mk('Cast', [yi], [yf], { to: { type: 'int', value: DataType.FLOAT } }),
      mk('Mul', [as, bs], [s]),
      mk('Mul', [yf, s], [n.outputs[0]!]),
    );
    quantized.push(k);
  });
  g.nodes = nodes;
  // drop float weights and the Casts that fed them, now read by nothing
  for (;;) {
    const read = new Set<string>([...g.nodes.flatMap((n) => n.inputs), ...g.outputs.map((o) => o.name)]);
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((n) => !((n.opType === 'Cast' || n.opType === 'Identity') && n.inputs.every((i) => inits.has(i)) && n.outputs.every((o) => !read.has(o))));
    if (before === g.nodes.length) {
      g.initializers = g.initializers.filter((t) => read.has(t.name) || g.inputs.some((x) => x.name === t.name));
      break;
    }
  }
  g.valueInfo = g.valueInfo.filter((v) => g.nodes.some((n) => n.outputs.includes(v.name)));
  return { model: out, quantized, float };
}
