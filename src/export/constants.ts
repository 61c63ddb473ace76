/**
 * fold-constants: nodes whose inputs are all constants compute the same tensor on every run; computing it
 * once here and storing it as an initializer removes that work (and the Shape/Gather/Concat chains exporters
 * emit around Reshape) from every inference. Evaluation uses onnxruntime-node itself, on a small model made
 * of just the foldable nodes, so the folded values are exactly what the runtime would have computed: no
 * second implementation of each op's semantics to get wrong.
 */
import * as ort from '../util/ort.js';
import { DataType, type Dim, type Initializer, type Model, type Node, type TensorData, type ValueInfo } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shape.js';
import { encodeModel } from '../onnx/io.js';
import { fromOrtTensor, numel } from '../onnx/tensor.js';
import { describeError } from '../util/errors.js';
import type { ChangeRecord, Pass, PassContext, PassResult } from './pass.js';
import { inferElemTypes } from './types.js';
import { Constants, constantNodeTensor, isDefaultDomain, nodeLabel, readNames, record, subgraphReads } from './util.js';

const PASS = 'fold-constants';

/** Ops whose output differs from run to run: never folded. */
export const NON_DETERMINISTIC_OPS = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli']);
const STORAGE_SOURCE_TYPES = new Set([DataType.FLOAT16, DataType.BFLOAT16, DataType.INT8, DataType.UINT8, DataType.INT4, DataType.UINT4]);
const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

function bytesOf(t: TensorData): number {
  return t.values.byteLength;
}

function shapeSlice<D>(n: Node, dims: D[]): D[] {
  const r = dims.length;
  const at = (k: string, d: number) => {
    const a = n.attributes[k];
    let v = a && a.type === 'int' ? a.value : d;
    if (v < 0) v += r;
    return Math.min(Math.max(v, 0), r);
  };
  return dims.slice(at('start', 0), at('end', r));
}

const asInt = (d: Dim): number | null => (typeof d === 'number' ? d : null);
const int64Of = (v: number[], scalar = false): TensorData => ({ dataType: DataType.INT64, dims: scalar ? [] : [v.length], values: BigInt64Array.from(v.map(BigInt)) });

/**
 * Fold one shape-arithmetic node from what is known about shapes: a constant when every dim it yields is
 * static, else the partly known dims of a Shape output (for a later Gather/Slice), else null.
 */
function foldShapeOp(
  n: Node,
  shapeOf: (v: string) => Dim[] | null,
  partial: Map<string, (number | null)[]>,
  constOf: (v: string) => TensorData | undefined,
): { tensor: TensorData } | { dims: (number | null)[] } | null {
  if (!isDefaultDomain(n)) return null;
  if (n.opType === 'Shape' || n.opType === 'Size') {
    const s = shapeOf(n.inputs[0]!);
    if (!s) return null;
    const dims = s.map(asInt);
    if (n.opType === 'Size') return dims.every((d) => d !== null) ? { tensor: int64Of([numel(dims as number[])], true) } : null;
    const picked = shapeSlice(n, dims);
    return picked.every((d) => d !== null) ? { tensor: int64Of(picked as number[]) } : { dims: picked };
  }
  const src = partial.get(n.inputs[0]!);
  if (!src) return null;
  const ints = (v: string | undefined): number[] | null => {
    if (!v) return null;
    const t = constOf(v);
    if (!t || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32)) return null;
    return Array.from(t.values as ArrayLike<number | bigint>, Number);
  };
  if (n.opType === 'Gather') {
    const ax = n.attributes['axis'];
    if (ax && ax.type === 'int' && ax.value !== 0) return null;
    const idxT = n.inputs[1] ? constOf(n.inputs[1]) : undefined;
    const idx = ints(n.inputs[1]);
    if (!idxT || !idx || idxT.dims.length > 1) return null;
    const picked = idx.map((i) => src[i < 0 ? i + src.length : i] ?? null);
    if (picked.some((d) => d === null)) return null;
    return { tensor: idxT.dims.length === 0 ? int64Of(picked as number[], true) : int64Of(picked as number[]) };
  }
  if (n.opType === 'Slice') {
    const starts = ints(n.inputs[1]);
    const ends = ints(n.inputs[2]);
    const axes = n.inputs[3] ? ints(n.inputs[3]) : [0];
    const steps = n.inputs[4] ? ints(n.inputs[4]) : [1];
    if (!starts || !ends || !axes || !steps || starts.length !== 1 || ends.length !== 1 || axes[0] !== 0 || steps[0] !== 1) return null;
    const r = src.length;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    const picked = src.slice(clamp(starts[0]!), clamp(ends[0]!));
    return picked.every((d) => d !== null) ? { tensor: int64Of(picked as number[]) } : { dims: picked };
  }
  return null;
}

