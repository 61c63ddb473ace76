/**
 * Queries and small edits on the graph IR that rewrites, quantization and the
 * training engine share: who produces/consumes a value, topological order, fresh
 * names, deep copies.
 */
import type { Attribute, Graph, Initializer, Model, Node, TensorData, ValueInfo } from './ir.js';
import { LesionFuseError } from '../util/errors.js';

/** value name -> the node that produces it (graph inputs and initializers have none). */
export function producerMap(g: Graph): Map<string, Node> {
  const m = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o !== '') m.set(o, n);
  return m;
}

/** value name -> the nodes that read it, in graph order (a node reading a value twice is listed once). */
export function consumerMap(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.nodes) {
    const seen = new Set<string>();
    for (const i of n.inputs) {
      if (i === '' || seen.has(i)) continue;
      seen.add(i);
      const list = m.get(i);
      if (list) list.push(n);
      else m.set(i, [n]);
    }
  }
  return m;
}

/** initializer name -> initializer. */
export function initializerMap(g: Graph): Map<string, Initializer> {
  return new Map(g.initializers.map((t) => [t.name, t]));
}

/** Every value name of a subgraph that comes from an enclosing scope (for If/Loop/Scan bodies). */
function outerInputs(g: Graph): string[] {
  const local = new Set<string>([...g.inputs.map((v) => v.name), ...g.initializers.map((t) => t.name)]);
  for (const n of g.nodes) for (const o of n.outputs) local.add(o);
  const out = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i !== '' && !local.has(i)) out.add(i);
    for (const a of Object.values(n.attributes)) if (a.type === 'graph') for (const i of outerInputs(a.value)) if (!local.has(i)) out.add(i);
  }
  return [...out];
}

/** The values a node depends on: its inputs plus what its subgraphs read from the enclosing graph. */
export function nodeDependencies(n: Node): string[] {
  const deps = n.inputs.filter((i) => i !== '');
  for (const a of Object.values(n.attributes)) if (a.type === 'graph') deps.push(...outerInputs(a.value));
  return deps;
}

/**
 * The nodes in an order where every node comes after the producers of its inputs
 * (stable: keeps the original order where it already works). Throws a
 * LesionFuseError naming a node on a cycle.
 */
export function topologicalOrder(g: Graph): Node[] {
  const producers = producerMap(g);
  const index = new Map(g.nodes.map((n, i) => [n, i]));
  const state = new Map<Node, 1 | 2>(); // 1 = on the stack, 2 = done
  const order: Node[] = [];
  for (const root of g.nodes) {
    if (state.get(root) === 2) continue;
    // Iterative DFS so deep graphs (thousands of nodes) cannot overflow the stack.
    const stack: { node: Node; deps: Node[]; next: number }[] = [];
    const push = (node: Node) => {
      state.set(node, 1);
      const deps: Node[] = [];
      for (const d of nodeDependencies(node)) {
        const p = producers.get(d);
        if (p && p !== node) deps.push(p);
        else if (p === node) throw new LesionFuseError(`graph '${g.name}' has a cycle through node '${node.name}' (${node.opType}), which reads its own output '${d}'`);
      }
      deps.sort((a, b) => index.get(a)! - index.get(b)!);
      stack.push({ node, deps, next: 0 });
    };
    push(root);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.deps.length) {
        const d = top.deps[top.next++]!;
        const s = state.get(d);
        if (s === 1) throw new LesionFuseError(`graph '${g.name}' has a cycle through node '${d.name || d.outputs[0]}' (${d.opType})`);
        if (s !== 2) push(d);
      } else {
        state.set(top.node, 2);
        order.push(top.node);
        stack.pop();
      }
    }
  }
  return order;
}

/** Which names `usedNames` collects: value names, node names, or both. */
export type NameKind = 'values' | 'nodes' | 'all';

/**
 * Every name used in a graph (and its subgraphs): values (inputs, outputs,
 * initializers, node inputs/outputs, value_info) and/or node names.
 */
export function usedNames(g: Graph, kind: NameKind = 'all'): Set<string> {
  const s = new Set<string>();
  const values = kind !== 'nodes';
  if (values) {
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) s.add(v.name);
    for (const t of g.initializers) s.add(t.name);
  }
  for (const n of g.nodes) {
    if (kind !== 'values' && n.name) s.add(n.name);
    if (values) for (const x of [...n.inputs, ...n.outputs]) if (x) s.add(x);
    for (const a of Object.values(n.attributes)) if (a.type === 'graph') for (const x of usedNames(a.value, kind)) s.add(x);
  }
  return s;
}

