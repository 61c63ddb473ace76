/**
 * remove-identity and remove-dead: the clean-ups every exported graph benefits from. Exporters leave
 * Identity nodes (renamed outputs, weight sharing) and Dropout (a no-op at inference), and dead branches
 * (the deep-supervision heads a teacher trains with but does not export) keep their weights in the file.
 */
import { DataType, type Graph, type Model, type Node } from '../onnx/ir.js';
import type { ChangeRecord, Pass, PassResult } from './pass.js';
import { Constants, isDefaultDomain, nodeLabel, realInputNames, record, renameValue, replaceUses, subgraphReads } from './util.js';

/** Whether a Dropout runs as the identity: training_mode absent, empty or a constant false (and no is_test=0 from opset < 7). */
function dropoutIsIdentity(n: Node, consts: Constants): { ok: true } | { ok: false; why: string } {
  const isTest = n.attributes['is_test'];
  if (isTest && isTest.type === 'int' && isTest.value === 0) return { ok: false, why: 'is_test=0 (training mode)' };
  const tm = n.inputs[2];
  if (tm) {
    const t = consts.get(tm);
    if (!t) return { ok: false, why: 'training_mode is not a constant' };
    if (t.dataType !== DataType.BOOL || t.values[0] !== 0) return { ok: false, why: 'training_mode is not false' };
  }
  return { ok: true };
}

function removeIdentities(model: Model): PassResult {
  const g = model.graph;
  const changes: ChangeRecord[] = [];
  const consts = new Constants(g);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const graphInputs = new Set(g.inputs.map((i) => i.name));
  const removed: Record<string, string[]> = { Identity: [], Dropout: [] };
  const kept: ChangeRecord[] = [];
  const keep: Node[] = [];
  // Values whose producer has been redirected: process in order so that chains collapse.
  for (const n of g.nodes) {
    if (!isDefaultDomain(n) || (n.opType !== 'Identity' && n.opType !== 'Dropout')) {
      keep.push(n);
      continue;
    }
    const src = n.inputs[0];
    const dst = n.outputs[0];
    if (!src || !dst) {
      keep.push(n);
      continue;
    }
    if (n.opType === 'Dropout') {
      const ok = dropoutIsIdentity(n, consts);
      if (!ok.ok) {
        kept.push(record('remove-identity', 'skipped', `kept Dropout ${nodeLabel(n, g)}: ${ok.why}`, [nodeLabel(n, g)]));
        keep.push(n);
        continue;
      }
      if (n.outputs[1] && g.nodes.some((m) => m.inputs.includes(n.outputs[1]!)) || (n.outputs[1] && graphOutputs.has(n.outputs[1]))) {
        kept.push(record('remove-identity', 'skipped', `kept Dropout ${nodeLabel(n, g)}: its mask output is used`, [nodeLabel(n, g)]));
        keep.push(n);
        continue;
      }
    }
    if (!graphOutputs.has(dst)) {
      // The common case: readers of the output read the input instead.
      replaceUses(g, dst, src);
      g.valueInfo = g.valueInfo.filter((v) => v.name !== dst);
    } else if (!graphOutputs.has(src) && !graphInputs.has(src) && !g.initializers.some((i) => i.name === src)) {
      // The output is a graph output: the graph's interface keeps its name, so the input value takes it.
      renameValue(g, src, dst);
      // value_info must not repeat the graph output's own entry.
      g.valueInfo = g.valueInfo.filter((v) => v.name !== dst);
      // The Identity now reads and writes `dst`; it is dropped below.
    } else {
      kept.push(
        record('remove-identity', 'skipped', `kept ${n.opType} ${nodeLabel(n, g)}: it copies a graph input, initializer or output straight to a graph output`, [nodeLabel(n, g)]),
      );
      keep.push(n);
      continue;
    }
    removed[n.opType]!.push(nodeLabel(n, g));
  }
  g.nodes = keep;
  for (const [op, names] of Object.entries(removed)) {
    if (names.length) changes.push(record('remove-identity', 'removed', `removed ${names.length} ${op} node(s)`, names, names.length));
  }
  if (!changes.length) changes.push(record('remove-identity', 'changed', 'no Identity or inference Dropout nodes found', [], 0));
  return { model, changes: [...changes, ...kept] };
}

