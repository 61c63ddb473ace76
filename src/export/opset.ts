/**
 * update-opset: move a model's default-domain opset to a target version, but only where that cannot change
 * what the model computes. Each op's history below lists the opset versions at which its definition changed
 * (the `since_version`s of the ONNX operator schemas) and, for each change, whether it only added types or
 * optional behaviour with defaults equal to the old behaviour ('types'), moved attributes to inputs or
 * otherwise needs an edit this pass knows how to make (a converter), or changed semantics in a way this pass
 * will not guess ('breaking'). A node whose op crosses a breaking change, or whose op has no history here,
 * stops the pass with a message naming the node: nothing is written half-converted.
 */
import { irVersionForOpset } from '../onnx/builder.js';
import { DataType, defaultOpset, type Graph, type Model, type Node, type TensorData } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shape.js';
import { floatTensor, int64Tensor } from '../onnx/tensor.js';
import { LesionFuseError } from '../util/errors.js';
import type { ChangeRecord, Pass, PassContext, PassResult } from './pass.js';
import { inferElemTypes } from './types.js';
import { Constants, Names, isDefaultDomain, nodeLabel, record } from './util.js';

const PASS = 'update-opset';

/** What an edit needs: the graph (to add initializers), fresh names, element types, ranks. */
interface ConvertCtx {
  g: Graph;
  names: Names;
  elemType: (v: string) => DataType;
  rank: (v: string) => number | null;
  consts: Constants;
}
/** Edits `n` for the new version, or returns why it cannot. */
type Converter = { up: (n: Node, c: ConvertCtx) => string | null; note: string };
type Change = 'types' | Converter | { breaking: string };

const T: Change = 'types';
const br = (why: string): Change => ({ breaking: why });

function dropAttr(name: string, when?: (n: Node) => string | null): Converter {
  return {
    note: `drop the removed '${name}' attribute`,
    up: (n) => {
      if (when) {
        const why = when(n);
        if (why) return why;
      }
      delete n.attributes[name];
      return null;
    },
  };
}
const consumed = dropAttr('consumed_inputs');
const noLegacyBroadcast: Converter = {
  note: "multidirectional broadcasting (no 'broadcast' attribute in use)",
  up: (n) => {
    const b = n.attributes['broadcast'];
    if (b && b.type === 'int' && b.value !== 0) return "the legacy 'broadcast'/'axis' attributes are set (opset < 7 broadcasting differs)";
    delete n.attributes['broadcast'];
    delete n.attributes['axis'];
    return null;
  },
};

function intsAttrToInput(attr: string, slot: number, opts: { required?: boolean } = {}): Converter {
  return {
    note: `'${attr}' attribute becomes input ${slot}`,
    up: (n, c) => {
      const a = n.attributes[attr];
      delete n.attributes[attr];
      if (!a) return opts.required ? `the '${attr}' attribute is missing` : null;
      if (a.type !== 'ints') return `attribute '${attr}' is not a list of ints`;
      const name = c.names.fresh(`${nodeLabel(n, c.g)}_${attr}`);
      c.g.initializers.push({ name, ...int64Tensor([a.value.length], a.value) });
      while (n.inputs.length < slot) n.inputs.push('');
      n.inputs[slot] = name;
      return null;
    },
  };
}

/** Pad-11 and Clip-11 take scalars of the data's type as inputs. */
function scalarOf(dt: DataType, v: number): TensorData | null {
  if (dt === DataType.FLOAT) return floatTensor([], [v]);
  if (dt === DataType.DOUBLE) return { dataType: dt, dims: [], values: Float64Array.from([v]) };
  if (dt === DataType.INT64) return int64Tensor([], [v]);
  if (dt === DataType.INT32) return { dataType: dt, dims: [], values: Int32Array.from([v]) };
  return null;
}

const padTo11: Converter = {
  note: "'pads'/'value' attributes become inputs",
  up: (n, c) => {
    const mode = n.attributes['mode'];
    const pads = n.attributes['pads'] ?? n.attributes['paddings'];
    if (!pads || pads.type !== 'ints') return "the 'pads' attribute is missing";
    const value = n.attributes['value'];
    const v = value && (value.type === 'float' || value.type === 'int') ? value.value : 0;
    delete n.attributes['pads'];
    delete n.attributes['paddings'];
    delete n.attributes['value'];
    const pn = c.names.fresh(`${nodeLabel(n, c.g)}_pads`);
    c.g.initializers.push({ name: pn, ...int64Tensor([pads.value.length], pads.value) });
    n.inputs[1] = pn;
    if (v !== 0 && (!mode || (mode.type === 'string' && mode.value === 'constant'))) {
      const t = scalarOf(c.elemType(n.inputs[0]!), v);
      if (!t) return `the pad value needs the data type of ${n.inputs[0]}, which is unknown or not float/int`;
      const vn = c.names.fresh(`${nodeLabel(n, c.g)}_value`);
      c.g.initializers.push({ name: vn, ...t });
      n.inputs[2] = vn;
    }
    return null;
  },
};

