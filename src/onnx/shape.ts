/**
 * Static shape and type inference for the ops the SDK's graphs and the teacher
 * use. Small integer shape computations (Shape -> Gather -> Concat -> Reshape,
 * Slice starts/ends, Resize sizes, Split sizes...) are constant-folded so that
 * shapes stay static where ONNX makes them computable. An op it does not know,
 * or a shape it cannot compute, gives an unknown shape for that value only;
 * inference never throws on a valid graph.
 */
import { DataType, defaultOpset, type Dim, type Graph, type Model, type Node, type TensorData, type ValueInfo } from './ir.js';
import { topologicalOrder } from './graph.js';
import { numel, tensorToNumbers } from './tensor.js';

type Shape = Dim[] | null;

/** The inferred type and shape of one value. */
interface TypeShape {
  dataType: DataType;
  shape: Shape;
}

/**
 * A small constant folded during inference (integers, or float scales), row-major.
 * Shape vectors may be partly known: an unknown entry is NaN, with its symbolic
 * name (e.g. the batch dim 'N') in `symbols` when there is one.
 */
interface Folded {
  dataType: DataType;
  dims: number[];
  values: number[];
  symbols?: (string | null)[];
}

/** The dims a folded shape vector describes (NaN entries become their symbol, or unknown). */
function dimsOf(f: Folded): Dim[] {
  return f.values.map((v, i) => (Number.isFinite(v) ? v : f.symbols?.[i] ?? null));
}

/** Pick entries of a folded vector by index, keeping their symbols. */
function pick(f: Folded, idx: number[], dims: number[]): Folded {
  const out: Folded = { dataType: f.dataType, dims, values: idx.map((i) => f.values[i]!) };
  if (f.symbols) out.symbols = idx.map((i) => f.symbols![i] ?? null);
  return out;
}

const FOLD_LIMIT = 1024;

export interface InferOptions {
  /** Use the graph's own value_info where inference cannot compute a shape (default true). */
  useDeclared?: boolean;
}

/**
 * The type and shape of every value of the model's main graph: inputs,
 * initializers, and every node output. Static dims where computable, a symbolic
 * name where it passes through unchanged (e.g. a batch dim 'N'), null otherwise.
 */
export function inferShapes(model: Model, opts: InferOptions = {}): Map<string, ValueInfo> {
  return inferGraphShapes(model.graph, defaultOpset(model) ?? 17, opts);
}

/** Like inferShapes, for a graph at a given opset. */
export function inferGraphShapes(g: Graph, opset: number, opts: InferOptions = {}): Map<string, ValueInfo> {
  const out = new Map<string, ValueInfo>();
  const consts = new Map<string, Folded>();
  const declared = new Map<string, ValueInfo>();
  if (opts.useDeclared !== false) for (const v of [...g.valueInfo, ...g.outputs]) declared.set(v.name, v);
  for (const t of g.initializers) {
    out.set(t.name, { name: t.name, dataType: t.dataType, shape: [...t.dims] });
    const f = foldTensor(t);
    if (f) consts.set(t.name, f);
  }
  // A graph input that is also an initializer (old exporters) keeps the input's declared type.
  for (const v of g.inputs) out.set(v.name, { name: v.name, dataType: v.dataType, shape: v.shape ? [...v.shape] : null });
  let order: Node[];
  try {
    order = topologicalOrder(g);
  } catch {
    order = g.nodes;
  }
  for (const node of order) {
    let results: (TypeShape | undefined)[] = [];
    try {
      const ctx = new Ctx(node, out, consts, opset);
      results = infer(ctx);
      for (const [i, f] of ctx.folded) if (node.outputs[i]) consts.set(node.outputs[i]!, f);
    } catch {
      results = [];
    }
    node.outputs.forEach((name, i) => {
      if (!name) return;
      let r = results[i];
      const d = declared.get(name);
      if (d) {
        if (!r) r = { dataType: d.dataType, shape: d.shape ? [...d.shape] : null };
        else {
          if (r.dataType === DataType.UNDEFINED) r.dataType = d.dataType;
          if (r.shape === null && d.shape) r.shape = [...d.shape];
          else if (r.shape && d.shape && r.shape.length === d.shape.length) {
            r.shape = r.shape.map((x, k) => (x === null ? d.shape![k]! : x));
          }
        }
      }
      out.set(name, { name, dataType: r?.dataType ?? DataType.UNDEFINED, shape: r?.shape ?? null });
    });
  }
  return out;
}

function foldTensor(t: TensorData): Folded | undefined {
  if (t.values.length === 0 && numel(t.dims) !== 0) return undefined;
  if (numel(t.dims) > FOLD_LIMIT) return undefined;
  try {
    return { dataType: t.dataType, dims: [...t.dims], values: tensorToNumbers(t) };
  } catch {
    return undefined;
  }
}

