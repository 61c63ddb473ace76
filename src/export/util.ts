/**
 * Small graph edits shared by the passes: reading a constant behind a value name, redirecting the uses of
 * one value to another, and finding which names nested subgraphs (If/Loop/Scan bodies) read from the outer
 * graph, since a rewrite that misses those would delete a value a subgraph still needs.
 */
import { DataType, type Attribute, type Graph, type Node, type TensorData } from '../onnx/ir.js';
import { floatTensor, int64Tensor } from '../onnx/tensor.js';
import type { ChangeKind, ChangeRecord } from './pass.js';

export function record(pass: string, kind: ChangeKind, message: string, nodes?: string[], count?: number): ChangeRecord {
  const r: ChangeRecord = { pass, kind, message };
  if (nodes && nodes.length) r.nodes = nodes;
  if (count !== undefined) r.count = count;
  return r;
}

/** A printable name for a node: its name, or `OpType#index` when it has none. */
export function nodeLabel(n: Node, g?: Graph): string {
  if (n.name) return n.name;
  const i = g ? g.nodes.indexOf(n) : -1;
  return i >= 0 ? `${n.opType}#${i}` : `${n.opType}(${n.outputs[0] ?? ''})`;
}

export function isDefaultDomain(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

/** Every name a node's subgraphs read (inputs of nodes inside them), recursively. Over-approximates outer-scope reads, which is the safe side. */
export function subgraphReads(n: Node, into: Set<string> = new Set()): Set<string> {
  for (const a of Object.values(n.attributes)) {
    if (a.type === 'graph') graphReads(a.value, into);
  }
  return into;
}

function graphReads(g: Graph, into: Set<string>): void {
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i) into.add(i);
    subgraphReads(n, into);
  }
  for (const o of g.outputs) into.add(o.name);
}

/** The names read by the graph: node inputs, subgraph reads and graph outputs. */
export function readNames(g: Graph): Set<string> {
  const s = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i) s.add(i);
    subgraphReads(n, s);
  }
  for (const o of g.outputs) s.add(o.name);
  return s;
}

/** How many times each value is read (node inputs; graph outputs count once; subgraph reads count once per node). */
export function useCounts(g: Graph): Map<string, number> {
  const m = new Map<string, number>();
  const add = (k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i) add(i);
    for (const s of subgraphReads(n)) add(s);
  }
  for (const o of g.outputs) add(o.name);
  return m;
}

/** Point every read of `from` (node inputs, subgraph reads) at `to`. Graph outputs are not renamed. */
export function replaceUses(g: Graph, from: string, to: string): void {
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    for (const a of Object.values(n.attributes)) if (a.type === 'graph') replaceUses(a.value, from, to);
  }
}

/** Rename a value everywhere: its producer's output, every read, graph outputs and value_info. */
export function renameValue(g: Graph, from: string, to: string): void {
  for (const n of g.nodes) n.outputs = n.outputs.map((o) => (o === from ? to : o));
  replaceUses(g, from, to);
  for (const o of g.outputs) if (o.name === from) o.name = to;
  for (const v of g.valueInfo) if (v.name === from) v.name = to;
}

/** Names of the graph's real inputs (graph inputs that are not also initializers, as IR < 4 models list them). */
export function realInputNames(g: Graph): Set<string> {
  const inits = new Set(g.initializers.map((i) => i.name));
  return new Set(g.inputs.filter((i) => !inits.has(i.name)).map((i) => i.name));
}

function constantNodeTensor(n: Node): TensorData | undefined {
  const a: Attribute | undefined =
    n.attributes['value'] ?? n.attributes['value_float'] ?? n.attributes['value_floats'] ?? n.attributes['value_int'] ?? n.attributes['value_ints'];
  if (!a) return undefined;
  if (a.type === 'tensor') return a.value;
  if (n.attributes['value_float'] && a.type === 'float') return floatTensor([], [a.value]);
  if (n.attributes['value_floats'] && (a.type === 'floats' || a.type === 'ints')) return floatTensor([a.value.length], a.value);
  if (n.attributes['value_int'] && a.type === 'int') return int64Tensor([], [a.value]);
  if (n.attributes['value_ints'] && a.type === 'ints') return int64Tensor([a.value.length], a.value);
  return undefined;
}

/**
 * Looks up constant values by name: initializers that are not overridable graph inputs, and outputs of
 * default-domain Constant nodes. Built once per pass; call `refresh()` after edits that add constants.
 */
export class Constants {
  private inits = new Map<string, TensorData>();
  private nodes = new Map<string, TensorData>();
  constructor(private readonly g: Graph) {
    this.refresh();
  }
  refresh(): void {
    const inputs = new Set(this.g.inputs.map((i) => i.name));
    this.inits.clear();
    this.nodes.clear();
    for (const i of this.g.initializers) if (!inputs.has(i.name)) this.inits.set(i.name, i);
    for (const n of this.g.nodes) {
      if (n.opType === 'Constant' && isDefaultDomain(n) && n.outputs[0]) {
        const t = constantNodeTensor(n);
        if (t) this.nodes.set(n.outputs[0], t);
      }
    }
  }
  get(name: string): TensorData | undefined {
    return this.inits.get(name) ?? this.nodes.get(name);
  }
  has(name: string): boolean {
    return this.inits.has(name) || this.nodes.has(name);
  }
  /** True for an initializer (not a Constant node output). */
  isInitializer(name: string): boolean {
    return this.inits.has(name);
  }
}

export { constantNodeTensor };

/** Float data types whose values a pass can read and rescale exactly. */
export function isFloatType(dt: DataType): boolean {
  return dt === DataType.FLOAT || dt === DataType.FLOAT16 || dt === DataType.DOUBLE || dt === DataType.BFLOAT16;
}

/** Fresh, unused names derived from a base (values and nodes share one namespace here, which is stricter than needed). */
export class Names {
  private used = new Set<string>();
  constructor(g: Graph) {
    const visit = (gr: Graph) => {
      for (const i of gr.inputs) this.used.add(i.name);
      for (const o of gr.outputs) this.used.add(o.name);
      for (const i of gr.initializers) this.used.add(i.name);
      for (const v of gr.valueInfo) this.used.add(v.name);
      for (const n of gr.nodes) {
        if (n.name) this.used.add(n.name);
        for (const x of n.inputs) this.used.add(x);
        for (const x of n.outputs) this.used.add(x);
        for (const a of Object.values(n.attributes)) if (a.type === 'graph') visit(a.value);
      }
    };
    visit(g);
  }
  fresh(base: string): string {
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }
}
