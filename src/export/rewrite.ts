/**
 * The pass registry and `rewrite`, which runs named passes in order on a copy of a model and collects
 * what each one changed. Parity against the original is checked by the caller (`rewriteFile`, the CLI)
 * with `checkParity`, because only the caller knows which images and tolerance fit the model.
 */
import type { Model } from '../onnx/ir.js';
import { LesionFuseError } from '../util/errors.js';
import { foldBatchNormPass } from './batchnorm.js';
import { fuseBiasAddPass } from './bias.js';
import { removeDeadPass, removeIdentityPass } from './cleanup.js';
import { foldConstantsPass } from './constants.js';
import { mergeDuplicatesPass } from './duplicates.js';
import { simplifyReshapePass } from './reshape.js';
import { toFloat16Pass } from './float16.js';
import { updateOpsetPass } from './opset.js';
import type { ChangeRecord, Pass, PassOptions } from './pass.js';
import { fixInputSizePass, setBatchPass, setMetadataPass } from './shapes.js';

/** Every pass, by name, in the order `--list` shows them. */
export const PASSES: Readonly<Record<string, Pass>> = Object.freeze(
  Object.fromEntries(
    [
      removeIdentityPass,
      removeDeadPass,
      foldConstantsPass,
      mergeDuplicatesPass,
      simplifyReshapePass,
      foldBatchNormPass,
      fuseBiasAddPass,
      setBatchPass,
      fixInputSizePass,
      toFloat16Pass,
      updateOpsetPass,
      setMetadataPass,
    ].map((p) => [p.name, p]),
  ),
);

/**
 * The passes `lesionfuse rewrite` runs when none are named: the ones that keep float32 outputs equal up to
 * rounding and need no option. remove-dead runs last so that it also sweeps what the folds leave behind.
 */
export const DEFAULT_PASSES: readonly string[] = ['remove-identity', 'fold-constants', 'merge-duplicates', 'simplify-reshape', 'fold-batchnorm', 'fuse-bias-add', 'remove-dead'];

/** Look up passes by name; an unknown name is refused with the list of known ones. */
export function resolvePasses(names: readonly string[]): Pass[] {
  return names.map((n) => {
    const p = PASSES[n];
    if (!p) throw new LesionFuseError(`unknown pass '${n}'; available: ${Object.keys(PASSES).join(', ')}`, { subject: '--passes' });
    return p;
  });
}

export interface RewriteOptions extends PassOptions {
  /** Called after each pass with what it changed (e.g. to print progress). */
  onPass?: (pass: string, changes: ChangeRecord[], ms: number) => void;
  /** Extra passes not in the registry, looked up before it (tests and plug-ins). */
  extraPasses?: Record<string, Pass>;
}

export interface RewriteResult {
  /** The rewritten model (a new object; the input is not modified). */
  model: Model;
  /** Every change, in pass order. */
  changes: ChangeRecord[];
  /** Per pass: its name, wall time and changes. */
  passes: { name: string; ms: number; changes: ChangeRecord[] }[];
  /** Whether every pass run keeps float32 parity (else the float16 Dice-agreement check applies). */
  precision: 'float32' | 'float16';
}

/**
 * Run passes by name, in order, on a deep copy of `model`.
 *
 * @example
 *   const { model: out, changes } = await rewrite(model, ['remove-identity', 'fold-batchnorm']);
 */
export async function rewrite(model: Model, passNames: readonly string[], opts: RewriteOptions = {}): Promise<RewriteResult> {
  const passes = passNames.map((n) => opts.extraPasses?.[n] ?? resolvePasses([n])[0]!);
  let current: Model = structuredClone(model);
  const all: ChangeRecord[] = [];
  const perPass: RewriteResult['passes'] = [];
  let precision: RewriteResult['precision'] = 'float32';
  for (const p of passes) {
    const t0 = performance.now();
    const r = await p.run(current, { options: opts });
    const ms = performance.now() - t0;
    current = r.model;
    all.push(...r.changes);
    perPass.push({ name: p.name, ms, changes: r.changes });
    if (p.precision === 'float16') precision = 'float16';
    opts.onPass?.(p.name, r.changes, ms);
  }
  return { model: current, changes: all, passes: perPass, precision };
}
