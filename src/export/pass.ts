/**
 * The one interface every graph rewrite implements.
 *
 * A pass takes a model and returns a model plus a human-readable record of what it changed, so that a
 * pipeline of passes can be audited (what was removed, fused, added) and every result can be checked for
 * output parity before it is written. Passes never touch what they do not understand: a node they cannot
 * handle is left as it is and reported as a `skipped` change naming the node (docs/inputs.md, "Models").
 */
import type { Model } from '../onnx/ir.js';

/** What kind of change a record describes. `skipped` = a node left untouched on purpose, with the reason. */
export type ChangeKind = 'removed' | 'fused' | 'folded' | 'added' | 'changed' | 'skipped';

/** One line of the change record: what a pass did (or deliberately did not do), and to which nodes. */
export interface ChangeRecord {
  pass: string;
  kind: ChangeKind;
  /** One readable sentence, e.g. "folded BatchNormalization bn1 into Conv conv1". */
  message: string;
  /** Node names concerned (removed, fused into, left untouched). */
  nodes?: string[];
  /** How many things this record counts (nodes, initializers, values), when it counts. */
  count?: number;
}

/** Options some passes read; every field has a documented default. */
export interface PassOptions {
  /** set-batch: a fixed batch size, or 'dynamic' (a symbolic dim named `batchDimName`). Default 'dynamic'. */
  batch?: number | 'dynamic';
  /** set-batch: the dim_param used for a dynamic batch. Default 'N'. */
  batchDimName?: string;
  /** fix-input-size: the H x W to fix on the image input. Required by that pass. */
  inputSize?: { height: number; width: number };
  /** update-opset: the target default-domain opset. Required by that pass. */
  opset?: number;
  /** set-metadata: metadata_props to set (lesionfuse.* keys are validated). Required by that pass. */
  metadata?: Record<string, string>;
  /**
   * fold-constants: largest folded tensor, in bytes, that may be materialised when it is bigger than the
   * constants it comes from (a Transpose of a weight is always folded; a ConstantOfShape that expands 8 bytes
   * into 40 MB is not). Default 4 MiB.
   */
  foldMaxBytes?: number;
  /**
   * fold-constants: also fold Cast-from-float16 and DequantizeLinear of initializers. Default false: those
   * are deliberate storage compression (fp16 weights, QDQ int8 weights) and folding them would undo it.
   */
  foldStorageCasts?: boolean;
  /** to-float16: op types kept in float32 (replaces the default block list when given). */
  float16BlockList?: string[];
  /** to-float16: node names kept in float32, in addition to the block list. */
  float16BlockNodes?: string[];
}

/** Per-run state shared by the passes of one `rewrite` call. */
export interface PassContext {
  options: PassOptions;
}

export interface PassResult {
  model: Model;
  changes: ChangeRecord[];
}

/**
 * A graph rewrite. `run` may edit `model` in place and return it (rewrite() hands each pass its own deep
 * copy), but must leave a model that is valid ONNX and computes the same outputs, within the pass's stated
 * numerical contract (exact up to float32 rounding for the float32 passes; float16 rounding for to-float16).
 */
export interface Pass {
  name: string;
  description: string;
  /** Whether the pass keeps outputs equal up to float32 rounding (checked by max |dp|), or needs a Dice-agreement check (float16). */
  precision: 'float32' | 'float16';
  /** Synchronous for pure graph edits; async for passes that evaluate with onnxruntime (fold-constants). */
  run(model: Model, ctx: PassContext): PassResult | Promise<PassResult>;
}