class Ctx {
  /** Folded constant outputs of this node, by output index. */
  readonly folded = new Map<number, Folded>();
  constructor(
    readonly node: Node,
    private readonly shapes: Map<string, ValueInfo>,
    private readonly consts: Map<string, Folded>,
    readonly opset: number,
  ) {}
  get op(): string {
    return this.node.opType;
  }
  has(i: number): boolean {
    return (this.node.inputs[i] ?? '') !== '';
  }
  in(i: number): TypeShape | undefined {
    const name = this.node.inputs[i];
    return name ? this.shapes.get(name) : undefined;
  }
  shape(i: number): Shape {
    return this.in(i)?.shape ?? null;
  }
  type(i: number): DataType {
    return this.in(i)?.dataType ?? DataType.UNDEFINED;
  }
  /** A folded input whose values are all known. */
  const(i: number): Folded | undefined {
    const f = this.partial(i);
    return f && f.values.every((v) => !Number.isNaN(v)) ? f : undefined;
  }
  /** A folded input, possibly with unknown (NaN) entries: shape vectors. */
  partial(i: number): Folded | undefined {
    const name = this.node.inputs[i];
    return name ? this.consts.get(name) : undefined;
  }
  int(name: string, dflt: number): number;
  int(name: string): number | undefined;
  int(name: string, dflt?: number): number | undefined {
    const a = this.node.attributes[name];
    return a && (a.type === 'int' || a.type === 'float') ? a.value : dflt;
  }
  ints(name: string): number[] | undefined {
    const a = this.node.attributes[name];
    return a && (a.type === 'ints' || a.type === 'floats') ? a.value : undefined;
  }
  str(name: string, dflt: string): string {
    const a = this.node.attributes[name];
    return a && a.type === 'string' ? a.value : dflt;
  }
  fold(i: number, f: Folded): void {
    if (f.values.length <= FOLD_LIMIT) this.folded.set(i, f);
  }
}

const isNum = (d: Dim): d is number => typeof d === 'number';

function same(c: Ctx, i = 0): TypeShape {
  return { dataType: c.type(i), shape: c.shape(i) };
}

function broadcastShapes(shapes: Shape[]): Shape {
  if (shapes.some((s) => s === null)) return null;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let k = 0; k < rank; k++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = s![s!.length - rank + k];
      if (x === undefined || x === 1) continue;
      if (d === 1) d = x;
      // Two different non-1 dims (or a symbol against a number): not knowable statically.
      else if (d !== x) d = null;
    }
    out.push(d);
  }
  return out;
}

function normAxis(a: number, rank: number): number {
  return a < 0 ? a + rank : a;
}

function prod(ds: Dim[]): Dim {
  let p = 1;
  for (const d of ds) {
    if (!isNum(d)) return null;
    p *= d;
  }
  return p;
}

function windowOut(inD: Dim, k: number, stride: number, dil: number, pb: number, pe: number, autoPad: string, ceil: boolean): Dim {
  if (!isNum(inD)) return null;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(inD / stride);
  if (autoPad === 'VALID') pb = pe = 0;
  const span = inD + pb + pe - dil * (k - 1) - 1;
  if (!ceil) return Math.floor(span / stride) + 1;
  let o = Math.ceil(span / stride) + 1;
  // A window may not start inside the end padding only (as in onnxruntime and PyTorch).
  if ((o - 1) * stride >= inD + pb) o--;
  return o;
}

/** Output spatial dims of Conv / pooling. */
function windowed(c: Ctx, x: Shape, kernel: number[] | undefined, ceil: boolean): Dim[] | null {
  if (!x || !kernel) return null;
  const n = kernel.length;
  const strides = c.ints('strides') ?? Array(n).fill(1);
  const dil = c.ints('dilations') ?? Array(n).fill(1);
  const pads = c.ints('pads') ?? Array(2 * n).fill(0);
  const autoPad = c.str('auto_pad', 'NOTSET');
  return kernel.map((k, i) => windowOut(x[2 + i]!, k, strides[i]!, dil[i]!, pads[i]!, pads[n + i]!, autoPad, ceil));
}

function conv(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const w = c.shape(1);
  const kernel = c.ints('kernel_shape') ?? (w && w.every(isNum) ? (w.slice(2) as number[]) : undefined);
  const spatial = windowed(c, x, kernel, false);
  return [{ dataType: c.type(0), shape: x && spatial ? [x[0]!, w ? w[0]! : null, ...spatial] : null }];
}

