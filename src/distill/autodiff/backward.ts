/**
 * Reverse-mode differentiation as a graph rewrite: from a forward graph and the
 * name of its scalar loss, build ONE ONNX model whose run gives the loss, the
 * gradient of every trained parameter and the BatchNorm running-stat updates,
 * in standard ONNX ops that onnxruntime's stock CPU provider executes.
 *
 * The trained initializers become graph inputs of the same name, so the
 * trainer feeds the current weights each step and reads `grad:<param>` back.
 */
import { DataType, defaultOpset, type Initializer, type Model, type Node, type TensorData, type ValueInfo } from '../../onnx/ir.js';
import { numel } from '../../onnx/tensor.js';
import { inferShapes } from '../../onnx/shape.js';
import { LesionFuseError } from '../../util/errors.js';
import { GradEmitter, type GradOptions } from './emit.js';
import { requireGradient, type GradContext } from './registry.js';
import './rules/index.js';

/** The opset the training engine targets, and the zoo students are built with. */
export const TRAINING_OPSET = 17;

/** Static shapes of values, by name. */
export type ShapeMap = ReadonlyMap<string, readonly number[]>;

export interface TrainingModelOptions {
  /** Name of the scalar loss value in the forward graph. */
  loss: string;
  /**
   * Initializers to train. Default: every float initializer that feeds a
   * weight slot of a trainable op (Conv/ConvTranspose W and B, BatchNormalization
   * scale and bias, Gemm/MatMul operands), minus `frozen`.
   */
  params?: string[];
  /** Initializers to keep constant (removed from the default `params`). */
  frozen?: string[];
  /** Forward values to expose as extra outputs (e.g. logits for monitoring). Default none. */
  outputs?: string[];
  /**
   * Static shape of every value of the forward graph (inputs, initializers, node outputs). Default: the
   * ONNX core's `inferShapes` (static dims only). `probeShapes` (one forward run in onnxruntime) gives the
   * shapes onnxruntime actually produces, for graphs with ops `inferShapes` does not cover.
   */
  shapes?: ShapeMap;
  /** Choices between equivalent backward formulations (default: the Conv form of the weight gradient). */
  gradOptions?: GradOptions;
}

export interface TrainingModel {
  /** The forward + loss + backward model. */
  model: Model;
  /** The loss output (same name as in the forward graph). */
  loss: string;
  /** Trained parameters, fed as inputs of the same name; their gradients are `gradientName(name)` outputs. */
  params: { name: string; dims: number[] }[];
  /** Data inputs (images, masks, soft labels...), as in the forward graph. */
  inputs: { name: string; dataType: DataType; dims: number[] }[];
  /**
   * Non-trained state fed as inputs each step (BatchNorm running mean/var),
   * with its initial value from the forward model.
   */
  state: { name: string; dims: number[]; initial: Float32Array }[];
  /** Per BatchNorm running statistic: the state input `param` and the output `update` holding its new value. */
  bnStats: { param: string; update: string }[];
  /** Extra forward outputs asked for in `opts.outputs`. */
  outputs: string[];
  /** The initial values of the parameters (from the forward model's initializers). */
  initial: Map<string, Float32Array>;
}

/** The output name of the gradient of parameter `param`. */
export function gradientName(param: string): string {
  return `grad:${param}`;
}

/** The fully static shapes `inferShapes` finds (values with a symbolic or unknown dim are left out). */
function staticShapes(model: Model): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [name, v] of inferShapes(model)) {
    if (v.shape && v.shape.every((d) => typeof d === 'number')) out.set(name, v.shape as number[]);
  }
  return out;
}

/** Input slots holding trainable weights, per op type. */
const PARAM_SLOTS: Record<string, number[]> = {
  Conv: [1, 2],
  ConvTranspose: [1, 2],
  BatchNormalization: [1, 2],
  Gemm: [0, 1, 2],
  MatMul: [0, 1],
  PRelu: [1],
};

/** Nodes in an order where every producer precedes its consumers (Kahn). */
function topoSort(nodes: readonly Node[], available: ReadonlySet<string>): Node[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  const indeg = nodes.map(() => 0);
  const users: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const inp of new Set(n.inputs)) {
      if (!inp || available.has(inp)) continue;
      const p = producer.get(inp);
      if (p === undefined) throw new LesionFuseError(`node '${n.name}' reads '${inp}', which nothing produces`, { subject: 'autodiff' });
      indeg[i]!++;
      users[p]!.push(i);
    }
  });
  const ready = nodes.map((_, i) => i).filter((i) => indeg[i] === 0);
  const out: Node[] = [];
  while (ready.length) {
    const i = ready.shift()!;
    out.push(nodes[i]!);
    for (const u of users[i]!) if (--indeg[u]! === 0) ready.push(u);
  }
  if (out.length !== nodes.length) {
    const stuck = nodes.find((_, i) => indeg[i]! > 0)!;
    throw new LesionFuseError(`the graph has a cycle through node '${stuck.name}'`, { subject: 'autodiff' });
  }
  return out;
}

