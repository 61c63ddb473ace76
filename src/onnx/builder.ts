/**
 * Build ONNX graphs in a few readable lines, for students, rewrites, QDQ insertion
 * and backward graphs:
 *
 * ```ts
 * const b = new GraphBuilder('tiny-seg');
 * const x = b.input('image', DataType.FLOAT, [1, 3, 32, 32]);
 * const w = b.initializer('conv1.weight', floatTensor([4, 3, 3, 3], values));
 * const y = b.op('Conv', [x, w], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
 * b.output(b.op('Sigmoid', [y]), 'probs');
 * const model = b.build({ opset: 17, metadata: { 'lesionfuse.input_size': '32x32' } });
 * ```
 *
 * Attribute values are plain JS: an integer number becomes INT, a non-integer FLOAT,
 * number[] INTS (FLOATS if any is not an integer), string STRING, string[] STRINGS,
 * a TensorData TENSOR, a Graph GRAPH; an `Attribute` object passes as-is. Names ONNX
 * defines as float (FLOAT_ATTRIBUTE_NAMES: alpha, beta, epsilon...) are always
 * stored as float, so `{ epsilon: 1 }` is right; `floatAttr`/`floatsAttr` force it elsewhere.
 */
import { DataType, type Attribute, type Dim, type Graph, type Initializer, type Model, type Node, type OpsetImport, type TensorData, type ValueInfo } from './ir.js';
import { NameGen, producerMap, replaceAllUses } from './graph.js';
import { inferShapes } from './shape.js';
import { LesionFuseError } from '../util/errors.js';

/** A plain JS attribute value (see the module comment for how each is stored). */
export type AttrValue = number | readonly number[] | string | readonly string[] | TensorData | Graph | Attribute;
export type Attrs = Record<string, AttrValue | undefined>;

/**
 * Attribute names that are FLOAT / FLOATS in the ONNX ops the SDK uses, so an
 * integer-looking value (`alpha: 1`) is still stored as float:
 * LeakyRelu/Elu/Selu/Celu/HardSigmoid/ThresholdedRelu alpha, Gemm alpha/beta,
 * HardSigmoid beta, Selu gamma, LRN alpha/beta/bias, Shrink bias/lambd,
 * Batch/Layer/Instance/GroupNormalization epsilon, BatchNormalization momentum,
 * Dropout ratio (opset < 12), Clip min/max (opset < 11), Pad value (opset < 11),
 * Resize/Upsample cubic_coeff_a, extrapolation_value, scales (opset < 9),
 * RoiAlign spatial_scale, Constant value_float(s), ImageScaler scale.
 */
export const FLOAT_ATTRIBUTE_NAMES: ReadonlySet<string> = new Set([
  'alpha',
  'beta',
  'gamma',
  'bias',
  'lambd',
  'epsilon',
  'momentum',
  'ratio',
  'min',
  'max',
  'value',
  'cubic_coeff_a',
  'extrapolation_value',
  'scales',
  'spatial_scale',
  'value_float',
  'value_floats',
  'scale',
]);

/** Force a FLOAT attribute (e.g. `floatAttr(1)` for an op attribute not in FLOAT_ATTRIBUTE_NAMES). */
export function floatAttr(value: number): Attribute {
  return { type: 'float', value };
}
/** Force a FLOATS attribute. */
export function floatsAttr(value: readonly number[]): Attribute {
  return { type: 'floats', value: [...value] };
}
/** Force an INT attribute. */
export function intAttr(value: number): Attribute {
  return { type: 'int', value };
}
/** Force an INTS attribute (e.g. an empty list, which would otherwise be ambiguous). */
export function intsAttr(value: readonly number[]): Attribute {
  return { type: 'ints', value: [...value] };
}

function isAttribute(v: unknown): v is Attribute {
  return typeof v === 'object' && v !== null && 'type' in v && 'value' in v && typeof (v as { type: unknown }).type === 'string';
}
function isTensorData(v: unknown): v is TensorData {
  return typeof v === 'object' && v !== null && 'dataType' in v && 'dims' in v && 'values' in v;
}
function isGraph(v: unknown): v is Graph {
  return typeof v === 'object' && v !== null && 'nodes' in v && 'initializers' in v && 'outputs' in v;
}

/** Convert one plain attribute value to an `Attribute`, using the name to keep float attributes float. */
export function toAttribute(name: string, value: AttrValue): Attribute {
  if (isAttribute(value)) return value;
  const forceFloat = FLOAT_ATTRIBUTE_NAMES.has(name);
  if (typeof value === 'number') {
    if (!Number.isFinite(value) && !forceFloat) return { type: 'float', value };
    return forceFloat || !Number.isInteger(value) ? { type: 'float', value } : { type: 'int', value };
  }
  if (typeof value === 'string') return { type: 'string', value };
  if (isTensorData(value)) return { type: 'tensor', value };
  if (isGraph(value)) return { type: 'graph', value };
  if (Array.isArray(value)) {
    if (value.length === 0) {
      throw new LesionFuseError(`attribute '${name}': an empty list is ambiguous; use intsAttr([]) or floatsAttr([])`);
    }
    if (value.every((x) => typeof x === 'string')) return { type: 'strings', value: [...(value as string[])] };
    if (value.every((x) => typeof x === 'number')) {
      const nums = value as number[];
      return forceFloat || nums.some((x) => !Number.isInteger(x)) ? { type: 'floats', value: [...nums] } : { type: 'ints', value: [...nums] };
    }
  }
  throw new LesionFuseError(`attribute '${name}': cannot store ${JSON.stringify(value)} as an ONNX attribute`);
}