function convTranspose(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const w = c.shape(1);
  const group = c.int('group', 1);
  const m: Dim = w && isNum(w[1]!) ? w[1]! * group : null;
  if (!x) return [{ dataType: c.type(0), shape: null }];
  const kernel = c.ints('kernel_shape') ?? (w && w.every(isNum) ? (w.slice(2) as number[]) : undefined);
  const n = x.length - 2;
  const outShape = c.ints('output_shape');
  let spatial: Dim[];
  if (outShape) spatial = outShape.slice(-n);
  else if (!kernel) spatial = Array(n).fill(null);
  else {
    const strides = c.ints('strides') ?? Array(n).fill(1);
    const dil = c.ints('dilations') ?? Array(n).fill(1);
    const pads = c.ints('pads') ?? Array(2 * n).fill(0);
    const outPad = c.ints('output_padding') ?? Array(n).fill(0);
    const autoPad = c.str('auto_pad', 'NOTSET');
    spatial = kernel.map((k, i) => {
      const d = x[2 + i]!;
      if (!isNum(d)) return null;
      if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return d * strides[i]!;
      const [pb, pe] = autoPad === 'VALID' ? [0, 0] : [pads[i]!, pads[n + i]!];
      return strides[i]! * (d - 1) + outPad[i]! + (k - 1) * dil[i]! + 1 - pb - pe;
    });
  }
  return [{ dataType: c.type(0), shape: [x[0]!, m, ...spatial] }];
}

function pool(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const spatial = windowed(c, x, c.ints('kernel_shape'), c.int('ceil_mode', 0) === 1);
  const shape = x && spatial ? [x[0]!, x[1]!, ...spatial] : null;
  return [{ dataType: c.type(0), shape }, { dataType: DataType.INT64, shape }];
}

function matmul(c: Ctx): TypeShape[] {
  const a = c.shape(0);
  const b = c.shape(1);
  if (!a || !b) return [{ dataType: c.type(0), shape: null }];
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const batch = broadcastShapes([a2.slice(0, -2), b2.slice(0, -2)]) ?? [];
  const out: Dim[] = [...batch];
  if (a.length > 1) out.push(a2[a2.length - 2]!);
  if (b.length > 1) out.push(b2[b2.length - 1]!);
  return [{ dataType: c.type(0), shape: out }];
}

function gemm(c: Ctx): TypeShape[] {
  const a = c.shape(0);
  const b = c.shape(1);
  const m = a ? (c.int('transA', 0) ? a[1]! : a[0]!) : null;
  const n = b ? (c.int('transB', 0) ? b[0]! : b[1]!) : null;
  return [{ dataType: c.type(0), shape: [m, n] }];
}

/** Elementwise arithmetic on folded constants (numpy broadcasting). */
function foldBinary(a: Folded, b: Folded, f: (x: number, y: number) => number, dataType: DataType): Folded | undefined {
  const shape = broadcastShapes([a.dims, b.dims]) as number[] | null;
  if (!shape) return undefined;
  const n = numel(shape);
  const at = (t: Folded, idx: number[]) => {
    let off = 0;
    const r = t.dims.length;
    for (let k = 0; k < r; k++) {
      const d = t.dims[k]!;
      off = off * d + (d === 1 ? 0 : idx[shape.length - r + k]!);
    }
    return t.values[off]!;
  };
  const values: number[] = [];
  const idx = Array(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    values.push(f(at(a, idx), at(b, idx)));
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]!) break;
      idx[k] = 0;
    }
  }
  return { dataType, dims: shape, values };
}

const INT_TYPES = new Set([DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64]);

function binary(c: Ctx, outType?: DataType): TypeShape[] {
  const shapes = c.node.inputs.map((_, i) => c.shape(i));
  const dataType = outType ?? c.type(0);
  const [a, b] = [c.partial(0), c.partial(1)];
  if (a && b && c.node.inputs.length === 2) {
    const ops: Record<string, (x: number, y: number) => number> = {
      Add: (x, y) => x + y,
      Sub: (x, y) => x - y,
      Mul: (x, y) => x * y,
      Div: (x, y) => (INT_TYPES.has(dataType) ? Math.trunc(x / y) : x / y),
      Equal: (x, y) => Number(x === y),
      Less: (x, y) => Number(x < y),
      Greater: (x, y) => Number(x > y),
      Max: Math.max,
      Min: Math.min,
    };
    const f = ops[c.op];
    if (f) {
      // Unknown entries stay unknown (and keep a symbol when the other side is a neutral 1 or 0).
      const r = foldBinary(a, b, (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : f(x, y)), dataType);
      if (r) c.fold(0, r);
    }
  }
  return [{ dataType, shape: broadcastShapes(shapes) }];
}

function axesInput(c: Ctx, attrUntil: number, inputIndex: number): number[] | undefined | 'dynamic' {
  if (c.opset < attrUntil) return c.ints('axes');
  if (!c.has(inputIndex)) return c.ints('axes');
  const k = c.const(inputIndex);
  return k ? k.values : 'dynamic';
}

