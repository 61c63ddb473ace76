/**
 * The node emitter gradient rules write through.
 *
 * Rules only ever append nodes and constants to the backward graph, so this is
 * deliberately smaller than the general `GraphBuilder`: attributes are given as
 * explicit `Attribute` objects (via `A.int`, `A.ints`, ...) because a rule must
 * never let a float attribute be guessed as an int from a value like `1`.
 */
import { DataType, type Attribute, type Initializer, type Node } from '../../onnx/ir.js';

/** Explicit attribute constructors (no guessing int vs float). */
export const A = {
  int: (value: number): Attribute => ({ type: 'int', value }),
  ints: (value: number[]): Attribute => ({ type: 'ints', value }),
  float: (value: number): Attribute => ({ type: 'float', value }),
  floats: (value: number[]): Attribute => ({ type: 'floats', value }),
  str: (value: string): Attribute => ({ type: 'string', value }),
  tensor: (dims: number[], values: Float32Array): Attribute => ({
    type: 'tensor',
    value: { dataType: DataType.FLOAT, dims, values },
  }),
};

/** Choices between equivalent backward formulations (all exact; they differ in speed and memory). */
export interface GradOptions {
  /**
   * Conv weight gradient (all exact; they differ in speed and memory, see reports/engine):
   * 'conv' = one Conv over transposed tensors with stride and dilation swapped (any group);
   * 'offsets' = one strided Slice + batched MatMul per kernel offset (group-1 2-D convs; one input-sized
   * slice alive at a time); 'matmul' = all kh*kw slices stacked into patches and one MatMul (group-1 2-D
   * convs whose patches fit `patchBudgetBytes`, else 'conv'); 'auto' (default) = 'offsets' where it
   * applies, else 'conv'.
   */
  convWeightGrad?: 'auto' | 'conv' | 'matmul' | 'offsets';
  /** Largest patch tensor the 'matmul' weight gradient may create (default 256 MiB). */
  patchBudgetBytes?: number;
  /**
   * Conv input gradient: 'auto' (default) = a Conv with the flipped kernel for stride-1 2-D convs (faster in
   * onnxruntime) and ConvTranspose otherwise; 'convtranspose' = always ConvTranspose.
   */
  convInputGrad?: 'auto' | 'convtranspose';
}

/**
 * Collects backward nodes and constant initializers with names that cannot
 * clash with the forward graph (`used` holds every name already taken).
 */
export class GradEmitter {
  readonly nodes: Node[] = [];
  readonly constants: Initializer[] = [];
  private counter = 0;
  /** Constants are shared by value so that e.g. the scalar 0 is emitted once. */
  private constCache = new Map<string, string>();

  constructor(
    private readonly used: Set<string>,
    /** The model's default-domain opset: decides e.g. whether ReduceMean takes axes as an input (18+). */
    public readonly opset: number,
    /** Prefix for the names of the nodes being emitted (the forward node's name). */
    public scope = 'grad',
    /** Formulation choices, read by the rules. */
    public readonly options: GradOptions = {},
  ) {}

  /** A fresh value name starting with `base`. */
  fresh(base: string): string {
    let name: string;
    do name = `${base}__${this.counter++}`;
    while (this.used.has(name));
    this.used.add(name);
    return name;
  }

  /** Emit one node with a single output; returns the output's name. */
  op(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}): string {
    return this.opN(opType, inputs, 1, attrs)[0]!;
  }

  /** Emit one node with `n` outputs; returns their names. */
  opN(opType: string, inputs: string[], n: number, attrs: Record<string, Attribute> = {}): string[] {
    const outputs = Array.from({ length: n }, () => this.fresh(`${this.scope}/${opType}`));
    this.nodes.push({
      name: this.fresh(`${this.scope}/${opType}_node`),
      opType,
      domain: '',
      inputs,
      outputs,
      attributes: attrs,
    });
    return outputs;
  }

  private constant(key: string, make: (name: string) => Initializer): string {
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('grad_const');
    this.constants.push(make(name));
    this.constCache.set(key, name);
    return name;
  }

  /** A constant int64 tensor (shapes, axes, split sizes); 1-D unless `dims` says otherwise. */
  i64(values: readonly number[], dims: number[] = [values.length]): string {
    return this.constant(`i64:${dims.join(',')}:${values.join(',')}`, (name) => ({
      name,
      dataType: DataType.INT64,
      dims,
      values: BigInt64Array.from(values, (v) => BigInt(v)),
    }));
  }

  /** A constant float32 tensor. Small constants are shared; large ones are not hashed. */
  f32(values: ArrayLike<number>, dims: number[]): string {
    const arr = Float32Array.from(values as ArrayLike<number>);
    const make = (name: string): Initializer => ({ name, dataType: DataType.FLOAT, dims, values: arr });
    if (arr.length > 64) {
      const name = this.fresh('grad_const');
      this.constants.push(make(name));
      return name;
    }
    return this.constant(`f32:${dims.join(',')}:${Array.from(arr).join(',')}`, make);
  }

  /** A float32 scalar constant (shape []), broadcastable against anything. */
  scalar(v: number): string {
    return this.f32([v], []);
  }

  /** ReduceMean over static axes in the form the opset wants (attribute up to 17, input from 18). */
  reduceMean(x: string, axes: number[], keepdims: boolean): string {
    if (this.opset >= 18) return this.op('ReduceMean', [x, this.i64(axes)], { keepdims: A.int(keepdims ? 1 : 0) });
    return this.op('ReduceMean', [x], { axes: A.ints(axes), keepdims: A.int(keepdims ? 1 : 0) });
  }

  /** zeros of a static shape, made at run time (no large initializer in the file). */
  zeros(dims: number[]): string {
    return this.op('ConstantOfShape', [this.i64(dims)], { value: A.tensor([1], new Float32Array([0])) });
  }
}