/** Convert a plain attribute object (entries with `undefined` are skipped). */
export function toAttributes(attrs: Attrs = {}): Record<string, Attribute> {
  const out: Record<string, Attribute> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) out[k] = toAttribute(k, v);
  return out;
}

export interface NodeOptions {
  /** Node name (default: generated by the builder, '' from makeNode). */
  name?: string;
  /** Operator domain, '' = the default ONNX domain (e.g. 'com.microsoft'). */
  domain?: string;
  docString?: string;
}

/** A node from plain values (like onnx.helper.make_node). */
export function makeNode(opType: string, inputs: readonly string[], outputs: readonly string[], attrs: Attrs = {}, opts: NodeOptions = {}): Node {
  const n: Node = { name: opts.name ?? '', opType, domain: opts.domain ?? '', inputs: [...inputs], outputs: [...outputs], attributes: toAttributes(attrs) };
  if (opts.docString !== undefined) n.docString = opts.docString;
  return n;
}

/** A tensor value's type and shape (`null` shape = unknown rank; a string dim = symbolic, null dim = unknown). */
export function makeValueInfo(name: string, dataType: DataType, shape: readonly Dim[] | null): ValueInfo {
  return { name, dataType, shape: shape ? [...shape] : null };
}

/** A graph from its parts (like onnx.helper.make_graph). */
export function makeGraph(
  name: string,
  nodes: Node[],
  inputs: ValueInfo[],
  outputs: ValueInfo[],
  initializers: Initializer[] = [],
  valueInfo: ValueInfo[] = [],
): Graph {
  return { name, nodes, inputs, outputs, initializers, valueInfo };
}

/** The IR version ONNX pairs with each default-domain opset (ir_version must be new enough for the opset). */
export function irVersionForOpset(opset: number): number {
  if (opset >= 23) return 11;
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset >= 11) return 6;
  if (opset >= 10) return 5;
  if (opset >= 9) return 4;
  return 3;
}

export interface ModelOptions {
  /** Default-domain opset (default 17, what the SDK's graphs and the teacher export use). */
  opset?: number;
  /** Other opset imports (e.g. `{ domain: 'com.microsoft', version: 1 }`). */
  extraOpsets?: OpsetImport[];
  /** Default: the IR version ONNX pairs with `opset` (8 for opset 17). */
  irVersion?: number;
  /** Default 'lesionfuse'. */
  producerName?: string;
  /** Default ''. */
  producerVersion?: string;
  /** metadata_props entries (e.g. from segmentationMetadataProps). */
  metadata?: Record<string, string>;
  docString?: string;
}

/** A model around a graph (like onnx.helper.make_model). */
export function makeModel(graph: Graph, opts: ModelOptions = {}): Model {
  const opset = opts.opset ?? 17;
  return {
    irVersion: opts.irVersion ?? irVersionForOpset(opset),
    opsetImports: [{ domain: '', version: opset }, ...(opts.extraOpsets ?? [])],
    producerName: opts.producerName ?? 'lesionfuse',
    producerVersion: opts.producerVersion ?? '',
    domain: '',
    modelVersion: 0,
    docString: opts.docString ?? '',
    graph,
    metadata: { ...(opts.metadata ?? {}) },
  };
}

export interface OutputType {
  dataType?: DataType;
  shape?: Dim[] | null;
}

/**
 * A fluent builder over one graph. `new GraphBuilder(name)` starts an empty graph;
 * `GraphBuilder.from(model)` edits an existing model's graph in place (new names
 * never collide with existing ones).
 */
export class GraphBuilder {
  readonly graph: Graph;
  /** Value names (ONNX keeps them apart from node names). */
  readonly names: NameGen;
  /** Node names. */
  readonly nodeNames: NameGen;
  private readonly model?: Model;
  private readonly pendingOutputs = new Set<string>();

  constructor(name = 'graph') {
    this.graph = makeGraph(name, [], [], []);
    this.names = new NameGen();
    this.nodeNames = new NameGen();
  }

  /** A builder that adds to an existing model (or graph), editing it in place. */
  static from(source: Model | Graph): GraphBuilder {
    const isModel = 'graph' in source && 'opsetImports' in source;
    const b = Object.create(GraphBuilder.prototype) as GraphBuilder;
    const graph = isModel ? (source as Model).graph : (source as Graph);
    Object.assign(b, {
      graph,
      names: new NameGen(graph, 'values'),
      nodeNames: new NameGen(graph, 'nodes'),
      model: isModel ? source : undefined,
      pendingOutputs: new Set<string>(),
      renamed: new Map<string, string>(),
    });
    return b;
  }