const clipTo11: Converter = {
  note: "'min'/'max' attributes become inputs",
  up: (n, c) => {
    const dt = c.elemType(n.inputs[0]!);
    for (const [attr, slot] of [['min', 1], ['max', 2]] as const) {
      const a = n.attributes[attr];
      delete n.attributes[attr];
      if (!a || (a.type !== 'float' && a.type !== 'int')) continue;
      const t = scalarOf(dt, a.value);
      if (!t) return `the data type of ${n.inputs[0]} is unknown or not float/int`;
      const nm = c.names.fresh(`${nodeLabel(n, c.g)}_${attr}`);
      c.g.initializers.push({ name: nm, ...t });
      while (n.inputs.length < slot) n.inputs.push('');
      n.inputs[slot] = nm;
    }
    return null;
  },
};

const dropoutTo12: Converter = {
  note: "'ratio' attribute becomes an input (Dropout is the identity at inference either way)",
  up: (n, c) => {
    const r = n.attributes['ratio'];
    delete n.attributes['ratio'];
    if (r && (r.type === 'float' || r.type === 'int')) {
      const nm = c.names.fresh(`${nodeLabel(n, c.g)}_ratio`);
      c.g.initializers.push({ name: nm, ...floatTensor([], [r.value]) });
      n.inputs[1] = nm;
    }
    return null;
  },
};

const splitTo13 = intsAttrToInput('split', 1);
const splitTo18: Converter = {
  note: "equal splits name their count in 'num_outputs'",
  up: (n) => {
    if (!n.inputs[1]) n.attributes['num_outputs'] = { type: 'int', value: n.outputs.length };
    return null;
  },
};

const softmaxTo13: Converter = {
  note: 'Softmax-13 works on one axis instead of a 2-D coercion: identical when the axis is the last one',
  up: (n, c) => {
    const r = c.rank(n.inputs[0]!);
    const a = n.attributes['axis'];
    const axis = a && a.type === 'int' ? a.value : 1;
    if (r === null) return 'the input rank is unknown, so the opset-13 axis semantics cannot be checked';
    const norm = axis < 0 ? axis + r : axis;
    if (norm !== r - 1) return `axis ${axis} of a rank-${r} input is not the last axis: opset 13 changed what it normalises over`;
    n.attributes['axis'] = { type: 'int', value: -1 };
    return null;
  },
};

const resizeTo11: Converter = {
  note: "Resize-10's asymmetric coordinates (and floor for nearest) made explicit; an empty roi input added",
  up: (n, c) => {
    const mode = n.attributes['mode'];
    n.attributes['coordinate_transformation_mode'] = { type: 'string', value: 'asymmetric' };
    if (!mode || (mode.type === 'string' && mode.value === 'nearest')) n.attributes['nearest_mode'] = { type: 'string', value: 'floor' };
    const roi = c.names.fresh(`${nodeLabel(n, c.g)}_roi`);
    c.g.initializers.push({ name: roi, ...floatTensor([0], []) });
    n.inputs = [n.inputs[0]!, roi, n.inputs[1]!];
    return null;
  },
};

const sliceTo10: Converter = {
  note: "'starts'/'ends'/'axes' attributes become inputs",
  up: (n, c) => {
    const label = nodeLabel(n, c.g);
    const ins = [n.inputs[0]!];
    for (const attr of ['starts', 'ends', 'axes']) {
      const a = n.attributes[attr];
      delete n.attributes[attr];
      if (!a) continue;
      if (a.type !== 'ints') return `attribute '${attr}' is not a list of ints`;
      const nm = c.names.fresh(`${label}_${attr}`);
      c.g.initializers.push({ name: nm, ...int64Tensor([a.value.length], a.value) });
      ins.push(nm);
    }
    n.inputs = ins;
    return null;
  },
};