async function foldConstants(model: Model, ctx: PassContext): Promise<PassResult> {
  const g = model.graph;
  const changes: ChangeRecord[] = [];
  const maxBytes = ctx.options.foldMaxBytes ?? DEFAULT_MAX_BYTES;
  const foldStorage = ctx.options.foldStorageCasts ?? false;
  const consts = new Constants(g);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));

  // 1. Constant nodes become initializers (no evaluation needed).
  const constantNodes: string[] = [];
  const newInits = new Map<string, TensorData>();
  const dropped = new Set<Node>();
  for (const n of g.nodes) {
    if (n.opType !== 'Constant' || !isDefaultDomain(n) || !n.outputs[0] || graphOutputs.has(n.outputs[0])) continue;
    const t = constantNodeTensor(n);
    if (!t) {
      changes.push(record(PASS, 'skipped', `left Constant ${nodeLabel(n, g)}: its value kind (sparse or string) is not converted`, [nodeLabel(n, g)]));
      continue;
    }
    newInits.set(n.outputs[0], t);
    dropped.add(n);
    constantNodes.push(nodeLabel(n, g));
  }

  // 2. Which nodes are foldable, in graph order (ONNX graphs are topologically sorted).
  const known = new Set<string>();
  const inputNames = new Set(g.inputs.map((i) => i.name));
  for (const i of g.initializers) if (!inputNames.has(i.name)) known.add(i.name);
  for (const k of newInits.keys()) known.add(k);
  const foldable: Node[] = [];
  const elemTypes = inferElemTypes(g);
  const shapeFolds = new Map<string, TensorData>();
  // Outputs of Shape nodes whose dims are partly known (symbolic or unknown entries are null).
  const partial = new Map<string, (number | null)[]>();
  let inferred: Map<string, ValueInfo> | null = null;
  const shapeOf = (v: string): Dim[] | null => {
    try {
      inferred ??= inferShapes(model, { useDeclared: false });
    } catch {
      inferred = new Map();
    }
    return inferred.get(v)?.shape ?? g.inputs.find((i) => i.name === v)?.shape ?? null;
  };
  const storageKept: string[] = [];
  for (const n of g.nodes) {
    if (dropped.has(n)) continue;
    if (!isDefaultDomain(n) || NON_DETERMINISTIC_OPS.has(n.opType) || subgraphReads(n).size > 0) {
      if (n.inputs.some((i) => i) && n.inputs.every((i) => !i || known.has(i))) {
        const why = !isDefaultDomain(n) ? `op ${n.domain}:${n.opType} is outside the default ONNX domain` : NON_DETERMINISTIC_OPS.has(n.opType) ? 'non-deterministic op' : 'it has subgraphs';
        changes.push(record(PASS, 'skipped', `left ${nodeLabel(n, g)} untouched although its inputs are constant: ${why}`, [nodeLabel(n, g)]));
      }
      continue;
    }
    if (n.outputs.some((o) => graphOutputs.has(o))) continue;
    // Shape arithmetic on static dims is known without evaluating anything: Shape/Size of a value whose
    // inferred shape is static, and Gather/Slice picking static dims out of a partly dynamic shape (an
    // exporter's Reshape targets mix the dynamic batch with fixed H, W, C).
    if (n.outputs[0] && n.inputs[0]) {
      const folded = foldShapeOp(n, shapeOf, partial, (nm) => consts.get(nm) ?? newInits.get(nm) ?? shapeFolds.get(nm));
      if (folded) {
        if ('tensor' in folded) {
          shapeFolds.set(n.outputs[0], folded.tensor);
          known.add(n.outputs[0]);
          dropped.add(n);
          continue;
        }
        partial.set(n.outputs[0], folded.dims);
      }
    }
    const ins = n.inputs.filter((i) => i);
    if (!ins.length || !ins.every((i) => known.has(i))) continue;
    // The evaluation model must declare each output's element type.
    if (n.outputs.some((o) => o && !elemTypes.get(o))) continue;
    if (!foldStorage) {
      const src = consts.get(ins[0]!) ?? newInits.get(ins[0]!);
      if (n.opType === 'DequantizeLinear' || (n.opType === 'Cast' && src && STORAGE_SOURCE_TYPES.has(src.dataType))) {
        storageKept.push(nodeLabel(n, g));
        continue;
      }
    }
    foldable.push(n);
    for (const o of n.outputs) if (o) known.add(o);
  }
  if (storageKept.length) {
    changes.push(record(PASS, 'skipped', `kept ${storageKept.length} Cast/DequantizeLinear of stored low-precision weights (storage compression; foldStorageCasts folds them)`, storageKept, storageKept.length));
  }

  // 3. Evaluate all foldable outputs at once in onnxruntime.
  const values = new Map<string, TensorData>();
  if (foldable.length) {
    const needInits = new Set<string>();
    for (const n of foldable) for (const i of n.inputs) if (i && !foldable.some((m) => m.outputs.includes(i))) needInits.add(i);
    const initByName = new Map(g.initializers.map((i) => [i.name, i]));
    const evalInits: Initializer[] = [];
    for (const name of needInits) {
      const t = initByName.get(name) ?? newInits.get(name) ?? shapeFolds.get(name);
      if (t) evalInits.push({ name, dataType: t.dataType, dims: t.dims, values: t.values });
    }
    const outs = foldable.flatMap((n) => n.outputs.filter((o) => o));
    const evalModel: Model = {
      irVersion: model.irVersion,
      opsetImports: model.opsetImports,
      producerName: 'lesionfuse-fold-constants',
      producerVersion: '',
      domain: '',
      modelVersion: 0,
      docString: '',
      metadata: {},
      graph: { name: 'fold', nodes: foldable, inputs: [], outputs: outs.map((name) => ({ name, dataType: elemTypes.get(name)!, shape: null })), initializers: evalInits, valueInfo: [] },
    };
    try {
      const session = await ort.InferenceSession.create(encodeModel(evalModel), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
      try {
        const r = await session.run({});
        for (const name of outs) if (r[name]) values.set(name, fromOrtTensor(r[name]!));
      } finally {
        await session.release();
      }
    } catch (err) {
      changes.push(record(PASS, 'skipped', `onnxruntime could not evaluate the ${foldable.length} constant node(s), nothing folded: ${describeError(err)}`, foldable.map((n) => nodeLabel(n, g))));
      values.clear();
    }
  }

  // 4. Walk back from what the remaining graph reads: a computed value is stored as an initializer unless it
  // is too big to be worth materialising, in which case its producer stays (and its inputs are needed).
  const producer = new Map<string, Node>();
  for (const n of foldable) for (const o of n.outputs) if (o) producer.set(o, n);
  const keptFoldable = new Set<Node>();
  const materialise = new Map<string, TensorData>();
  const tooBig: string[] = [];
  const needed: string[] = [];
  for (const n of g.nodes) {
    if (dropped.has(n) || (producer.get(n.outputs[0] ?? '') === n && values.size)) continue;
    for (const i of n.inputs) if (i) needed.push(i);
    for (const s of subgraphReads(n)) needed.push(s);
  }
  for (const o of g.outputs) needed.push(o.name);
  const seen = new Set<string>();
  while (needed.length) {
    const v = needed.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const p = producer.get(v);
    if (!p || !values.size) continue;
    if (keptFoldable.has(p)) continue;
    const t = values.get(v);
    const inBytes = p.inputs.reduce((s, i) => s + ((i && (values.get(i) ?? consts.get(i) ?? newInits.get(i))?.values.byteLength) || 0), 0);
    if (t && (bytesOf(t) <= maxBytes || bytesOf(t) <= inBytes)) {
      materialise.set(v, t);
    } else {
      keptFoldable.add(p);
      if (t) tooBig.push(`${nodeLabel(p, g)} (${(bytesOf(t) / 1048576).toFixed(1)} MiB)`);
      for (const i of p.inputs) if (i) needed.push(i);
    }
  }
  // A kept node still defines all its outputs: none of them may also become an initializer.
  for (const p of keptFoldable) for (const o of p.outputs) materialise.delete(o);
  const folded = values.size ? foldable.filter((n) => !keptFoldable.has(n)) : [];
  const foldedSet = new Set(folded);

  // 5. Rewrite the graph.
  g.nodes = g.nodes.filter((n) => !dropped.has(n) && !foldedSet.has(n));
  const existing = new Set(g.initializers.map((i) => i.name));
  const add = (name: string, t: TensorData) => {
    if (existing.has(name)) return;
    g.initializers.push({ name, dataType: t.dataType, dims: [...t.dims], values: t.values });
    existing.add(name);
  };
  const read = readNames(g);
  for (const [name, t] of newInits) if (read.has(name)) add(name, t);
  for (const [name, t] of shapeFolds) if (read.has(name)) add(name, t);
  for (const [name, t] of materialise) if (read.has(name)) add(name, t);
  // Initializers only the folded nodes read are now unused.
  const readAfter = readNames(g);
  const before = g.initializers.length;
  g.initializers = g.initializers.filter((i) => readAfter.has(i.name) || inputNames.has(i.name));
  const removedInits = before - g.initializers.length;
  const defined = new Set<string>([...g.inputs.map((i) => i.name), ...g.initializers.map((i) => i.name)]);
  for (const n of g.nodes) for (const o of n.outputs) defined.add(o);
  g.valueInfo = g.valueInfo.filter((v) => defined.has(v.name) && !existing.has(v.name));

  if (constantNodes.length) changes.unshift(record(PASS, 'folded', `turned ${constantNodes.length} Constant node(s) into initializers`, constantNodes, constantNodes.length));
  if (shapeFolds.size) changes.push(record(PASS, 'folded', `replaced ${shapeFolds.size} Shape/Size/Gather/Slice of static dims by constants`, [...shapeFolds.keys()], shapeFolds.size));
  if (folded.length) {
    const byOp = new Map<string, number>();
    for (const n of folded) byOp.set(n.opType, (byOp.get(n.opType) ?? 0) + 1);
    changes.push(record(PASS, 'folded', `evaluated ${folded.length} constant node(s) with onnxruntime into initializers (${[...byOp].map(([o, k]) => `${k} ${o}`).join(', ')}); ${removedInits} initializer(s) no longer read were removed`, folded.map((n) => nodeLabel(n, g)), folded.length));
  }
  if (tooBig.length) changes.push(record(PASS, 'skipped', `kept ${tooBig.length} node(s) whose constant output exceeds ${(maxBytes / 1048576).toFixed(1)} MiB and its inputs (not materialised)`, tooBig, tooBig.length));
  if (!changes.length) changes.push(record(PASS, 'changed', 'no constant subgraphs found', [], 0));
  return { model, changes };
}

export const foldConstantsPass: Pass = {
  name: 'fold-constants',
  description: 'evaluate subgraphs whose inputs are all constants with onnxruntime and store the results as initializers',
  precision: 'float32',
  run: foldConstants,
};
