/**
 * The one place where the distillation loop meets the training engine (src/distill/autodiff and
 * src/distill/engine): build the training model from the student + losses, run steps, hand back the
 * trained values, and save/load checkpoints. Keeping this narrow lets the loop in distill.ts read as the
 * recipe, and lets the engine change its internals (worker thread, optimizer details) in one place.
 */
import { buildTrainingModel } from './autodiff/backward.js';
import { probeShapes } from './autodiff/shapes.js';
import { Trainer } from './engine/trainer.js';
import type { Model } from '../onnx/ir.js';

export interface EngineSpec {
  /** Student forward + losses, with static shapes (fixed batch). */
  lossModel: Model;
  loss: string;
  /** Initializers to train. */
  params: string[];
  /** Scalar outputs to report each step (the loss terms). */
  monitor: string[];
  batch: number;
  height: number;
  width: number;
  /** Peak learning rate, decoupled weight decay. */
  lr: number;
  weightDecay: number;
  /** Steps of the whole run (cosine schedule length) and of the linear warm-up. */
  totalSteps: number;
  warmupSteps: number;
  /** Global gradient-norm clip (default 5: only catches spikes). */
  clipNorm?: number;
  seed: number;
  threads: number;
  /** A JSON description of the run, stored in checkpoints and compared on resume. */
  config: unknown;
  /** Run the steps in a worker thread so progress bars and signals stay live (default true). */
  worker?: boolean;
}

export interface EngineStep {
  loss: number;
  /** The monitored scalars of this step. */
  monitor: Record<string, number>;
  lr: number;
  gradNorm: number;
}

export interface EngineHandle {
  /** One optimizer step on a batch (`image` [B,3,H,W], `mask` [B,1,H,W], `teacher_logits` [B,1,H,W] with KD). */
  step(feeds: Record<string, Float32Array>): Promise<EngineStep>;
  /** Current values of the parameters and BatchNorm running statistics, by initializer name. */
  values(): Promise<Map<string, Float32Array>>;
  /** Learning rate of the last step. */
  currentLr(): number;
  /** Write a checkpoint (atomic) with `extra` (the loop's own state). */
  save(path: string, extra: unknown): Promise<void>;
  /** Restore from a checkpoint written by `save`; returns its `extra`. Refuses a checkpoint of another run. */
  load(path: string): Promise<unknown>;
  close(): Promise<void>;
}

function dimsFor(name: string, spec: EngineSpec): number[] {
  if (name === 'image') return [spec.batch, 3, spec.height, spec.width];
  return [spec.batch, 1, spec.height, spec.width];
}

/** Build the training model for `spec` and start the engine on it (in a worker thread unless `worker: false`). */
export async function createEngine(spec: EngineSpec): Promise<EngineHandle> {
  const shapes = await probeShapes(spec.lossModel);
  const tm = buildTrainingModel(spec.lossModel, { loss: spec.loss, params: spec.params, shapes, outputs: spec.monitor });
  const trainer = await Trainer.create(tm, {
    optimizer: { lr: spec.lr, weightDecay: spec.weightDecay },
    schedule: { kind: 'cosine', warmupSteps: spec.warmupSteps, totalSteps: spec.totalSteps, minLr: spec.lr * 0.05 },
    clipNorm: spec.clipNorm ?? 5,
    threads: spec.threads,
    seed: spec.seed,
    config: spec.config,
    worker: spec.worker ?? true,
  });
  let lastLr = 0;
  return {
    async step(feeds) {
      const batch: Record<string, { dims: number[]; data: Float32Array }> = {};
      for (const [k, v] of Object.entries(feeds)) batch[k] = { dims: dimsFor(k, spec), data: v };
      const r = await trainer.step(batch);
      lastLr = r.lr;
      const monitor: Record<string, number> = {};
      for (const [k, t] of Object.entries(r.outputs)) monitor[k] = t.data[0]!;
      return { loss: r.loss, monitor, lr: r.lr, gradNorm: r.gradNorm };
    },
    values: () => trainer.weights(),
    currentLr: () => lastLr,
    save: (path, extra) => trainer.saveCheckpoint(path, extra),
    load: (path) => trainer.loadCheckpoint(path),
    close: () => trainer.dispose(),
  };
}
