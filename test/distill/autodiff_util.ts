/**
 * Helpers for the gradient tests: tiny hand-made graphs, and a checker that
 * compares the engine's analytic gradients with central finite differences.
 *
 * Loss: L = sum(Y * R) with a fixed random R, so dL/dY = R exercises every
 * output element with a different weight. The finite differences take Y from
 * onnxruntime (float32) and form L in float64 in JS, so the only float32
 * error is in Y itself.
 */
import * as ort from 'onnxruntime-node';
import { DataType, type Attribute, type Initializer, type Model, type Node } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { numel } from '../../src/onnx/tensor.js';
import { buildTrainingModel, gradientName } from '../../src/distill/autodiff/backward.js';
import { probeShapes } from '../../src/distill/autodiff/shapes.js';
import { Rng } from '../../src/distill/engine/rng.js';

export { A } from '../../src/distill/autodiff/emit.js';

let nodeCount = 0;
export function node(opType: string, inputs: string[], outputs: string[], attributes: Record<string, Attribute> = {}): Node {
  return { name: `${opType}_${nodeCount++}`, opType, domain: '', inputs, outputs, attributes };
}

export function randTensor(rng: Rng, name: string, dims: number[], scale = 1): Initializer {
  const v = new Float32Array(numel(dims));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal() * scale;
  return { name, dataType: DataType.FLOAT, dims, values: v };
}
export function i64Init(name: string, values: number[], dims = [values.length]): Initializer {
  return { name, dataType: DataType.INT64, dims, values: BigInt64Array.from(values.map(BigInt)) };
}
export function f32Init(name: string, values: number[], dims = [values.length]): Initializer {
  return { name, dataType: DataType.FLOAT, dims, values: Float32Array.from(values) };
}

export function makeModel(nodes: Node[], initializers: Initializer[], outputs: string[], opset = 17): Model {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: opset }],
    producerName: 'lesionfuse-test',
    producerVersion: '0',
    domain: '',
    modelVersion: 1,
    docString: '',
    metadata: {},
    graph: {
      name: 'g',
      nodes,
      inputs: [],
      outputs: outputs.map((name) => ({ name, dataType: DataType.FLOAT, shape: null })),
      initializers,
      valueInfo: [],
    },
  };
}

export interface GradCheckResult {
  /** Worst |fd - analytic| / (max |analytic| over the param + tiny), per param. */
  worst: Record<string, number>;
  checked: number;
}

/**
 * Check d(sum(Y*R))/d(param) for each param (initializers of `forward` holding
 * the inputs to differentiate). `y` is the output to weight. Samples up to
 * `samples` elements per param.
 */
export async function gradCheck(
  forward: Model,
  y: string,
  params: string[],
  opts: { eps?: number; samples?: number; seed?: number } = {},
): Promise<GradCheckResult> {
  const eps = opts.eps ?? 1e-2;
  const rng = new Rng(opts.seed ?? 7);
  const shapes = await probeShapes(forward);
  const ys = shapes.get(y)!;
  const r = randTensor(rng, '__R', ys);
  const withLoss: Model = structuredClone(forward);
  withLoss.graph.initializers.push(r);
  withLoss.graph.nodes.push(node('Mul', [y, '__R'], ['__YR']), node('ReduceSum', ['__YR'], ['__loss'], { keepdims: { type: 'int', value: 0 } }));
  withLoss.graph.outputs = [{ name: '__loss', dataType: DataType.FLOAT, shape: [] }];
  const shapes2 = await probeShapes(withLoss);
  const tm = buildTrainingModel(withLoss, { loss: '__loss', params, shapes: shapes2 });
  const session = await ort.InferenceSession.create(encodeModel(tm.model), { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const values = new Map<string, Float32Array>();
  for (const p of params) values.set(p, Float32Array.from(withLoss.graph.initializers.find((t) => t.name === p)!.values as Float32Array));
  const feeds: Record<string, ort.Tensor> = {};
  for (const p of tm.params) feeds[p.name] = new ort.Tensor('float32', values.get(p.name)!, p.dims);
  for (const s of tm.state) feeds[s.name] = new ort.Tensor('float32', s.initial, s.dims);
  const res = await session.run(feeds);

  // The forward with the params as inputs, for the finite differences.
  const fwd: Model = structuredClone(forward);
  fwd.graph.initializers = fwd.graph.initializers.filter((t) => !params.includes(t.name));
  fwd.graph.inputs = params.map((p) => ({ name: p, dataType: DataType.FLOAT, shape: tm.params.find((q) => q.name === p)!.dims }));
  fwd.graph.outputs = [{ name: y, dataType: DataType.FLOAT, shape: null }];
  const fs = await ort.InferenceSession.create(encodeModel(fwd), { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const rv = r.values as Float32Array;
  const lossAt = async (): Promise<number> => {
    const out = await fs.run(feeds);
    const yv = out[y]!.data as Float32Array;
    let s = 0;
    for (let i = 0; i < yv.length; i++) s += yv[i]! * rv[i]!;
    return s;
  };
  const worst: Record<string, number> = {};
  let checked = 0;
  for (const p of params) {
    const v = values.get(p)!;
    const an = res[gradientName(p)]!.data as Float32Array;
    let maxAn = 0;
    for (const a of an) maxAn = Math.max(maxAn, Math.abs(a));
    const n = v.length;
    const idx = n <= (opts.samples ?? 40) ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: opts.samples ?? 40 }, () => rng.int(n));
    let w = 0;
    for (const i of idx) {
      const orig = v[i]!;
      v[i] = orig + eps;
      const up = v[i]!;
      const lp = await lossAt();
      v[i] = orig - eps;
      const down = v[i]!;
      const lm = await lossAt();
      v[i] = orig;
      // The step actually taken, after float32 rounding of the perturbed value.
      const fd = (lp - lm) / (up - down);
      w = Math.max(w, Math.abs(fd - an[i]!) / (maxAn + 1e-12));
      checked++;
    }
    worst[p] = w;
  }
  await session.release();
  await fs.release();
  return { worst, checked };
}