const reshapeTo5 = intsAttrToInput('shape', 1, { required: true });
const concatTo4: Converter = {
  note: "'axis' made explicit (it was optional, default 1)",
  up: (n) => {
    if (!n.attributes['axis']) n.attributes['axis'] = { type: 'int', value: 1 };
    return null;
  },
};
const bnSpatial = dropAttr('spatial', (n) => {
  const s = n.attributes['spatial'];
  return s && s.type === 'int' && s.value === 0 ? 'spatial=0 (per-activation statistics) has no opset-9 equivalent' : null;
});
const dropIsTest = dropAttr('is_test');

/**
 * Each op's opset history: the versions at which its schema changed, and what each change means for a model
 * that uses it. Versions from the ONNX operator schemas (onnx 1.23); classification by the changelog.
 */
export const OP_HISTORY: Readonly<Record<string, Record<number, Change>>> = {
  Abs: { 1: T, 6: consumed, 13: T },
  Ceil: { 1: T, 6: consumed, 13: T },
  Floor: { 1: T, 6: consumed, 13: T },
  Neg: { 1: T, 6: consumed, 13: T },
  Reciprocal: { 1: T, 6: consumed, 13: T },
  Exp: { 1: T, 6: consumed, 13: T },
  Log: { 1: T, 6: consumed, 13: T },
  Sqrt: { 1: T, 6: consumed, 13: T },
  Sigmoid: { 1: T, 6: consumed, 13: T },
  Tanh: { 1: T, 6: consumed, 13: T },
  Relu: { 1: T, 6: consumed, 13: T, 14: T },
  LeakyRelu: { 1: T, 6: consumed, 16: T },
  Elu: { 1: T, 6: consumed, 22: T },
  Selu: { 1: T, 6: consumed, 22: T },
  HardSigmoid: { 1: T, 6: consumed, 22: T },
  HardSwish: { 14: T, 22: T },
  Softplus: { 1: T, 22: T },
  Softsign: { 1: T, 22: T },
  Mish: { 18: T, 22: T },
  Gelu: { 20: T },
  Erf: { 9: T, 13: T },
  Sign: { 9: T, 13: T },
  Round: { 11: T, 22: T },
  Sin: { 7: T, 22: T },
  Cos: { 7: T, 22: T },
  Not: { 1: T },
  Add: { 1: T, 6: consumed, 7: noLegacyBroadcast, 13: T, 14: T },
  Sub: { 1: T, 6: consumed, 7: noLegacyBroadcast, 13: T, 14: T },
  Mul: { 1: T, 6: consumed, 7: noLegacyBroadcast, 13: T, 14: T },
  Div: { 1: T, 6: consumed, 7: noLegacyBroadcast, 13: T, 14: T },
  Pow: { 1: T, 7: noLegacyBroadcast, 12: T, 13: T, 15: T },
  And: { 1: T, 7: noLegacyBroadcast },
  Or: { 1: T, 7: noLegacyBroadcast },
  Equal: { 1: T, 7: noLegacyBroadcast, 11: T, 13: T, 19: T },
  Greater: { 1: T, 7: noLegacyBroadcast, 9: T, 13: T },
  Less: { 1: T, 7: noLegacyBroadcast, 9: T, 13: T },
  Mod: { 10: T, 13: T },
  Max: { 1: T, 6: consumed, 8: T, 12: T, 13: T },
  Min: { 1: T, 6: consumed, 8: T, 12: T, 13: T },
  Sum: { 1: T, 6: consumed, 8: T, 13: T },
  Mean: { 1: T, 6: consumed, 8: T, 13: T },
  PRelu: { 1: T, 6: consumed, 7: br('PRelu-7 changed slope broadcasting'), 9: T, 16: T },
  Where: { 9: T, 16: T },
  Clip: { 1: T, 6: consumed, 11: clipTo11, 12: T, 13: T },
  Conv: { 1: T, 11: T, 22: T },
  ConvTranspose: { 1: T, 11: T, 22: T },
  BatchNormalization: { 1: T, 6: consumed, 7: dropIsTest, 9: bnSpatial, 14: T, 15: T },
  InstanceNormalization: { 1: T, 6: consumed, 22: T },
  LayerNormalization: { 17: T },
  LRN: { 1: T, 13: T },
  Gemm: { 1: T, 6: consumed, 7: dropAttr('broadcast'), 9: T, 11: T, 13: T },
  MatMul: { 1: T, 9: T, 13: T },
  Einsum: { 12: T },
  MaxPool: { 1: T, 8: T, 10: T, 11: T, 12: T, 22: T },
  AveragePool: { 1: T, 7: T, 10: T, 11: T, 19: T, 22: T },
  GlobalAveragePool: { 1: T, 22: T },
  GlobalMaxPool: { 1: T, 22: T },
  Softmax: { 1: T, 11: T, 13: softmaxTo13 },
  LogSoftmax: { 1: T, 11: T, 13: softmaxTo13 },
  Concat: { 1: T, 4: concatTo4, 11: T, 13: T },
  Split: { 1: T, 2: br('Split-2 removed the split input'), 11: T, 13: splitTo13, 18: splitTo18 },
  Slice: { 1: T, 10: sliceTo10, 11: T, 13: T },
  Reshape: { 1: T, 5: reshapeTo5, 13: T, 14: T, 19: T, 21: T, 23: T, 24: T },
  Flatten: { 1: T, 9: T, 11: T, 13: T, 21: T, 23: T, 24: T },
  Transpose: { 1: T, 13: T, 21: T, 23: T, 24: T },
  Squeeze: { 1: T, 11: T, 13: intsAttrToInput('axes', 1), 21: T, 23: T, 24: T },
  Unsqueeze: { 1: T, 11: T, 13: intsAttrToInput('axes', 1, { required: true }), 21: T, 23: T, 24: T },
  Gather: { 1: T, 11: T, 13: T },
  Expand: { 8: T, 13: T },
  Tile: { 1: T, 6: br('Tile-6 replaced the tiles/axis inputs by repeats'), 13: T },
  Pad: { 1: T, 2: br("Pad-2 renamed 'paddings'"), 11: padTo11, 13: T, 18: T, 19: T, 21: T, 23: T, 24: T },
  DepthToSpace: { 1: T, 11: T, 13: T },
  SpaceToDepth: { 1: T, 13: T },
  Resize: { 10: T, 11: resizeTo11, 13: T, 18: T, 19: T },
  Upsample: { 1: T, 7: br('Upsample-7 changed its attributes'), 9: T, 10: br('Upsample was removed at opset 10: re-export with Resize') },
  Shape: { 1: T, 13: T, 15: T, 19: T, 21: T, 23: T, 24: T },
  Size: { 1: T, 13: T, 19: T, 21: T, 23: T, 24: T },
  Cast: { 1: T, 6: br("Cast-6 changed 'to' from a string to an int"), 9: T, 13: T, 19: T, 21: T, 23: T, 24: T },
  Constant: { 1: T, 9: T, 11: T, 12: T, 13: T, 19: T, 21: T, 23: T, 24: T },
  ConstantOfShape: { 9: T, 20: T, 21: T, 23: T, 24: T },
  Identity: { 1: T, 13: T, 14: T, 16: T, 19: T, 21: T, 23: T, 24: T },
  Dropout: { 1: T, 6: consumed, 7: dropIsTest, 10: T, 12: dropoutTo12, 13: T, 22: T },
  Range: { 11: T },
  ReduceMean: { 1: T, 11: T, 13: T, 18: intsAttrToInput('axes', 1) },
  ReduceMax: { 1: T, 11: T, 12: T, 13: T, 18: intsAttrToInput('axes', 1), 20: T },
  ReduceMin: { 1: T, 11: T, 12: T, 13: T, 18: intsAttrToInput('axes', 1), 20: T },
  ReduceProd: { 1: T, 11: T, 13: T, 18: intsAttrToInput('axes', 1) },
  ReduceL2: { 1: T, 11: T, 13: T, 18: intsAttrToInput('axes', 1) },
  ReduceSumSquare: { 1: T, 11: T, 13: T, 18: intsAttrToInput('axes', 1) },
  ReduceSum: { 1: T, 11: T, 13: intsAttrToInput('axes', 1) },
  ArgMax: { 1: T, 11: T, 12: T, 13: T },
  ArgMin: { 1: T, 11: T, 12: T, 13: T },
  Trilu: { 14: T },
  QuantizeLinear: { 10: T, 13: T, 19: T, 21: T, 23: T, 24: T },
  DequantizeLinear: { 10: T, 13: T, 19: T, 21: T, 23: T, 24: T },
};

