/**
 * Static shapes by running the forward graph once in onnxruntime with every
 * intermediate value exposed as an output: exact by construction (they are the
 * shapes the training run will see), and independent of any shape-inference
 * code. Used when the ONNX core's `inferShapes` does not cover an op.
 */
import * as ort from '../../util/ort.js';
import { DataType, type Model } from '../../onnx/ir.js';
import { encodeModel } from '../../onnx/io.js';
import { numel } from '../../onnx/tensor.js';
import { LesionFuseError } from '../../util/errors.js';

function zeros(dt: DataType, dims: number[]): ort.Tensor {
  const n = numel(dims);
  switch (dt) {
    case DataType.FLOAT:
      return new ort.Tensor('float32', new Float32Array(n), dims);
    case DataType.INT64:
      return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case DataType.INT32:
      return new ort.Tensor('int32', new Int32Array(n), dims);
    case DataType.UINT8:
      return new ort.Tensor('uint8', new Uint8Array(n), dims);
    case DataType.BOOL:
      return new ort.Tensor('bool', new Uint8Array(n), dims);
    default:
      throw new LesionFuseError(`probeShapes: input data type ${dt} is not supported`, { subject: 'autodiff' });
  }
}

const BOOL_OPS = new Set(['Greater', 'Less', 'Equal', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Xor', 'Not', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);

/**
 * Element types of every node output, propagated forward (onnxruntime needs a
 * type on each graph output, and the IR has none for intermediate values).
 */
export function inferDataTypes(model: Model): Map<string, DataType> {
  const g = model.graph;
  const types = new Map<string, DataType>();
  for (const v of g.inputs) types.set(v.name, v.dataType);
  for (const t of g.initializers) types.set(t.name, t.dataType);
  for (const n of g.nodes) {
    const first = types.get(n.inputs[0] ?? '') ?? DataType.FLOAT;
    n.outputs.forEach((o, k) => {
      if (!o) return;
      let dt = first;
      const a = n.attributes;
      if (BOOL_OPS.has(n.opType)) dt = DataType.BOOL;
      else if (INT64_OPS.has(n.opType) || (n.opType === 'MaxPool' && k === 1)) dt = DataType.INT64;
      else if (n.opType === 'Cast' && a['to']?.type === 'int') dt = a['to'].value;
      else if (n.opType === 'Constant' && a['value']?.type === 'tensor') dt = a['value'].value.dataType;
      else if (n.opType === 'ConstantOfShape') dt = a['value']?.type === 'tensor' ? a['value'].value.dataType : DataType.FLOAT;
      else if (n.opType === 'Where') dt = types.get(n.inputs[1]!) ?? DataType.FLOAT;
      else if (n.opType === 'DequantizeLinear') dt = DataType.FLOAT;
      else if (n.opType === 'QuantizeLinear') dt = types.get(n.inputs[2] ?? '') ?? DataType.UINT8;
      types.set(o, dt);
    });
  }
  return types;
}

/**
 * The shape of every value (graph inputs, initializers, node outputs) of
 * `model` for inputs of the given dims (default: the inputs' static shapes).
 */
export async function probeShapes(model: Model, inputDims: Record<string, number[]> = {}): Promise<Map<string, number[]>> {
  const g = model.graph;
  const initNames = new Set(g.initializers.map((t) => t.name));
  const shapes = new Map<string, number[]>();
  for (const t of g.initializers) shapes.set(t.name, t.dims.slice());
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of g.inputs) {
    if (initNames.has(v.name)) continue;
    const dims = inputDims[v.name] ?? v.shape;
    if (!dims || dims.some((d) => typeof d !== 'number')) {
      throw new LesionFuseError(`probeShapes: input '${v.name}' has no static shape; give inputDims`, { subject: 'autodiff' });
    }
    feeds[v.name] = zeros(v.dataType, dims as number[]);
    shapes.set(v.name, dims as number[]);
  }
  const outs = [...new Set(g.nodes.flatMap((n) => n.outputs).filter((o) => o))];
  const types = inferDataTypes(model);
  const probe: Model = {
    ...model,
    graph: { ...g, outputs: outs.map((name) => ({ name, dataType: types.get(name) ?? DataType.FLOAT, shape: null })), valueInfo: [] },
  };
  const session = await ort.InferenceSession.create(encodeModel(probe), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const res = await session.run(feeds);
    for (const name of outs) {
      const t = res[name];
      if (t) shapes.set(name, t.dims.slice());
    }
  } finally {
    await session.release();
  }
  return shapes;
}
