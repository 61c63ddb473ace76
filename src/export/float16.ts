/**
 * to-float16: float32 weights and activations become float16 (half the file size, and the type GPUs and
 * fp16-capable NPUs run fastest), while the graph's float32 inputs and outputs stay float32 so that callers
 * need no change: Casts are placed at the boundary and around the nodes kept in float32.
 *
 * Kept in float32 by default (FLOAT16_DEFAULT_BLOCK_LIST), each for a reason found by running every op in
 * float16 on onnxruntime-node 1.30's CPU provider (which runs all of them, inserting its own casts where it
 * has no float16 kernel) and from the ONNX type constraints:
 * - Range has no float16 in its type constraint (onnxruntime refuses to load it);
 * - Resize/Upsample `scales` (and `roi`) inputs must stay float32 (the op, not the data, is converted);
 * - reductions and normalisations (ReduceMean/ReduceSum/ReduceSumSquare/ReduceL2/ReduceLogSumExp/ReduceProd,
 *   LayerNormalization, InstanceNormalization, GroupNormalization) and Softmax/LogSoftmax/CumSum accumulate
 *   many terms or exponentials, where float16 loses accuracy or overflows (65504 is its largest value);
 * - QuantizeLinear/DequantizeLinear (a QDQ model's scales are float32 by contract before opset 19);
 * - ops outside the default ONNX domain and ops with subgraphs (their typing is unknown here): left untouched.
 */
import { DataType, type Graph, type Initializer, type Model, type Node, type TensorData } from '../onnx/ir.js';
import { float32ToFloat16, tensorToFloat32 } from '../onnx/tensor.js';
import type { ChangeRecord, Pass, PassContext, PassResult } from './pass.js';
import { inferElemTypes } from './types.js';
import { Names, isDefaultDomain, nodeLabel, record, replaceUses, subgraphReads } from './util.js';

const PASS = 'to-float16';

export const FLOAT16_DEFAULT_BLOCK_LIST: readonly string[] = [
  'Range',
  'ReduceMean',
  'ReduceSum',
  'ReduceSumSquare',
  'ReduceL2',
  'ReduceLogSumExp',
  'ReduceProd',
  'LayerNormalization',
  'InstanceNormalization',
  'GroupNormalization',
  'Softmax',
  'LogSoftmax',
  'CumSum',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
];

/** Input slots that must stay float32 even when their node runs in float16. */
const FLOAT32_SLOTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };
const FP16_MAX = 65504;

function toHalf(t: TensorData): { values: Uint16Array; saturated: number } {
  const f = tensorToFloat32(t);
  let saturated = 0;
  for (let i = 0; i < f.length; i++) {
    const v = f[i]!;
    if (v > FP16_MAX) {
      f[i] = FP16_MAX;
      saturated++;
    } else if (v < -FP16_MAX) {
      f[i] = -FP16_MAX;
      saturated++;
    }
  }
  return { values: float32ToFloat16(f), saturated };
}

