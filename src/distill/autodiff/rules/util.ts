/** Small helpers shared by the gradient rules. */
import type { Attribute, Initializer } from '../../../onnx/ir.js';
import { LesionFuseError } from '../../../util/errors.js';
import type { GradEmitter } from '../emit.js';
import { A } from '../emit.js';
import type { GradContext } from '../registry.js';

export function attrInt(ctx: GradContext, name: string, dflt: number): number {
  const a = ctx.attr(name);
  return a && (a.type === 'int' || a.type === 'float') ? a.value : dflt;
}
export function attrFloat(ctx: GradContext, name: string, dflt: number): number {
  const a = ctx.attr(name);
  return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
}
export function attrInts(ctx: GradContext, name: string): number[] | undefined {
  const a = ctx.attr(name);
  return a && (a.type === 'ints' || a.type === 'floats') ? a.value.slice() : undefined;
}
export function attrStr(ctx: GradContext, name: string, dflt: string): string {
  const a: Attribute | undefined = ctx.attr(name);
  return a && a.type === 'string' ? a.value : dflt;
}

/** A rule-level error naming the forward node. */
export function unsupported(ctx: GradContext, what: string): LesionFuseError {
  return new LesionFuseError(`gradient of ${ctx.node.opType} node '${ctx.node.name}': ${what}`, { subject: 'autodiff' });
}

/** Constant values of an input as plain numbers (int64 -> number). */
export function constNumbers(t: Initializer | undefined): number[] | undefined {
  if (!t) return undefined;
  return Array.from(t.values as ArrayLike<number | bigint>, (v) => Number(v));
}

/**
 * Sum a gradient of shape `from` down to the broadcast input shape `to`
 * (ReduceSum over the broadcast axes, then Reshape when the rank differs):
 * the adjoint of numpy-style broadcasting. Axes are static.
 */
export function unbroadcast(b: GradEmitter, g: string, from: readonly number[], to: readonly number[]): string {
  const off = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    const t = i < off ? 1 : to[i - off]!;
    if (i < off || (t === 1 && from[i] !== 1)) axes.push(i);
  }
  let out = g;
  if (axes.length > 0) out = b.op('ReduceSum', [g, b.i64(axes)], { keepdims: A.int(1) });
  if (off !== 0 || axes.length > 0) {
    // keepdims=1 leaves leading broadcast axes of size 1: drop them with a Reshape.
    if (off !== 0) out = b.op('Reshape', [out, b.i64(to as number[])]);
  }
  return out;
}

/** `dY` or zeros of the output's shape when the loss does not reach that output. */
export function gradOrZeros(ctx: GradContext, i: number): string {
  return ctx.dY[i] ?? ctx.b.zeros(ctx.outputShapes[i] as number[]);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