export const removeIdentityPass: Pass = {
  name: 'remove-identity',
  description: 'remove Identity nodes and Dropout nodes that are no-ops at inference',
  precision: 'float32',
  run: (model) => removeIdentities(model),
};

/**
 * Remove what cannot influence a graph output: nodes whose outputs reach none (walking back from the
 * outputs, including names read by subgraphs), then initializers and value_info nobody reads. Real graph
 * inputs are the model's interface and stay even when unused; initializers that IR < 4 files also list as
 * graph inputs are removed from both lists when unused.
 */
function removeDead(model: Model): PassResult {
  const g = model.graph;
  const changes: ChangeRecord[] = [];
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const live = new Set<Node>();
  const stack: string[] = g.outputs.map((o) => o.name);
  const seen = new Set<string>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const p = producer.get(v);
    if (!p || live.has(p)) continue;
    live.add(p);
    for (const i of p.inputs) if (i) stack.push(i);
    for (const s of subgraphReads(p)) stack.push(s);
  }
  const deadNodes = g.nodes.filter((n) => !live.has(n));
  if (deadNodes.length) {
    g.nodes = g.nodes.filter((n) => live.has(n));
    const byOp = new Map<string, number>();
    for (const n of deadNodes) byOp.set(n.opType, (byOp.get(n.opType) ?? 0) + 1);
    const summary = [...byOp].map(([op, k]) => `${k} ${op}`).join(', ');
    changes.push(record('remove-dead', 'removed', `removed ${deadNodes.length} node(s) that reach no graph output (${summary})`, deadNodes.map((n) => nodeLabel(n)), deadNodes.length));
  }
  const read = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i) read.add(i);
    subgraphReads(n, read);
  }
  for (const o of g.outputs) read.add(o.name);
  const real = realInputNames(g);
  const unusedInits = g.initializers.filter((i) => !read.has(i.name));
  if (unusedInits.length) {
    const gone = new Set(unusedInits.map((i) => i.name));
    g.initializers = g.initializers.filter((i) => !gone.has(i.name));
    // IR < 4 style: the initializer was also declared as a graph input; it is not a real input.
    g.inputs = g.inputs.filter((i) => real.has(i.name) || !gone.has(i.name));
    let bytes = 0;
    for (const i of unusedInits) bytes += i.values.byteLength;
    changes.push(record('remove-dead', 'removed', `removed ${unusedInits.length} unused initializer(s) (${(bytes / 1048576).toFixed(2)} MiB)`, unusedInits.map((i) => i.name), unusedInits.length));
  }
  const unusedReal = g.inputs.filter((i) => real.has(i.name) && !read.has(i.name));
  if (unusedReal.length) {
    changes.push(record('remove-dead', 'skipped', `kept unused graph input(s) ${unusedReal.map((i) => i.name).join(', ')}: they are the model's interface`));
  }
  const defined = new Set<string>([...g.inputs.map((i) => i.name), ...g.initializers.map((i) => i.name)]);
  for (const n of g.nodes) for (const o of n.outputs) if (o) defined.add(o);
  const before = g.valueInfo.length;
  g.valueInfo = g.valueInfo.filter((v) => defined.has(v.name));
  if (g.valueInfo.length < before) changes.push(record('remove-dead', 'removed', `removed ${before - g.valueInfo.length} value_info entr(ies) of removed values`, [], before - g.valueInfo.length));
  if (!changes.length) changes.push(record('remove-dead', 'changed', 'nothing dead found', [], 0));
  return { model, changes };
}

export const removeDeadPass: Pass = {
  name: 'remove-dead',
  description: 'remove nodes that reach no graph output, and unused initializers and value_info',
  precision: 'float32',
  run: (model) => removeDead(model),
};

export { removeDead, removeIdentities };
