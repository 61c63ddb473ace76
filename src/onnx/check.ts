/**
 * Structural checks on a model before a stage trusts it: every value a node reads
 * exists, names are unique, outputs are produced, no cycles, tensors hold as many
 * values as their dims say. Stages call `assertValidModel` on what they read and
 * on what they are about to write.
 */
import { defaultOpset, type Graph, type Model } from './ir.js';
import { topologicalOrder } from './graph.js';
import { numel, isElementwiseArrayType, byteLengthOf } from './tensor.js';
import { LesionFuseError } from '../util/errors.js';

export interface CheckIssue {
  severity: 'error' | 'warning';
  message: string;
  /** The node the issue is about (its name, or its op type and first output when unnamed). */
  node?: string;
}

function nodeLabel(n: { name: string; opType: string; outputs: string[] }): string {
  return n.name ? `${n.name}` : `<unnamed ${n.opType} -> ${n.outputs[0] ?? ''}>`;
}

function checkGraph(g: Graph, outer: Set<string>, issues: CheckIssue[], where: string): void {
  const err = (message: string, node?: string) => issues.push({ severity: 'error', message: `${where}${message}`, node });
  const warn = (message: string, node?: string) => issues.push({ severity: 'warning', message: `${where}${message}`, node });

  const defined = new Map<string, string>(); // value -> what defines it
  const define = (name: string, what: string) => {
    const prev = defined.get(name);
    if (prev !== undefined) err(`value '${name}' is defined twice (${prev} and ${what})`);
    else defined.set(name, what);
  };
  const inputNames = new Set<string>();
  for (const v of g.inputs) {
    if (inputNames.has(v.name)) err(`graph input '${v.name}' is listed twice`);
    inputNames.add(v.name);
    define(v.name, `graph input`);
  }
  const initNames = new Set<string>();
  for (const t of g.initializers) {
    if (initNames.has(t.name)) {
      err(`initializer '${t.name}' is defined twice`);
      continue;
    }
    initNames.add(t.name);
    // An initializer may also be listed as a graph input (a default value the caller can override).
    if (!inputNames.has(t.name)) define(t.name, 'initializer');
    const n = numel(t.dims);
    const loaded = !(t.external && t.values.length === 0);
    if (loaded && isElementwiseArrayType(t.dataType) && t.values.length !== n) {
      err(`initializer '${t.name}' has ${t.values.length} values but dims [${t.dims.join(', ')}] need ${n}`);
    } else if (loaded && !isElementwiseArrayType(t.dataType) && t.dataType !== 8 && t.values.length !== byteLengthOf(t.dataType, n)) {
      err(`initializer '${t.name}' has ${t.values.length} bytes but dims [${t.dims.join(', ')}] need ${byteLengthOf(t.dataType, n)}`);
    }
  }
  const nodeNames = new Map<string, number>();
  for (const n of g.nodes) {
    if (!n.opType) err(`a node has no op type`, nodeLabel(n));
    if (n.name) nodeNames.set(n.name, (nodeNames.get(n.name) ?? 0) + 1);
    for (const o of n.outputs) if (o !== '') define(o, `output of node '${nodeLabel(n)}' (${n.opType})`);
  }
  for (const [name, count] of nodeNames) if (count > 1) warn(`node name '${name}' is used by ${count} nodes`, name);

  const visible = new Set<string>([...outer, ...defined.keys()]);
  const position = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => o && position.set(o, i)));
  let outOfOrder = 0;
  g.nodes.forEach((n, i) => {
    for (const inp of n.inputs) {
      if (inp === '') continue;
      if (!visible.has(inp)) {
        err(`node '${nodeLabel(n)}' (${n.opType}) reads '${inp}', which nothing defines (a missing initializer or graph input?)`, nodeLabel(n));
      } else if ((position.get(inp) ?? -1) >= i) outOfOrder++;
    }
    for (const [an, a] of Object.entries(n.attributes)) {
      if (a.type === 'graph') checkGraph(a.value, visible, issues, `${where}subgraph '${an}' of node '${nodeLabel(n)}': `);
    }
  });
  for (const o of g.outputs) if (!visible.has(o.name)) err(`graph output '${o.name}' is produced by no node, input or initializer`);
  if (g.outputs.length === 0) err('the graph has no outputs');
  try {
    topologicalOrder(g);
    if (outOfOrder > 0) warn(`${outOfOrder} node input(s) are read before the node producing them; ONNX expects nodes in topological order (sort with topologicalOrder)`);
  } catch (e) {
    err((e as Error).message);
  }
}

/** All problems found, errors first. An empty list means the model is structurally sound. */
export function checkModel(model: Model): CheckIssue[] {
  const issues: CheckIssue[] = [];
  if (!model.graph) return [{ severity: 'error', message: 'the model has no graph' }];
  const usesDefault = model.graph.nodes.some((n) => n.domain === '' || n.domain === 'ai.onnx');
  if (usesDefault && defaultOpset(model) === undefined) issues.push({ severity: 'error', message: 'the model imports no default (ai.onnx) opset but uses its ops' });
  for (const n of model.graph.nodes) {
    if (n.domain !== '' && n.domain !== 'ai.onnx' && !model.opsetImports.some((o) => o.domain === n.domain)) {
      issues.push({ severity: 'error', message: `node '${nodeLabel(n)}' uses domain '${n.domain}', which the model does not import`, node: nodeLabel(n) });
    }
  }
  checkGraph(model.graph, new Set(), issues, '');
  return [...issues.filter((i) => i.severity === 'error'), ...issues.filter((i) => i.severity === 'warning')];
}

/** Throw a one-line LesionFuseError (naming `path` when given) if the model has errors; warnings are returned. */
export function assertValidModel(model: Model, path?: string): CheckIssue[] {
  const issues = checkModel(model);
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    throw new LesionFuseError(`invalid ONNX model: ${errors[0]!.message}${more}`, { subject: path });
  }
  return issues;
}