function reduce(c: Ctx, axesFromInputSince: number): TypeShape[] {
  const x = c.shape(0);
  const keep = c.int('keepdims', 1) === 1;
  const axes = axesInput(c, axesFromInputSince, 1);
  const dataType = c.op === 'ArgMax' || c.op === 'ArgMin' ? DataType.INT64 : c.type(0);
  if (!x || axes === 'dynamic') return [{ dataType, shape: null }];
  let set: Set<number>;
  if (c.op === 'ArgMax' || c.op === 'ArgMin') set = new Set([normAxis(c.int('axis', 0), x.length)]);
  else if (!axes || axes.length === 0) {
    if (c.int('noop_with_empty_axes', 0) === 1) return [{ dataType, shape: [...x] }];
    set = new Set(x.map((_, i) => i));
  } else set = new Set(axes.map((a) => normAxis(a, x.length)));
  // Fold reductions of small 1-D constants (e.g. ReduceProd of a slice of Shape: a flattened size).
  const k = c.const(0);
  const folds: Record<string, (v: number[]) => number> = {
    ReduceProd: (v) => v.reduce((p, e) => p * e, 1),
    ReduceSum: (v) => v.reduce((p, e) => p + e, 0),
    ReduceMax: (v) => Math.max(...v),
    ReduceMin: (v) => Math.min(...v),
  };
  if (k && k.dims.length === 1 && set.has(0) && folds[c.op] && k.values.length > 0) {
    c.fold(0, { dataType: k.dataType, dims: keep ? [1] : [], values: [folds[c.op]!(k.values)] });
  }
  const out: Dim[] = [];
  x.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return [{ dataType, shape: out }];
}

function reshape(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const folded = c.opset >= 5 ? c.partial(1) : undefined;
  const target: Dim[] | undefined = folded ? dimsOf(folded) : c.ints('shape');
  if (!target) {
    const s = c.shape(1);
    return [{ dataType: c.type(0), shape: s && isNum(s[0]!) ? Array(s[0]).fill(null) : null }];
  }
  const allowZero = c.int('allowzero', 0) === 1;
  const out: Dim[] = target.map((t, i) => (t === 0 && !allowZero ? (x ? x[i] ?? null : null) : t === -1 ? -1 : t));
  const minus = out.indexOf(-1);
  if (minus >= 0) {
    const total = x ? prod(x) : null;
    const rest = prod(out.filter((_, i) => i !== minus));
    if (isNum(total) && isNum(rest) && rest !== 0) out[minus] = total / rest;
    else if (x && out.filter((_, i) => i !== minus).every((d) => d === null || isNum(d) || x.includes(d))) {
      // Symbolic: the -1 dim is what is left of x's dims after removing the others (e.g. [N, 384, 12, 16] -> [N, 384, -1]).
      const rest2 = [...x];
      let ok = true;
      for (const d of out.filter((_, i) => i !== minus)) {
        const j = rest2.indexOf(d);
        if (j >= 0) rest2.splice(j, 1);
        else ok = false;
      }
      out[minus] = ok ? prod(rest2) : null;
    } else out[minus] = null;
  }
  const k = c.partial(0);
  if (k && out.every(isNum)) c.fold(0, { ...k, dims: out as number[] });
  return [{ dataType: c.type(0), shape: out }];
}

function sliceDim(d: Dim, start: number, end: number, step: number): Dim {
  if (!isNum(d)) return null;
  if (step > 0) {
    const s = Math.min(Math.max(start < 0 ? start + d : start, 0), d);
    const e = Math.min(Math.max(end < 0 ? end + d : end, 0), d);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  const s = Math.min(Math.max(start < 0 ? start + d : start, 0), d - 1);
  const e = Math.min(Math.max(end < 0 ? end + d : end, -1), d - 1);
  return Math.max(0, Math.ceil((s - e) / -step));
}

function slice(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  let starts: number[] | undefined;
  let ends: number[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (c.opset < 10) {
    starts = c.ints('starts');
    ends = c.ints('ends');
    axes = c.ints('axes');
  } else {
    starts = c.const(1)?.values;
    ends = c.const(2)?.values;
    if (c.has(3)) axes = c.const(3)?.values ?? undefined;
    if (c.has(4)) steps = c.const(4)?.values ?? undefined;
    if ((c.has(3) && !axes) || (c.has(4) && !steps)) return [{ dataType: c.type(0), shape: x ? Array(x.length).fill(null) : null }];
  }
  if (!x || !starts || !ends) return [{ dataType: c.type(0), shape: x ? Array(x.length).fill(null) : null }];
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, x.length));
  const out = [...x];
  ax.forEach((a, i) => (out[a] = sliceDim(x[a]!, starts![i]!, ends![i]!, steps?.[i] ?? 1)));
  const k = c.partial(0);
  if (k && k.dims.length === 1 && ax.length === 1) {
    const d = k.dims[0]!;
    const step = steps?.[0] ?? 1;
    const idx: number[] = [];
    if (step > 0) {
      const s = Math.min(Math.max(starts[0]! < 0 ? starts[0]! + d : starts[0]!, 0), d);
      const e = Math.min(Math.max(ends[0]! < 0 ? ends[0]! + d : ends[0]!, 0), d);
      for (let i = s; i < e; i += step) idx.push(i);
    } else {
      const s = Math.min(Math.max(starts[0]! < 0 ? starts[0]! + d : starts[0]!, 0), d - 1);
      const e = Math.min(Math.max(ends[0]! < 0 ? ends[0]! + d : ends[0]!, -1), d - 1);
      for (let i = s; i > e; i += step) idx.push(i);
    }
    c.fold(0, pick(k, idx, [idx.length]));
  }
  return [{ dataType: c.type(0), shape: out }];
}

