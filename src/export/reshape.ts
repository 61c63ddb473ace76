/**
 * simplify-reshape: with a dynamic batch, exporters build every Reshape target at run time, e.g.
 * Reshape(x, Concat(Unsqueeze(Gather(Shape(y), 0)), [193, 3, 6, 64])), only to pass the batch through.
 * Reshape (allowzero=0) already copies an input dim where the target says 0, so when shape inference shows
 * that the gathered dim IS x's dim at the same position (the same symbol, like 'N', or the same number),
 * the target becomes the constant [0, 193, 3, 6, 64] and the Shape/Gather/Unsqueeze/Concat chain goes
 * (remove-dead sweeps it). Exact: the same values at every batch size.
 */
import { DataType, type Dim, type Model, type Node, type TensorData } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shape.js';
import { int64Tensor } from '../onnx/tensor.js';
import type { ChangeRecord, Pass, PassResult } from './pass.js';
import { Constants, Names, isDefaultDomain, nodeLabel, record } from './util.js';

const PASS = 'simplify-reshape';

function ints(t: TensorData | undefined): number[] | null {
  if (!t || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32)) return null;
  return Array.from(t.values as ArrayLike<number | bigint>, Number);
}

function simplifyReshape(model: Model): PassResult {
  const g = model.graph;
  const changes: ChangeRecord[] = [];
  const consts = new Constants(g);
  const names = new Names(g);
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  let shapes: ReturnType<typeof inferShapes>;
  try {
    shapes = inferShapes(model, { useDeclared: false });
  } catch (err) {
    return { model, changes: [record(PASS, 'skipped', `shape inference failed, nothing changed: ${(err as Error).message}`)] };
  }
  const shapeOf = (v: string): Dim[] | null => shapes.get(v)?.shape ?? null;
  const def = (n: Node | undefined, op: string) => n && isDefaultDomain(n) && n.opType === op;

  /** The dim a run-time target element reads: Gather(Shape(y), k) (scalar or [k]), possibly Unsqueezed. */
  const dimOf = (v: string): { dim: Dim; length: 1 } | null => {
    let p = producer.get(v);
    if (def(p, 'Unsqueeze')) {
      const ax = p!.attributes['axes'];
      const axes = ax && ax.type === 'ints' ? ax.value : ints(consts.get(p!.inputs[1] ?? ''));
      if (!axes || axes.length !== 1 || axes[0] !== 0) return null;
      p = producer.get(p!.inputs[0]!);
      if (!def(p, 'Gather')) return null;
      const idx = consts.get(p!.inputs[1] ?? '');
      if (!idx || idx.dims.length !== 0) return null;
    } else if (def(p, 'Gather')) {
      const idx = consts.get(p!.inputs[1] ?? '');
      if (!idx || idx.dims.length !== 1 || idx.dims[0] !== 1) return null;
    } else return null;
    const ax = p!.attributes['axis'];
    if (ax && ax.type === 'int' && ax.value !== 0) return null;
    const k = ints(consts.get(p!.inputs[1]!))?.[0];
    const sh = producer.get(p!.inputs[0]!);
    if (k === undefined || !def(sh, 'Shape') || sh!.attributes['start'] || sh!.attributes['end']) return null;
    const ys = shapeOf(sh!.inputs[0]!);
    if (!ys) return null;
    const d = ys[k < 0 ? k + ys.length : k];
    return d === undefined || d === null ? null : { dim: d, length: 1 };
  };

  const done: string[] = [];
  for (const r of g.nodes) {
    if (!def(r, 'Reshape') || !r.inputs[1] || consts.has(r.inputs[1])) continue;
    const az = r.attributes['allowzero'];
    if (az && az.type === 'int' && az.value !== 0) continue;
    const concat = producer.get(r.inputs[1]);
    if (!def(concat, 'Concat')) continue;
    const cax = concat!.attributes['axis'];
    if (!cax || cax.type !== 'int' || cax.value !== 0) continue;
    const xs = shapeOf(r.inputs[0]!);
    if (!xs) continue;
    const target: number[] = [];
    let ok = true;
    for (const part of concat!.inputs) {
      const c = ints(consts.get(part));
      if (c) {
        target.push(...c);
        continue;
      }
      const d = dimOf(part);
      const j = target.length;
      if (!d || j >= xs.length || xs[j] !== d.dim) {
        ok = false;
        break;
      }
      target.push(0);
    }
    if (!ok) continue;
    const name = names.fresh(`${nodeLabel(r, g)}_shape`);
    g.initializers.push({ name, ...int64Tensor([target.length], target) });
    r.inputs[1] = name;
    done.push(`${nodeLabel(r, g)} -> [${target.join(',')}]`);
  }
  if (done.length) {
    changes.push(record(PASS, 'changed', `${done.length} Reshape target(s) built at run time replaced by constants (0 = copy the input dim); remove-dead drops the unused Shape/Gather/Concat chains`, done, done.length));
  } else changes.push(record(PASS, 'changed', 'no run-time Reshape targets that copy input dims found', [], 0));
  return { model, changes };
}

export const simplifyReshapePass: Pass = {
  name: 'simplify-reshape',
  description: 'replace run-time Reshape targets that only pass input dims through (dynamic batch) by constants with 0',
  precision: 'float32',
  run: simplifyReshape,
};
