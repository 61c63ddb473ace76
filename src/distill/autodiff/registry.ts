/**
 * One gradient rule per ONNX op type, in one table (as tfjs-core keeps one
 * gradient function beside each kernel). `buildTrainingModel` looks rules up
 * here; adding support for an op is one `registerGradient` call.
 */
import type { Attribute, Initializer, Node } from '../../onnx/ir.js';
import { LesionFuseError } from '../../util/errors.js';
import type { GradEmitter } from './emit.js';

/** What a rule is told about the forward node it differentiates. */
export interface GradContext {
  /** The forward node (already in training form: e.g. MaxPool emits Indices). */
  readonly node: Node;
  /** Static shape of each input ('' inputs give []). */
  readonly inputShapes: readonly number[][];
  /** Static shape of each output. */
  readonly outputShapes: readonly number[][];
  /**
   * Gradient value name of each output, or undefined when the loss does not
   * depend on that output (rules substitute zeros where they need one).
   */
  readonly dY: readonly (string | undefined)[];
  /** Whether input i needs a gradient (it depends on a trained parameter and is float). */
  needsGrad(i: number): boolean;
  /** The value of input i when it is a constant (initializer or Constant node), else undefined. */
  constantInput(i: number): Initializer | undefined;
  /** An attribute of the forward node. */
  attr(name: string): Attribute | undefined;
  /** The emitter for backward nodes, scoped to this forward node. */
  readonly b: GradEmitter;
}

/**
 * A gradient rule: emits backward nodes and returns, per forward input, the
 * name of its gradient value (undefined where none is needed or none exists).
 */
export type GradientRule = (ctx: GradContext) => (string | undefined)[];

/**
 * Optional forward rewrite run before differentiation, when the forward op
 * must expose something the backward needs (MaxPool's Indices, BatchNorm's
 * training mode). It edits `node` in place; `fresh` gives unused names.
 */
export type ForwardPrep = (node: Node, fresh: (base: string) => string) => void;

interface Entry {
  rule: GradientRule;
  prepare?: ForwardPrep;
}

const registry = new Map<string, Entry>();

/** Register (or replace) the gradient rule of an ONNX op type in the default domain. */
export function registerGradient(opType: string, rule: GradientRule, prepare?: ForwardPrep): void {
  registry.set(opType, { rule, prepare });
}

/** The rule for an op type, or undefined. */
export function getGradient(opType: string): Entry | undefined {
  return registry.get(opType);
}

/** Op types that have a gradient rule, sorted (for error messages and docs). */
export function supportedGradientOps(): string[] {
  return [...registry.keys()].sort();
}

/** The rule for `node`, or a LesionFuseError naming the node and the supported ops. */
export function requireGradient(node: Node): Entry {
  const domainOk = node.domain === '' || node.domain === 'ai.onnx';
  const entry = domainOk ? registry.get(node.opType) : undefined;
  if (!entry) {
    throw new LesionFuseError(
      `no gradient rule for op ${node.domain ? node.domain + '.' : ''}${node.opType} (node '${node.name}'); supported: ${supportedGradientOps().join(', ')}`,
      { subject: 'autodiff' },
    );
  }
  return entry;
}
