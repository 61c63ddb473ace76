/**
 * `rewriteFile`: the whole rewrite path a user runs (read, rewrite, check parity, write), in one call the CLI
 * and pipeline configs share. A model whose outputs drift is not written unless `force` is set, and then
 * the result says so.
 */
import { resolve } from 'node:path';
import { readModel, writeModel } from '../onnx/io.js';
import { LesionFuseError, describeError } from '../util/errors.js';
import { log } from '../util/log.js';
import { checkParity, type ParityOptions, type ParityReport } from './parity.js';
import { rewrite, type RewriteOptions, type RewriteResult } from './rewrite.js';

export interface RewriteFileOptions extends RewriteOptions {
  /** Parity check settings; `false` skips the check (the result then says it was not checked). Default: {}. */
  parity?: ParityOptions | false;
  /** Write the model even when parity fails (the result and the log say so). Default false. */
  force?: boolean;
}

export interface RewriteFileResult extends Omit<RewriteResult, 'model'> {
  input: string;
  output: string;
  parity: ParityReport | null;
  /** True when the model was written although parity failed or could not be measured (--force). */
  forced: boolean;
  nodesBefore: number;
  nodesAfter: number;
}

/**
 * Read `input`, run the passes, check parity on real images (raw outputs; mode from the passes: max |dy| for float32
 * passes, mask Dice agreement once to-float16 ran), and write `output` atomically.
 *
 * @example
 *   await rewriteFile('teacher.onnx', 'teacher.opt.onnx', ['remove-identity', 'fold-batchnorm']);
 */
export async function rewriteFile(input: string, output: string, passNames: readonly string[], opts: RewriteFileOptions = {}): Promise<RewriteFileResult> {
  const model = await readModel(input);
  const r = await rewrite(model, passNames, opts);
  let parity: ParityReport | null = null;
  let unchecked = false;
  if (opts.parity !== false) {
    const p = opts.parity ?? {};
    try {
      parity = await checkParity(model, r.model, { ...p, mode: p.mode ?? (r.precision === 'float16' ? 'dice-agreement' : 'max-abs') });
    } catch (err) {
      // Parity could not even be measured (no images, the original does not run here...): refuse unless forced.
      if (!opts.force) throw new LesionFuseError(`refusing to write ${output}: the parity check could not run: ${describeError(err)}; --force writes it unchecked`);
      log.warn(`WRITING A MODEL WHOSE PARITY WAS NOT CHECKED (--force): ${describeError(err)}`);
      unchecked = true;
    }
  }
  let forced = unchecked;
  if (parity && !parity.passed) {
    if (!opts.force) throw new LesionFuseError(`refusing to write ${output}: the rewritten model drifts: ${parity.message}; --force writes it anyway`);
    forced = true;
    log.warn(`WRITING A MODEL THAT FAILED THE PARITY CHECK (--force): ${parity.message}`);
  }
  await writeModel(r.model, output);
  const { model: _m, ...rest } = r;
  void _m;
  return { ...rest, input: resolve(input), output: resolve(output), parity, forced, nodesBefore: model.graph.nodes.length, nodesAfter: r.model.graph.nodes.length };
}