function toFloat16(model: Model, ctx: PassContext): PassResult {
  const g: Graph = model.graph;
  const changes: ChangeRecord[] = [];
  const block = new Set(ctx.options.float16BlockList ?? FLOAT16_DEFAULT_BLOCK_LIST);
  const blockNodes = new Set(ctx.options.float16BlockNodes ?? []);
  const names = new Names(g);
  // Ops of other domains have no typing rule here; the ones seen in segmentation graphs keep their input's type.
  const types = inferElemTypes(g, { foreignKeepsInputType: true });
  const isF32 = (v: string) => types.get(v) === DataType.FLOAT;
  const graphInputs = new Set(g.inputs.map((i) => i.name));
  const inits = new Map<string, Initializer>(g.initializers.map((i) => [i.name, i]));

  // 1. Which nodes run in float16.
  const half = new Set<Node>();
  const keptByOp = new Map<string, string[]>();
  const untouched: string[] = [];
  for (const n of g.nodes) {
    const touchesFloat = n.inputs.some((i) => i && isF32(i)) || n.outputs.some((o) => o && isF32(o));
    const foreign = !isDefaultDomain(n) || subgraphReads(n).size > 0;
    if (foreign) {
      if (touchesFloat) untouched.push(`${nodeLabel(n, g)} (${n.domain ? n.domain + ':' : ''}${n.opType})`);
      continue;
    }
    if (block.has(n.opType) || blockNodes.has(n.name)) {
      if (touchesFloat) keptByOp.set(n.opType, [...(keptByOp.get(n.opType) ?? []), nodeLabel(n, g)]);
      continue;
    }
    half.add(n);
  }

  // 2. The new element type of every node output.
  const newType = new Map<string, DataType>();
  const typeNow = (v: string): DataType => newType.get(v) ?? types.get(v) ?? DataType.UNDEFINED;
  let attrs = 0;
  for (const n of g.nodes) {
    if (!half.has(n)) continue;
    // Ops whose output type comes from an attribute.
    if (n.opType === 'Cast') {
      const to = n.attributes['to'];
      if (to && to.type === 'int' && to.value === DataType.FLOAT) {
        n.attributes['to'] = { type: 'int', value: DataType.FLOAT16 };
        attrs++;
      }
    } else if (n.opType === 'Constant' || n.opType === 'ConstantOfShape') {
      const v = n.attributes['value'];
      if (v && v.type === 'tensor' && v.value.dataType === DataType.FLOAT) {
        n.attributes['value'] = { type: 'tensor', value: { dataType: DataType.FLOAT16, dims: [...v.value.dims], values: toHalf(v.value).values } };
        attrs++;
      } else if (n.opType === 'ConstantOfShape' && !v) {
        n.attributes['value'] = { type: 'tensor', value: { dataType: DataType.FLOAT16, dims: [1], values: new Uint16Array(1) } };
        attrs++;
      } else if (n.opType === 'Constant' && (n.attributes['value_float'] || n.attributes['value_floats'])) {
        const a = n.attributes['value_float'] ?? n.attributes['value_floats']!;
        const vals = a.type === 'float' ? [a.value] : a.type === 'floats' || a.type === 'ints' ? a.value : [];
        delete n.attributes['value_float'];
        delete n.attributes['value_floats'];
        n.attributes['value'] = { type: 'tensor', value: { dataType: DataType.FLOAT16, dims: a.type === 'float' ? [] : [vals.length], values: float32ToFloat16(vals) } };
        attrs++;
      }
    } else if (/^Random(Normal|Uniform)(Like)?$/.test(n.opType) || n.opType === 'EyeLike') {
      const d = n.attributes['dtype'];
      if ((d && d.type === 'int' && d.value === DataType.FLOAT) || (!d && !n.opType.endsWith('Like'))) {
        n.attributes['dtype'] = { type: 'int', value: DataType.FLOAT16 };
        attrs++;
      }
    }
    for (const o of n.outputs) if (o && isF32(o)) newType.set(o, DataType.FLOAT16);
  }

  // 3. Graph outputs keep float32: a float16 producer writes a renamed value and a Cast restores the name.
  const tail: Node[] = [];
  for (const o of g.outputs) {
    if (o.dataType !== DataType.FLOAT || typeNow(o.name) !== DataType.FLOAT16) continue;
    const inner = names.fresh(`${o.name}_fp16`);
    for (const n of g.nodes) n.outputs = n.outputs.map((x) => (x === o.name ? inner : x));
    replaceUses(g, o.name, inner);
    newType.set(inner, DataType.FLOAT16);
    types.set(inner, DataType.FLOAT);
    tail.push({ name: names.fresh(`${o.name}_to_fp32`), opType: 'Cast', domain: '', inputs: [inner], outputs: [o.name], attributes: { to: { type: 'int', value: DataType.FLOAT } } });
  }

  // 4. Every read gets the type its reader needs: float16 copies of initializers, Casts elsewhere.
  const initUses = new Map<string, { half: number; full: number }>();
  const want = (n: Node, slot: number): DataType =>
    half.has(n) && !(FLOAT32_SLOTS[n.opType] ?? []).includes(slot) ? DataType.FLOAT16 : DataType.FLOAT;
  for (const n of g.nodes) {
    n.inputs.forEach((v, slot) => {
      if (!v || !isF32(v) || !inits.has(v) || graphInputs.has(v)) return;
      const u = initUses.get(v) ?? { half: 0, full: 0 };
      if (want(n, slot) === DataType.FLOAT16) u.half++;
      else u.full++;
      initUses.set(v, u);
    });
  }
  const halfInit = new Map<string, string>();
  let converted = 0;
  let bytesSaved = 0;
  let saturated = 0;
  const graphOutputNames = new Set(g.outputs.map((o) => o.name));
  for (const [name, u] of initUses) {
    if (!u.half) continue;
    const t = inits.get(name)!;
    const h = toHalf(t);
    saturated += h.saturated;
    if (!u.full && !graphOutputNames.has(name)) {
      bytesSaved += t.values.byteLength - h.values.byteLength;
      t.values = h.values;
      t.dataType = DataType.FLOAT16;
      delete t.external;
      halfInit.set(name, name);
    } else {
      const nm = names.fresh(`${name}_fp16`);
      g.initializers.push({ name: nm, dataType: DataType.FLOAT16, dims: [...t.dims], values: h.values });
      halfInit.set(name, nm);
    }
    converted++;
  }
  const castOf = new Map<string, string>();
  const out: Node[] = [];
  let casts = 0;
  const cast = (v: string, to: DataType): string => {
    const key = `${v}->${to}`;
    const have = castOf.get(key);
    if (have) return have;
    const nm = names.fresh(`${v}_${to === DataType.FLOAT16 ? 'fp16' : 'fp32'}`);
    out.push({ name: names.fresh(`Cast_${nm}`), opType: 'Cast', domain: '', inputs: [v], outputs: [nm], attributes: { to: { type: 'int', value: to } } });
    castOf.set(key, nm);
    casts++;
    return nm;
  };
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((v, slot) => {
      if (!v || !isF32(v)) return v;
      const need = want(n, slot);
      if (halfInit.has(v)) {
        if (need === DataType.FLOAT16) return halfInit.get(v)!;
        return halfInit.get(v) === v ? cast(v, DataType.FLOAT) : v; // converted in place only when no float32 reader exists
      }
      const have = typeNow(v);
      return have === need ? v : cast(v, need);
    });
    // Subgraphs (kept float32) read float32 versions of outer values that became float16.
    for (const s of subgraphReads(n)) {
      if (isF32(s) && typeNow(s) === DataType.FLOAT16) {
        const nm = cast(s, DataType.FLOAT);
        for (const a of Object.values(n.attributes)) if (a.type === 'graph') replaceUses(a.value, s, nm);
      }
    }
    out.push(n);
  }
  g.nodes = [...out, ...tail];
  casts += tail.length;
  // Casts that now convert a value to the type it already has (e.g. float16-stored weights whose Cast to
  // float32 became a Cast to float16) are no-ops: their readers read the value directly.
  const outputNames = new Set(g.outputs.map((o) => o.name));
  const initType = new Map(g.initializers.map((i) => [i.name, i.dataType]));
  const noop = new Set<Node>();
  for (const n of g.nodes) {
    if (n.opType !== 'Cast' || !isDefaultDomain(n) || !n.inputs[0] || !n.outputs[0] || outputNames.has(n.outputs[0])) continue;
    const to = n.attributes['to'];
    const src = n.inputs[0];
    const have = initType.get(src) ?? typeNow(src);
    if (to && to.type === 'int' && have === to.value && !graphInputs.has(src)) {
      replaceUses(g, n.outputs[0], src);
      noop.add(n);
    }
  }
  if (noop.size) {
    g.nodes = g.nodes.filter((n) => !noop.has(n));
    g.valueInfo = g.valueInfo.filter((v) => ![...noop].some((n) => n.outputs[0] === v.name));
  }
  for (const v of g.valueInfo) if (newType.get(v.name) === DataType.FLOAT16) v.dataType = DataType.FLOAT16;

  changes.push(
    record(
      PASS,
      'changed',
      `${half.size} node(s) run in float16${noop.size ? ` (${noop.size} Cast(s) that became no-ops removed)` : ''}; ${converted} float32 initializer(s) stored as float16 (${(bytesSaved / 1048576).toFixed(2)} MiB saved)${attrs ? `; ${attrs} float attribute(s)/Cast target(s) switched` : ''}; ${casts} Cast(s) added at the float32 inputs/outputs and around float32 nodes`,
      [],
      half.size,
    ),
  );
  if (keptByOp.size) {
    const kept = [...keptByOp].map(([op, ns]) => `${ns.length} ${op}`).join(', ');
    changes.push(record(PASS, 'skipped', `kept in float32 by the block list: ${kept}`, [...keptByOp.values()].flat()));
  }
  if (untouched.length) changes.push(record(PASS, 'skipped', `left untouched in float32 (other domain or subgraph, typing unknown here): ${untouched.join(', ')}`, untouched));
  if (saturated) changes.push(record(PASS, 'changed', `${saturated} weight value(s) beyond float16's range were saturated to +-65504`, [], saturated));
  return { model, changes };
}

export const toFloat16Pass: Pass = {
  name: 'to-float16',
  description: 'float32 weights and activations to float16, float32 inputs/outputs kept (Casts at the boundary), a block list kept in float32',
  precision: 'float16',
  run: toFloat16,
};