function isFloat(t: TensorData): boolean {
  return t.dataType === DataType.FLOAT;
}

/**
 * Build the training model. Throws LesionFuseError for an unknown loss or
 * parameter, a non-scalar loss, or an op on the gradient path with no rule
 * (naming the node and the supported ops).
 */
export function buildTrainingModel(forward: Model, opts: TrainingModelOptions): TrainingModel {
  const model: Model = structuredClone(forward);
  const g = model.graph;
  const opset = defaultOpset(model) ?? TRAINING_OPSET;
  const shapes = opts.shapes ?? staticShapes(forward);
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const constNodes = new Map<string, TensorData>();
  for (const n of g.nodes) {
    const v = n.attributes['value'];
    if (n.opType === 'Constant' && v?.type === 'tensor') constNodes.set(n.outputs[0]!, v.value);
  }
  const shapeOf = (name: string, where: string): number[] => {
    if (!name) return [];
    const s = shapes.get(name) ?? inits.get(name)?.dims;
    if (!s) throw new LesionFuseError(`no static shape for value '${name}' (${where}); pass shapes from probeShapes/inferShapes`, { subject: 'autodiff' });
    return s.slice();
  };

  // Names already taken, so emitted names never clash.
  const used = new Set<string>();
  for (const n of g.nodes) {
    used.add(n.name);
    n.inputs.forEach((v) => used.add(v));
    n.outputs.forEach((v) => used.add(v));
  }
  g.inputs.forEach((v) => used.add(v.name));
  g.initializers.forEach((v) => used.add(v.name));

  const produced = new Set(g.nodes.flatMap((n) => n.outputs));
  if (!produced.has(opts.loss)) {
    throw new LesionFuseError(`loss '${opts.loss}' is not produced by any node of the forward graph`, { subject: 'autodiff' });
  }
  const lossShape = shapeOf(opts.loss, 'loss');
  if (numel(lossShape) !== 1) {
    throw new LesionFuseError(`loss '${opts.loss}' must be a scalar, has shape [${lossShape.join(',')}]`, { subject: 'autodiff' });
  }

  // Parameters.
  let params: string[];
  if (opts.params) {
    for (const p of opts.params) {
      const t = inits.get(p);
      if (!t) throw new LesionFuseError(`parameter '${p}' is not an initializer of the forward graph`, { subject: 'autodiff' });
      if (!isFloat(t)) throw new LesionFuseError(`parameter '${p}' is not float32`, { subject: 'autodiff' });
    }
    params = [...new Set(opts.params)];
  } else {
    const found = new Set<string>();
    for (const n of g.nodes) {
      for (const slot of PARAM_SLOTS[n.opType] ?? []) {
        const name = n.inputs[slot];
        const t = name ? inits.get(name) : undefined;
        if (t && isFloat(t)) found.add(t.name);
      }
    }
    params = [...found];
  }
  const frozen = new Set(opts.frozen ?? []);
  for (const f of frozen) {
    if (!inits.has(f)) throw new LesionFuseError(`frozen '${f}' is not an initializer of the forward graph`, { subject: 'autodiff' });
  }
  params = params.filter((p) => !frozen.has(p));

  const available = new Set<string>([...g.inputs.map((i) => i.name), ...inits.keys()]);
  const order = topoSort(g.nodes, available);

  // Which values depend on a parameter, and which reach the loss.
  const requires = new Set<string>(params);
  for (const n of order) {
    if (n.inputs.some((i) => i && requires.has(i))) n.outputs.forEach((o) => o && requires.add(o));
  }
  const reaches = new Set<string>([opts.loss]);
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n.outputs.some((o) => reaches.has(o))) n.inputs.forEach((v) => v && reaches.add(v));
  }
  const onPath = (n: Node): boolean => n.outputs.some((o) => reaches.has(o) && requires.has(o));

  // Forward rewrites the backward needs (MaxPool Indices, BatchNorm training mode).
  const fresh = (base: string): string => {
    let k = 0;
    let name = base;
    while (used.has(name)) name = `${base}_${++k}`;
    used.add(name);
    return name;
  };
  const bnStats: { param: string; update: string }[] = [];
  const stateNames: string[] = [];
  for (const n of order) {
    const isBn = n.opType === 'BatchNormalization' && n.outputs.some((o) => reaches.has(o));
    if (!isBn && !onPath(n)) continue;
    const entry = requireGradient(n);
    if (entry.prepare) entry.prepare(n, fresh);
    if (isBn) {
      for (const k of [3, 4]) {
        const stat = n.inputs[k]!;
        if (inits.has(stat) && !params.includes(stat)) {
          bnStats.push({ param: stat, update: n.outputs[k - 2]! });
          if (!stateNames.includes(stat)) stateNames.push(stat);
        }
      }
    }
  }

  // The backward sweep.
  const b = new GradEmitter(used, opset, 'grad', opts.gradOptions ?? {});
  const grads = new Map<string, string[]>();
  const addGrad = (v: string, gname: string): void => {
    const list = grads.get(v);
    if (list) list.push(gname);
    else grads.set(v, [gname]);
  };
  /** The accumulated gradient of `v` (fan-out summed with Add), or undefined. */
  const total = (v: string): string | undefined => {
    const list = grads.get(v);
    if (!list || list.length === 0) return undefined;
    let acc = list[0]!;
    for (let i = 1; i < list.length; i++) acc = b.op('Add', [acc, list[i]!]);
    grads.set(v, [acc]);
    return acc;
  };
  addGrad(opts.loss, b.f32([1], lossShape));

  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (!onPath(n)) continue;
    const { rule } = requireGradient(n);
    b.scope = `grad/${n.name || n.opType}`;
    const ctx: GradContext = {
      node: n,
      inputShapes: n.inputs.map((v) => shapeOf(v, `input of node '${n.name}'`)),
      outputShapes: n.outputs.map((v, k) => (k === 0 || shapes.has(v) ? shapeOf(v, `output of node '${n.name}'`) : [])),
      dY: n.outputs.map((o) => (o && reaches.has(o) ? total(o) : undefined)),
      needsGrad: (k) => !!n.inputs[k] && requires.has(n.inputs[k]!),
      constantInput: (k) => {
        const name = n.inputs[k];
        if (!name || requires.has(name)) return undefined;
        const t = inits.get(name) ?? constNodes.get(name);
        return t ? ({ name, ...t } as Initializer) : undefined;
      },
      attr: (name) => n.attributes[name],
      b,
    };
    const gin = rule(ctx);
    gin.forEach((gname, k) => {
      const v = n.inputs[k];
      if (gname && v && requires.has(v)) addGrad(v, gname);
    });
  }

  // Outputs: loss, one gradient per parameter, BN updates, requested forward values.
  b.scope = 'grad/out';
  const outputs: ValueInfo[] = [{ name: opts.loss, dataType: DataType.FLOAT, shape: lossShape }];
  for (const p of params) {
    const dims = inits.get(p)!.dims;
    const gsum = total(p);
    const out = gradientName(p);
    b.nodes.push({
      name: fresh(`${out}_node`),
      opType: 'Identity',
      domain: '',
      inputs: [gsum ?? b.zeros(dims)],
      outputs: [out],
      attributes: {},
    });
    outputs.push({ name: out, dataType: DataType.FLOAT, shape: dims.slice() });
  }
  for (const s of bnStats) outputs.push({ name: s.update, dataType: DataType.FLOAT, shape: inits.get(s.param)!.dims.slice() });
  for (const o of opts.outputs ?? []) {
    if (!produced.has(o) && !available.has(o)) throw new LesionFuseError(`output '${o}' is not a value of the forward graph`, { subject: 'autodiff' });
    if (!outputs.some((x) => x.name === o)) outputs.push({ name: o, dataType: DataType.FLOAT, shape: shapeOf(o, 'requested output') });
  }

  // Prune nodes nothing needs (forward branches that feed neither the loss nor an output).
  const allNodes = [...order, ...b.nodes];
  const needed = new Set(outputs.map((o) => o.name));
  const keep: Node[] = [];
  for (let i = allNodes.length - 1; i >= 0; i--) {
    const n = allNodes[i]!;
    if (n.outputs.some((o) => needed.has(o))) {
      keep.push(n);
      n.inputs.forEach((v) => v && needed.add(v));
    }
  }
  keep.reverse();

  const movedToInputs = new Set([...params, ...stateNames]);
  const paramInfos = params.map((p) => ({ name: p, dims: inits.get(p)!.dims.slice() }));
  const state = stateNames.map((s) => {
    const t = inits.get(s)!;
    return { name: s, dims: t.dims.slice(), initial: Float32Array.from(t.values as Float32Array) };
  });
  const initial = new Map(params.map((p) => [p, Float32Array.from(inits.get(p)!.values as Float32Array)]));
  const dataInputs = g.inputs.filter((v) => !inits.has(v.name));
  g.nodes = keep;
  g.initializers = [...g.initializers.filter((t) => !movedToInputs.has(t.name) && needed.has(t.name)), ...b.constants.filter((t) => needed.has(t.name))];
  g.inputs = [
    ...dataInputs.filter((v) => needed.has(v.name)),
    ...[...paramInfos, ...state].map((p) => ({ name: p.name, dataType: DataType.FLOAT, shape: p.dims })),
  ];
  g.outputs = outputs;
  g.valueInfo = [];
  return {
    model,
    loss: opts.loss,
    params: paramInfos,
    inputs: dataInputs.filter((v) => needed.has(v.name)).map((v) => ({ name: v.name, dataType: v.dataType, dims: shapeOf(v.name, 'data input') })),
    state,
    bnStats,
    outputs: opts.outputs ?? [],
    initial,
  };
}