/**
 * Fresh names that collide neither with a graph's names nor with each other.
 * Create one per edit session (it snapshots the graph's names once). ONNX keeps
 * value names and node names apart; `kind` says which to avoid (default both).
 */
export class NameGen {
  private readonly used: Set<string>;
  private readonly counters = new Map<string, number>();
  constructor(g?: Graph, kind: NameKind = 'all') {
    this.used = g ? usedNames(g, kind) : new Set();
  }
  /** `base` if free, else `base_1`, `base_2`... */
  next(base: string): string {
    let name = base;
    let i = this.counters.get(base) ?? 0;
    while (this.used.has(name)) name = `${base}_${++i}`;
    this.counters.set(base, i);
    this.used.add(name);
    return name;
  }
  /** Mark a name as taken. */
  reserve(name: string): void {
    this.used.add(name);
  }
  has(name: string): boolean {
    return this.used.has(name);
  }
}

/** A name not used in `g` (for one-off edits; use NameGen for many). */
export function uniqueName(g: Graph, base: string): string {
  return new NameGen(g).next(base);
}

function cloneTensor<T extends TensorData>(t: T): T {
  return { ...t, dims: [...t.dims], values: t.values.slice() as T['values'] };
}

function cloneAttribute(a: Attribute): Attribute {
  switch (a.type) {
    case 'floats':
    case 'ints':
    case 'strings':
      return { type: a.type, value: [...a.value] } as Attribute;
    case 'tensor':
      return { type: 'tensor', value: cloneTensor(a.value) };
    case 'graph':
      return { type: 'graph', value: cloneGraph(a.value) };
    default:
      return { ...a };
  }
}

function cloneValueInfo(v: ValueInfo): ValueInfo {
  return { ...v, shape: v.shape ? [...v.shape] : null };
}

/** A deep copy of a graph. `preserved` (original bytes kept for round trips) is shared: it is never mutated. */
export function cloneGraph(g: Graph): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => ({
      ...n,
      inputs: [...n.inputs],
      outputs: [...n.outputs],
      attributes: Object.fromEntries(Object.entries(n.attributes).map(([k, a]) => [k, cloneAttribute(a)])),
    })),
    inputs: g.inputs.map(cloneValueInfo),
    outputs: g.outputs.map(cloneValueInfo),
    valueInfo: g.valueInfo.map(cloneValueInfo),
    initializers: g.initializers.map((t) => ({ ...cloneTensor(t), external: t.external ? { ...t.external } : undefined })),
  };
}

/** A deep copy of a model: edits to the copy never touch the original (tensor values included). */
export function cloneModel(m: Model): Model {
  return {
    ...m,
    opsetImports: m.opsetImports.map((o) => ({ ...o })),
    metadata: { ...m.metadata },
    graph: cloneGraph(m.graph),
  };
}

/** Replace every use of value `from` by `to` in node inputs (and graph outputs when `includeOutputs`). */
export function replaceAllUses(g: Graph, from: string, to: string, includeOutputs = true): void {
  for (const n of g.nodes) for (let i = 0; i < n.inputs.length; i++) if (n.inputs[i] === from) n.inputs[i] = to;
  if (includeOutputs) for (const o of g.outputs) if (o.name === from) o.name = to;
}

/**
 * Remove nodes whose outputs nobody needs (not read by a node and not a graph
 * output), and initializers nobody reads. Returns how many nodes were removed.
 */
export function removeUnusedNodes(g: Graph): number {
  const before = g.nodes.length;
  const needed = new Set(g.outputs.map((o) => o.name));
  const keep: Node[] = [];
  for (const n of [...topologicalOrder(g)].reverse()) {
    if (n.outputs.some((o) => o !== '' && needed.has(o))) {
      keep.push(n);
      for (const d of nodeDependencies(n)) needed.add(d);
    }
  }
  const kept = new Set(keep);
  g.nodes = g.nodes.filter((n) => kept.has(n));
  g.initializers = g.initializers.filter((t) => needed.has(t.name));
  return before - g.nodes.length;
}

/** An INT attribute of `node`, or `dflt` when it is absent. */
export function readIntAttr(node: Node, name: string, dflt: number): number {
  const a = node.attributes[name];
  return a && a.type === 'int' ? a.value : dflt;
}

/** A FLOAT attribute of `node` (an INT written by a lax exporter counts too), or `dflt` when absent. */
export function readFloatAttr(node: Node, name: string, dflt: number): number {
  const a = node.attributes[name];
  return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
}
