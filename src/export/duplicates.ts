/**
 * merge-duplicates: exporters repeat work. torch.onnx emits a Shape -> Gather -> Unsqueeze chain per
 * Reshape, often twice on the same tensor, and a separate constant per use ([0], [1], [-1]...). Nodes with
 * the same op, attributes and inputs compute the same values (for deterministic ops), and initializers with
 * the same type, shape and bytes hold the same values, so one of each is kept and the readers of the others
 * are pointed at it. Exact: no value changes.
 */
import { createHash } from 'node:crypto';
import type { Attribute, Model, Node, TensorData } from '../onnx/ir.js';
import { NON_DETERMINISTIC_OPS } from './constants.js';
import type { ChangeRecord, Pass, PassResult } from './pass.js';
import { nodeLabel, record, replaceUses, subgraphReads } from './util.js';

const PASS = 'merge-duplicates';

function tensorKey(t: TensorData): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength));
  return `${t.dataType}:${t.dims.join('x')}:${h.digest('hex')}`;
}

function attrKey(a: Attribute): string {
  switch (a.type) {
    case 'tensor':
      return `t(${tensorKey(a.value)})`;
    case 'graph':
    case 'opaque':
      return ''; // never merged (see below)
    default:
      return `${a.type}(${JSON.stringify(a.value)})`;
  }
}

function nodeKey(n: Node): string | null {
  const attrs = Object.keys(n.attributes).sort();
  if (attrs.some((k) => n.attributes[k]!.type === 'graph' || n.attributes[k]!.type === 'opaque')) return null;
  return [n.domain === 'ai.onnx' ? '' : n.domain, n.opType, n.outputs.length, n.inputs.join('\u0000'), ...attrs.map((k) => `${k}=${attrKey(n.attributes[k]!)}`)].join('\u0001');
}

function mergeDuplicates(model: Model): PassResult {
  const g = model.graph;
  const changes: ChangeRecord[] = [];
  const protectedNames = new Set([...g.inputs.map((i) => i.name), ...g.outputs.map((o) => o.name)]);

  // 1. Identical initializers.
  const byKey = new Map<string, string>();
  const dropInit = new Set<string>();
  for (const t of g.initializers) {
    if (protectedNames.has(t.name) || t.external) continue;
    const k = tensorKey(t);
    const first = byKey.get(k);
    if (first === undefined) byKey.set(k, t.name);
    else {
      replaceUses(g, t.name, first);
      dropInit.add(t.name);
    }
  }
  if (dropInit.size) {
    g.initializers = g.initializers.filter((t) => !dropInit.has(t.name));
    changes.push(record(PASS, 'removed', `merged ${dropInit.size} initializer(s) identical to another one`, [...dropInit], dropInit.size));
  }

  // 2. Identical nodes, in graph order so that merging one makes its readers identical too.
  const seen = new Map<string, Node>();
  const dropped = new Set<Node>();
  const merged: string[] = [];
  for (const n of g.nodes) {
    if (NON_DETERMINISTIC_OPS.has(n.opType) || subgraphReads(n).size > 0 || !n.outputs.length) continue;
    if (n.outputs.some((o) => protectedNames.has(o))) continue;
    const k = nodeKey(n);
    if (k === null) continue;
    const first = seen.get(k);
    if (!first) {
      seen.set(k, n);
      continue;
    }
    n.outputs.forEach((o, i) => {
      if (o && first.outputs[i]) replaceUses(g, o, first.outputs[i]!);
    });
    dropped.add(n);
    merged.push(`${nodeLabel(n)} = ${nodeLabel(first)}`);
  }
  if (dropped.size) {
    g.nodes = g.nodes.filter((n) => !dropped.has(n));
    const gone = new Set([...dropped].flatMap((n) => n.outputs));
    g.valueInfo = g.valueInfo.filter((v) => !gone.has(v.name));
    const byOp = new Map<string, number>();
    for (const n of dropped) byOp.set(n.opType, (byOp.get(n.opType) ?? 0) + 1);
    changes.push(record(PASS, 'removed', `merged ${dropped.size} node(s) that repeat another node's computation (${[...byOp].map(([o, c]) => `${c} ${o}`).join(', ')})`, merged, dropped.size));
  }
  if (!changes.length) changes.push(record(PASS, 'changed', 'no duplicate nodes or initializers found', [], 0));
  return { model, changes };
}

export const mergeDuplicatesPass: Pass = {
  name: 'merge-duplicates',
  description: 'merge nodes that repeat the same computation on the same inputs, and identical initializers',
  precision: 'float32',
  run: mergeDuplicates,
};
