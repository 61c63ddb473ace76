/**
 * Element types of every value in a graph, propagated from the inputs and initializers with the typing rule
 * of each op. Passes need only the element type (not the shape) to build small evaluation models and to
 * decide which values are float32 when converting to float16; this is the narrow, total version of that
 * (unknown ops give UNDEFINED, never an error).
 */
import { DataType, type Graph, type Node } from '../onnx/ir.js';
import { constantNodeTensor } from './util.js';

const BOOL_OPS = new Set(['Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

function intAttr(n: Node, k: string): number | undefined {
  const a = n.attributes[k];
  return a && a.type === 'int' ? a.value : undefined;
}

/** The element types of a node's outputs from its input types (UNDEFINED where the rule is unknown). */
export function outputElemTypes(n: Node, typeOf: (name: string) => DataType): DataType[] {
  const inT = (k: number) => (n.inputs[k] ? typeOf(n.inputs[k]!) : DataType.UNDEFINED);
  const all = (t: DataType) => n.outputs.map(() => t);
  if (n.domain !== '' && n.domain !== 'ai.onnx') return all(DataType.UNDEFINED);
  const op = n.opType;
  if (BOOL_OPS.has(op)) return all(DataType.BOOL);
  if (INT64_OPS.has(op)) return all(DataType.INT64);
  switch (op) {
    case 'Cast':
      return all(intAttr(n, 'to') ?? DataType.UNDEFINED);
    case 'CastLike':
      return all(inT(1));
    case 'Constant': {
      const t = constantNodeTensor(n);
      return all(t ? t.dataType : DataType.UNDEFINED);
    }
    case 'ConstantOfShape': {
      const v = n.attributes['value'];
      return all(v && v.type === 'tensor' ? v.value.dataType : DataType.FLOAT);
    }
    case 'Where':
      return all(inT(1));
    case 'QuantizeLinear':
      return all(n.inputs[2] ? inT(2) : (intAttr(n, 'output_dtype') || DataType.UINT8));
    case 'DequantizeLinear':
      return all(inT(1));
    case 'DynamicQuantizeLinear':
      return [DataType.UINT8, DataType.FLOAT, DataType.UINT8];
    case 'MaxPool':
      return n.outputs.map((_, k) => (k === 0 ? inT(0) : DataType.INT64));
    case 'TopK':
      return n.outputs.map((_, k) => (k === 0 ? inT(0) : DataType.INT64));
    case 'Dropout':
      return n.outputs.map((_, k) => (k === 0 ? inT(0) : DataType.BOOL));
    case 'RandomNormal':
    case 'RandomUniform':
      return all(intAttr(n, 'dtype') ?? DataType.FLOAT);
    case 'RandomNormalLike':
    case 'RandomUniformLike':
    case 'EyeLike':
      return all(intAttr(n, 'dtype') ?? inT(0));
    case 'OneHot':
      return all(inT(2));
    case 'If':
    case 'Loop':
    case 'Scan':
      return all(DataType.UNDEFINED);
    default: {
      const first = n.inputs.findIndex((i) => i);
      return all(first >= 0 ? inT(first) : DataType.UNDEFINED);
    }
  }
}

export interface ElemTypeOptions {
  /**
   * Assume that ops of other domains (no typing rule here) give outputs of their first input's type, as
   * the com.microsoft ops seen in segmentation graphs (Gelu, FusedConv, BiasGelu...) do. Default false
   * (their outputs are UNDEFINED unless value_info declares them).
   */
  foreignKeepsInputType?: boolean;
}

/** Element type of every value of `g` (inputs, initializers, node outputs), in graph order. */
export function inferElemTypes(g: Graph, opts: ElemTypeOptions = {}): Map<string, DataType> {
  const t = new Map<string, DataType>();
  for (const i of g.inputs) t.set(i.name, i.dataType);
  for (const i of g.initializers) t.set(i.name, i.dataType);
  const typeOf = (name: string) => t.get(name) ?? DataType.UNDEFINED;
  const declared = new Map<string, DataType>();
  for (const v of [...g.valueInfo, ...g.outputs]) if (v.dataType) declared.set(v.name, v.dataType);
  for (const n of g.nodes) {
    let out = outputElemTypes(n, typeOf);
    if (opts.foreignKeepsInputType && n.domain !== '' && n.domain !== 'ai.onnx') {
      const first = n.inputs.find((i) => i);
      out = n.outputs.map((o) => declared.get(o) ?? (first ? typeOf(first) : DataType.UNDEFINED));
    }
    n.outputs.forEach((o, k) => {
      if (o) t.set(o, out[k] ?? DataType.UNDEFINED);
    });
  }
  // Declared types fill what the rules could not (unknown ops).
  for (const v of [...g.valueInfo, ...g.outputs]) if ((t.get(v.name) ?? 0) === DataType.UNDEFINED && v.dataType) t.set(v.name, v.dataType);
  return t;
}