function concat(c: Ctx): TypeShape[] {
  const shapes = c.node.inputs.map((_, i) => c.shape(i));
  const dataType = c.type(0);
  if (shapes.some((s) => !s)) {
    const known = shapes.find((s) => s);
    return [{ dataType, shape: known ? Array(known.length).fill(null) : null }];
  }
  const rank = shapes[0]!.length;
  const axis = normAxis(c.int('axis', 0), rank);
  const out: Dim[] = [];
  for (let k = 0; k < rank; k++) {
    if (k === axis) out.push(prod(shapes.map((s) => s![k]!)) === null ? null : shapes.reduce((s, x) => (s as number) + (x![k] as number), 0));
    else out.push(shapes.map((s) => s![k]!).find(isNum) ?? shapes[0]![k]!);
  }
  const ks = c.node.inputs.map((_, i) => c.partial(i));
  if (rank === 1 && ks.every((k) => k)) {
    const f: Folded = { dataType, dims: [ks.reduce((s, k) => s + k!.values.length, 0)], values: ks.flatMap((k) => k!.values) };
    if (ks.some((k) => k!.symbols)) f.symbols = ks.flatMap((k) => k!.symbols ?? k!.values.map(() => null));
    c.fold(0, f);
  }
  return [{ dataType, shape: out }];
}

function split(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const n = c.node.outputs.length;
  const dataType = c.type(0);
  if (!x) return Array(n).fill({ dataType, shape: null });
  const axis = normAxis(c.int('axis', 0), x.length);
  let sizes: number[] | undefined = c.opset >= 13 ? (c.has(1) ? c.const(1)?.values : undefined) : c.ints('split');
  const d = x[axis]!;
  if (!sizes && !(c.opset >= 13 && c.has(1)) && isNum(d)) {
    const parts = c.int('num_outputs') ?? n;
    const chunk = Math.ceil(d / parts);
    sizes = Array.from({ length: n }, (_, i) => (i < n - 1 ? chunk : d - chunk * (n - 1)));
  }
  return Array.from({ length: n }, (_, i) => {
    const s = [...x];
    s[axis] = sizes ? sizes[i] ?? null : null;
    return { dataType, shape: s };
  });
}

function transpose(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  if (!x) return [{ dataType: c.type(0), shape: null }];
  const perm = c.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
  return [{ dataType: c.type(0), shape: perm.map((p) => x[p]!) }];
}

function squeeze(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const axes = axesInput(c, 13, 1);
  if (!x || axes === 'dynamic') return [{ dataType: c.type(0), shape: null }];
  const set = axes ? new Set(axes.map((a) => normAxis(a, x.length))) : new Set(x.map((d, i) => (d === 1 ? i : -1)));
  if (!axes && x.some((d) => !isNum(d))) return [{ dataType: c.type(0), shape: null }];
  const out = x.filter((_, i) => !set.has(i));
  const k = c.partial(0);
  if (k) c.fold(0, { ...k, dims: out as number[] });
  return [{ dataType: c.type(0), shape: out }];
}

function unsqueeze(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const axes = axesInput(c, 13, 1);
  if (!x || axes === 'dynamic' || !axes) return [{ dataType: c.type(0), shape: null }];
  const rank = x.length + axes.length;
  const set = new Set(axes.map((a) => normAxis(a, rank)));
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x[j++]!);
  const k = c.partial(0);
  if (k) c.fold(0, { ...k, dims: out as number[] });
  return [{ dataType: c.type(0), shape: out }];
}

function flatten(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  if (!x) return [{ dataType: c.type(0), shape: null }];
  const axis = normAxis(c.int('axis', 1), x.length);
  return [{ dataType: c.type(0), shape: [prod(x.slice(0, axis)), prod(x.slice(axis))] }];
}

function resize(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const dataType = c.type(0);
  if (!x) return [{ dataType, shape: null }];
  let scales: number[] | undefined;
  let sizes: number[] | undefined;
  if (c.op === 'Upsample') scales = c.opset >= 9 ? c.const(1)?.values : c.ints('scales');
  else if (c.opset < 11) scales = c.const(1)?.values;
  else {
    if (c.has(3)) {
      const f = c.partial(3);
      if (f && !f.values.every(Number.isFinite)) {
        // Partly known sizes (e.g. [N, C, 384, 512]): take what is known.
        const ds = dimsOf(f);
        const axes0 = (c.ints('axes') ?? x.map((_, i) => i)).map((a) => normAxis(a, x.length));
        const out0 = [...x];
        axes0.forEach((a, i) => (out0[a] = ds[i] ?? null));
        return [{ dataType, shape: out0 }];
      }
      sizes = f?.values;
    }
    if (c.has(2)) {
      const s = c.const(2);
      if (s && s.values.length > 0) scales = s.values;
    }
  }
  const axes = (c.ints('axes') ?? x.map((_, i) => i)).map((a) => normAxis(a, x.length));
  const out = [...x];
  if (sizes && sizes.length === axes.length) {
    const policy = c.str('keep_aspect_ratio_policy', 'stretch');
    if (policy !== 'stretch') {
      if (!axes.every((a) => isNum(x[a]!))) return [{ dataType, shape: x.map(() => null) }];
      const ratios = axes.map((a, i) => sizes![i]! / (x[a] as number));
      const r = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
      axes.forEach((a) => (out[a] = Math.round(r * (x[a] as number))));
    } else axes.forEach((a, i) => (out[a] = sizes![i]!));
  } else if (scales && scales.length === axes.length) {
    axes.forEach((a, i) => {
      const d = x[a]!;
      out[a] = isNum(d) ? Math.floor(d * scales![i]! + 1e-9) : scales![i] === 1 ? d : null;
    });
  } else return [{ dataType, shape: x.map(() => null) }];
  return [{ dataType, shape: out }];
}