/** The lowest and highest default-domain opsets this pass converts between (the histories above go to 24; onnxruntime 1.30 loads 24). */
export const OPSET_RANGE = { min: 7, max: 24 } as const;
const EXOTIC = new Set([DataType.BFLOAT16, DataType.FLOAT8E4M3FN, DataType.FLOAT8E4M3FNUZ, DataType.FLOAT8E5M2, DataType.FLOAT8E5M2FNUZ, DataType.INT4, DataType.UINT4, DataType.FLOAT4E2M1]);

function updateOpset(model: Model, ctx: PassContext): PassResult {
  const target = ctx.options.opset;
  if (target === undefined) throw new LesionFuseError('update-opset needs a target opset (--opset N)');
  if (!Number.isInteger(target) || target < OPSET_RANGE.min || target > OPSET_RANGE.max) {
    throw new LesionFuseError(`--opset must be an integer from ${OPSET_RANGE.min} to ${OPSET_RANGE.max}, got ${target}`);
  }
  const current = defaultOpset(model);
  if (current === undefined) throw new LesionFuseError('the model imports no default-domain opset');
  const g = model.graph;
  if (current === target) return { model, changes: [record(PASS, 'changed', `already at opset ${target}`, [], 0)] };
  const up = target > current;
  const lo = Math.min(current, target);
  const hi = Math.max(current, target);
  const types = inferElemTypes(g);
  let shapes: ReturnType<typeof inferShapes> | null = null;
  const c: ConvertCtx = {
    g,
    names: new Names(g),
    elemType: (v) => types.get(v) ?? DataType.UNDEFINED,
    rank: (v) => {
      shapes ??= inferShapes(model);
      const s = shapes.get(v)?.shape;
      return s ? s.length : null;
    },
    consts: new Constants(g),
  };
  // First check every node (nothing is edited until all of them can move), then convert.
  const plan: { n: Node; steps: [number, Converter][] }[] = [];
  const problems: string[] = [];
  for (const n of g.nodes) {
    if (!isDefaultDomain(n)) continue;
    const label = `${nodeLabel(n, g)} (${n.opType})`;
    const hist = OP_HISTORY[n.opType];
    if (!hist) {
      problems.push(`${label}: no opset history for ${n.opType} in this pass`);
      continue;
    }
    const versions = Object.keys(hist).map(Number).sort((a, b) => a - b);
    if (versions[0]! > lo) {
      problems.push(`${label}: ${n.opType} does not exist before opset ${versions[0]}`);
      continue;
    }
    const crossed = versions.filter((v) => v > lo && v <= hi);
    const steps: [number, Converter][] = [];
    for (const v of crossed) {
      const ch = hist[v]!;
      if (ch === 'types') continue;
      if ('breaking' in ch) {
        problems.push(`${label}: ${ch.breaking} (opset ${v})`);
        break;
      }
      if (!up) {
        problems.push(`${label}: opset ${v} changed it (${ch.note}); downgrading across that is not supported`);
        break;
      }
      steps.push([v, ch]);
    }
    if (!up && crossed.length) {
      const exotic = [...n.inputs, ...n.outputs].filter((v) => v && EXOTIC.has(c.elemType(v)));
      if (exotic.length) problems.push(`${label}: uses ${exotic.map((v) => DataType[c.elemType(v)]).join(', ')}, which opset ${target} may not allow`);
    }
    if (steps.length) plan.push({ n, steps });
  }
  if (problems.length) {
    throw new LesionFuseError(`cannot move from opset ${current} to ${target} without changing what the model computes: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}`);
  }
  const converted: string[] = [];
  for (const { n, steps } of plan) {
    for (const [v, conv] of steps) {
      const why = conv.up(n, c);
      if (why) throw new LesionFuseError(`cannot move ${nodeLabel(n, g)} (${n.opType}) to opset ${v}: ${why}`);
      converted.push(`${nodeLabel(n, g)} (${n.opType}@${v}: ${conv.note})`);
    }
  }
  for (const o of model.opsetImports) if (o.domain === '' || o.domain === 'ai.onnx') o.version = target;
  const irBefore = model.irVersion;
  model.irVersion = Math.max(model.irVersion, irVersionForOpset(target));
  const changes: ChangeRecord[] = [
    record(PASS, 'changed', `default opset ${current} -> ${target}${model.irVersion !== irBefore ? `, ir_version ${irBefore} -> ${model.irVersion}` : ''}; ${converted.length} node edit(s) for changed op definitions`, converted, converted.length),
  ];
  return { model, changes };
}

export const updateOpsetPass: Pass = {
  name: 'update-opset',
  description: "move the default opset to a target (option opset) where no op's semantics change; moves axes/pads/split attributes to inputs",
  precision: 'float32',
  run: updateOpset,
};