  /** Values that output() renamed: old name -> new name, so later nodes can still use the old one. */
  private renamed = new Map<string, string>();

  private claim(name: string, what: string): string {
    if (this.names.has(name)) throw new LesionFuseError(`${what} '${name}': the name is already used in graph '${this.graph.name}'`);
    this.names.reserve(name);
    return name;
  }

  /** A fresh value name starting with `base`. */
  fresh(base: string): string {
    return this.names.next(base);
  }

  /** Add a graph input; returns its name. */
  input(name: string, dataType: DataType, shape: readonly Dim[] | null): string {
    this.graph.inputs.push(makeValueInfo(this.claim(name, 'input'), dataType, shape));
    return name;
  }

  /** Add a named initializer; returns its name. */
  initializer(name: string, tensor: TensorData): string {
    this.graph.initializers.push({ ...tensor, name: this.claim(name, 'initializer') } as Initializer);
    return name;
  }

  /** Add an initializer under a fresh name derived from `base`; returns the name. */
  constant(tensor: TensorData, base = 'const'): string {
    const name = this.names.next(base);
    this.graph.initializers.push({ ...tensor, name } as Initializer);
    return name;
  }

  /** Add a node with `n` outputs (names generated, or `opts.outputs`); returns the node. */
  node(opType: string, inputs: readonly string[], n: number, attrs: Attrs = {}, opts: NodeOptions & { outputs?: string[] } = {}): Node {
    const base = opts.name ?? opType.toLowerCase();
    let nodeName: string;
    if (opts.name !== undefined) {
      if (this.nodeNames.has(opts.name)) throw new LesionFuseError(`node '${opts.name}': the name is already used in graph '${this.graph.name}'`);
      this.nodeNames.reserve(opts.name);
      nodeName = opts.name;
    } else nodeName = this.nodeNames.next(base);
    const outputs = opts.outputs ? opts.outputs.map((o) => (o === '' ? '' : this.claim(o, 'value'))) : Array.from({ length: n }, (_, i) => this.names.next(n === 1 ? `${nodeName}_out` : `${nodeName}_out${i}`));
    // A value renamed by output() is still reachable under the name op() returned for it.
    const resolved = inputs.map((i) => this.renamed.get(i) ?? i);
    const node = makeNode(opType, resolved, outputs, attrs, { ...opts, name: nodeName });
    this.graph.nodes.push(node);
    return node;
  }

  /** Add a node with one output; returns the output's name. */
  op(opType: string, inputs: readonly string[], attrs: Attrs = {}, opts: NodeOptions & { output?: string } = {}): string {
    return this.node(opType, inputs, 1, attrs, { ...opts, outputs: opts.output !== undefined ? [opts.output] : undefined }).outputs[0]!;
  }

  /** Add a node with `n` outputs; returns their names. */
  opN(opType: string, inputs: readonly string[], n: number, attrs: Attrs = {}, opts: NodeOptions & { outputs?: string[] } = {}): string[] {
    return this.node(opType, inputs, n, attrs, opts).outputs;
  }

  /**
   * Make `value` a graph output, optionally under a new name (the producing node's
   * output is renamed; a graph input or initializer gets an Identity). Type and
   * shape are inferred at `build()` unless given.
   */
  output(value: string, name?: string, type: OutputType = {}): string {
    let out = value;
    if (name !== undefined && name !== value) {
      const producer = producerMap(this.graph).get(value);
      this.claim(name, 'output');
      if (producer) {
        producer.outputs[producer.outputs.indexOf(value)] = name;
        replaceAllUses(this.graph, value, name);
        this.renamed.set(value, name);
      } else {
        this.graph.nodes.push(makeNode('Identity', [value], [name], {}, { name: this.nodeNames.next('identity') }));
      }
      out = name;
    }
    this.graph.outputs.push(makeValueInfo(out, type.dataType ?? DataType.UNDEFINED, type.shape === undefined ? null : type.shape));
    if (type.dataType === undefined || type.shape === undefined) this.pendingOutputs.add(out);
    return out;
  }

  /**
   * The model: a new one (with `opts`), or for `from(model)` that model, with
   * `opts.metadata` merged in. Output types not given are filled from shape inference.
   */
  build(opts: ModelOptions = {}): Model {
    let model: Model;
    if (this.model) {
      model = this.model;
      Object.assign(model.metadata, opts.metadata ?? {});
    } else model = makeModel(this.graph, opts);
    if (this.pendingOutputs.size > 0) {
      const shapes = inferShapes(model);
      for (const o of this.graph.outputs) {
        if (!this.pendingOutputs.has(o.name)) continue;
        const v = shapes.get(o.name);
        if (v && o.dataType === DataType.UNDEFINED) o.dataType = v.dataType;
        if (v && o.shape === null) o.shape = v.shape ? [...v.shape] : null;
      }
      this.pendingOutputs.clear();
    }
    return model;
  }
}