function pad(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const dataType = c.type(0);
  if (!x) return [{ dataType, shape: null }];
  const pads = c.opset >= 11 ? c.const(1)?.values : c.ints('pads') ?? c.ints('paddings');
  if (!pads) return [{ dataType, shape: x.map(() => null) }];
  const axes = (c.opset >= 18 && c.has(3) ? c.const(3)?.values : undefined) ?? x.map((_, i) => i);
  const n = axes.length;
  const out = [...x];
  axes.forEach((a0, i) => {
    const a = normAxis(a0, x.length);
    const d = x[a]!;
    out[a] = isNum(d) ? d + pads[i]! + pads[n + i]! : null;
  });
  return [{ dataType, shape: out }];
}

function gather(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const idx = c.shape(1);
  const dataType = c.type(0);
  if (!x || !idx) return [{ dataType, shape: null }];
  const axis = normAxis(c.int('axis', 0), x.length);
  const out = [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)];
  const k = c.partial(0);
  const i = c.const(1);
  if (k && i && k.dims.length === 1) {
    const d = k.dims[0]!;
    c.fold(0, pick(k, i.values.map((j) => (j < 0 ? j + d : j)), [...i.dims]));
  }
  return [{ dataType, shape: out }];
}

function shapeOp(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  if (!x) return [{ dataType: DataType.INT64, shape: [null] }];
  const r = x.length;
  const clampEnd = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clampEnd(c.int('start', 0));
  const end = clampEnd(c.int('end', r));
  const dims = x.slice(start, Math.max(start, end));
  const f: Folded = { dataType: DataType.INT64, dims: [dims.length], values: dims.map((d) => (isNum(d) ? d : NaN)) };
  if (!dims.every(isNum)) f.symbols = dims.map((d) => (typeof d === 'string' ? d : null));
  c.fold(0, f);
  return [{ dataType: DataType.INT64, shape: [dims.length] }];
}

function constantOp(c: Ctx): TypeShape[] {
  const a = c.node.attributes;
  const v = a.value ?? a.value_float ?? a.value_floats ?? a.value_int ?? a.value_ints;
  if (!v) return [];
  if (v.type === 'tensor') {
    const f = foldTensor(v.value);
    if (f) c.fold(0, f);
    return [{ dataType: v.value.dataType, shape: [...v.value.dims] }];
  }
  const list = v.type === 'floats' || v.type === 'ints';
  const dataType = v.type === 'float' || v.type === 'floats' ? DataType.FLOAT : DataType.INT64;
  const values = list ? (v.value as number[]) : [v.value as number];
  const dims = list ? [values.length] : [];
  c.fold(0, { dataType, dims, values });
  return [{ dataType, shape: dims }];
}

function constantOfShape(c: Ctx): TypeShape[] {
  const s = c.const(0)?.values;
  const v = c.node.attributes.value;
  const dataType = v && v.type === 'tensor' ? v.value.dataType : DataType.FLOAT;
  const p = c.partial(0);
  if (!s && p) return [{ dataType, shape: dimsOf(p) }];
  if (!s) {
    const sh = c.shape(0);
    return [{ dataType, shape: sh && isNum(sh[0]!) ? Array(sh[0]).fill(null) : null }];
  }
  if (v && v.type === 'tensor' && numel(s) <= FOLD_LIMIT) {
    const f = foldTensor(v.value);
    if (f) c.fold(0, { dataType, dims: [...s], values: Array(numel(s)).fill(f.values[0] ?? 0) });
  }
  return [{ dataType, shape: [...s] }];
}

function castOp(c: Ctx): TypeShape[] {
  const to = c.int('to', DataType.UNDEFINED) as DataType;
  const k = c.partial(0);
  if (k) c.fold(0, { ...k, dataType: to, values: INT_TYPES.has(to) ? k.values.map(Math.trunc) : k.values });
  return [{ dataType: to, shape: c.shape(0) }];
}

function expand(c: Ctx): TypeShape[] {
  const p = c.partial(1);
  if (!p) return [{ dataType: c.type(0), shape: null }];
  const x = c.shape(0);
  const s = dimsOf(p);
  if (!x) return [{ dataType: c.type(0), shape: s.map(() => null) }];
  // Expand broadcasts: a 1 in the target keeps the input's dim; a symbolic target dim against a 1 stays symbolic.
  const rank = Math.max(x.length, s.length);
  const out: Dim[] = [];
  for (let k = 0; k < rank; k++) {
    const a = x[x.length - rank + k] ?? 1;
    const b = s[s.length - rank + k] ?? 1;
    out.push(b === 1 ? a : a === 1 ? b : a === b ? a : isNum(a) && b === null ? a : null);
  }
  const k = c.partial(0);
  if (k && out.every(isNum) && k.values.length === 1 && numel(out as number[]) <= FOLD_LIMIT) {
    c.fold(0, { dataType: k.dataType, dims: out as number[], values: Array(numel(out as number[])).fill(k.values[0]) });
  }
  return [{ dataType: c.type(0), shape: out }];
}

function where(c: Ctx): TypeShape[] {
  const [k, a, b] = [c.partial(0), c.partial(1), c.partial(2)];
  if (k && a && b) {
    // Fold Where(cond, a, b) on small vectors (torch's Where(Equal(shape, -1), 1, shape) in Expand targets).
    const ab = foldBinary(a, b, (x, y) => x * 0 + y * 0, a.dataType);
    if (ab) {
      const sel = foldBinary(k, ab, (x) => x, DataType.BOOL);
      const av = foldBinary(a, ab, (x) => x, a.dataType);
      const bv = foldBinary(b, ab, (x) => x, b.dataType);
      const shape = broadcastShapes([k.dims, a.dims, b.dims]) as number[] | null;
      if (sel && av && bv && shape && numel(shape) === sel.values.length && sel.values.length === av.values.length) {
        const values = sel.values.map((cond, i) => (Number.isNaN(cond) ? NaN : cond ? av.values[i]! : bv.values[i]!));
        const f: Folded = { dataType: a.dataType, dims: shape, values };
        if (a.symbols || b.symbols) f.symbols = sel.values.map((cond, i) => (cond ? a.symbols?.[i] : b.symbols?.[i]) ?? null);
        c.fold(0, f);
      }
    }
  }
  return [{ dataType: c.type(1), shape: broadcastShapes([c.shape(0), c.shape(1), c.shape(2)]) }];
}

function layerNorm(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const dataType = c.type(0);
  const stash = c.int('stash_type', DataType.FLOAT) as DataType;
  if (!x) return [{ dataType, shape: null }, { dataType: stash, shape: null }, { dataType: stash, shape: null }];
  const axis = normAxis(c.int('axis', -1), x.length);
  const reduced = x.map((d, i) => (i < axis ? d : 1));
  return [{ dataType, shape: [...x] }, { dataType: stash, shape: reduced }, { dataType: stash, shape: reduced }];
}

function batchNorm(c: Ctx): TypeShape[] {
  const x = same(c);
  const ch = x.shape ? x.shape[1] ?? null : null;
  return [x, { dataType: c.type(3), shape: [ch] }, { dataType: c.type(4), shape: [ch] }];
}

function quantize(c: Ctx): TypeShape[] {
  const outDt = c.int('output_dtype', 0) as DataType;
  const dataType = outDt || (c.has(2) ? c.type(2) : DataType.UINT8);
  return [{ dataType, shape: c.shape(0) }];
}

function dynamicQuantize(c: Ctx): TypeShape[] {
  return [
    { dataType: DataType.UINT8, shape: c.shape(0) },
    { dataType: DataType.FLOAT, shape: [] },
    { dataType: DataType.UINT8, shape: [] },
  ];
}

function range(c: Ctx): TypeShape[] {
  const [s, l, d] = [c.const(0), c.const(1), c.const(2)];
  if (s && l && d) {
    const n = Math.max(Math.ceil((l.values[0]! - s.values[0]!) / d.values[0]!), 0);
    if (n <= FOLD_LIMIT) c.fold(0, { dataType: c.type(0), dims: [n], values: Array.from({ length: n }, (_, i) => s.values[0]! + i * d.values[0]!) });
    return [{ dataType: c.type(0), shape: [n] }];
  }
  return [{ dataType: c.type(0), shape: [null] }];
}

function tile(c: Ctx): TypeShape[] {
  const x = c.shape(0);
  const r = c.const(1)?.values;
  if (!x || !r) return [{ dataType: c.type(0), shape: x ? x.map(() => null) : null }];
  return [{ dataType: c.type(0), shape: x.map((d, i) => (isNum(d) ? d * r[i]! : r[i] === 1 ? d : null)) }];
}

function depthSpace(c: Ctx, toSpace: boolean): TypeShape[] {
  const x = c.shape(0);
  const b = c.int('blocksize', 1);
  if (!x || x.length !== 4) return [{ dataType: c.type(0), shape: null }];
  const [n, ch, h, w] = x;
  const mul = (d: Dim | undefined, f: number): Dim => (isNum(d ?? null) ? (d as number) * f : null);
  return [{ dataType: c.type(0), shape: toSpace ? [n!, mul(ch, 1 / (b * b)), mul(h, b), mul(w, b)] : [n!, mul(ch, b * b), mul(h, 1 / b), mul(w, 1 / b)] }];
}

const UNARY = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Gelu', 'Erf', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Clip', 'Identity', 'Softmax',
  'LogSoftmax', 'HardSigmoid', 'HardSwish', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Reciprocal', 'Floor', 'Ceil', 'Round',
  'Sin', 'Cos', 'Sign', 'Mish', 'PRelu', 'InstanceNormalization', 'LRN', 'ScatterElements', 'ScatterND', 'ThresholdedRelu',
  'Shrink', 'CumSum', 'Trilu', 'IsNaN', 'IsInf', 'Not', 'GroupNormalization', 'BitShift',
]);

function infer(c: Ctx): (TypeShape | undefined)[] {
  const op = c.node.domain === '' || c.node.domain === 'ai.onnx' ? c.op : `${c.node.domain}:${c.op}`;
  if (UNARY.has(op)) {
    const r = same(c);
    if (op === 'IsNaN' || op === 'IsInf' || op === 'Not') r.dataType = DataType.BOOL;
    if (op === 'Identity') {
      const k = c.partial(0);
      if (k) c.fold(0, k);
    }
    return [r];
  }
  switch (op) {
    case 'Cast':
      return castOp(c);
    case 'Dropout':
      return [same(c), { dataType: DataType.BOOL, shape: c.shape(0) }];
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Pow':
    case 'Mod':
    case 'Max':
    case 'Min':
    case 'Sum':
    case 'Mean':
      return binary(c);
    case 'Equal':
    case 'Greater':
    case 'Less':
    case 'GreaterOrEqual':
    case 'LessOrEqual':
    case 'And':
    case 'Or':
    case 'Xor':
      return binary(c, DataType.BOOL);
    case 'Where':
      return where(c);
    case 'Conv':
    case 'ConvInteger':
    case 'QLinearConv':
      if (op === 'QLinearConv') {
        const x = c.shape(0);
        const w = c.shape(3);
        const kernel = c.ints('kernel_shape') ?? (w && w.every(isNum) ? (w.slice(2) as number[]) : undefined);
        const sp = windowed(c, x, kernel, false);
        return [{ dataType: c.type(7), shape: x && sp ? [x[0]!, w ? w[0]! : null, ...sp] : null }];
      }
      return op === 'ConvInteger' ? [{ ...conv(c)[0]!, dataType: DataType.INT32 }] : conv(c);
    case 'ConvTranspose':
      return convTranspose(c);
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool':
      return pool(c);
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool': {
      const x = c.shape(0);
      return [{ dataType: c.type(0), shape: x ? [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] : null }];
    }
    case 'MatMul':
      return matmul(c);
    case 'MatMulInteger':
      return [{ ...matmul(c)[0]!, dataType: DataType.INT32 }];
    case 'Gemm':
      return gemm(c);
    case 'BatchNormalization':
      return batchNorm(c);
    case 'LayerNormalization':
      return layerNorm(c);
    case 'Concat':
      return concat(c);
    case 'Split':
      return split(c);
    case 'Slice':
      return slice(c);
    case 'Reshape':
      return reshape(c);
    case 'Transpose':
      return transpose(c);
    case 'Flatten':
      return flatten(c);
    case 'Squeeze':
      return squeeze(c);
    case 'Unsqueeze':
      return unsqueeze(c);
    case 'Resize':
    case 'Upsample':
      return resize(c);
    case 'ReduceSum':
      return reduce(c, 13);
    case 'ReduceMean':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceProd':
    case 'ReduceL1':
    case 'ReduceL2':
    case 'ReduceSumSquare':
    case 'ReduceLogSumExp':
    case 'ReduceLogSum':
      return reduce(c, 18);
    case 'ArgMax':
    case 'ArgMin':
      return reduce(c, Infinity);
    case 'QuantizeLinear':
      return quantize(c);
    case 'DequantizeLinear':
      return [{ dataType: c.type(1), shape: c.shape(0) }];
    case 'DynamicQuantizeLinear':
      return dynamicQuantize(c);
    case 'Shape':
      return shapeOp(c);
    case 'Size':
      return [{ dataType: DataType.INT64, shape: [] }];
    case 'Gather':
      return gather(c);
    case 'GatherElements':
      return [{ dataType: c.type(0), shape: c.shape(1) }];
    case 'Constant':
      return constantOp(c);
    case 'ConstantOfShape':
      return constantOfShape(c);
    case 'Expand':
      return expand(c);
    case 'Pad':
      return pad(c);
    case 'Range':
      return range(c);
    case 'Tile':
      return tile(c);
    case 'DepthToSpace':
      return depthSpace(c, true);
    case 'SpaceToDepth':
      return depthSpace(c, false);
    case 'Einsum':
    default:
      return [];
  }
}
