/**
 * The one place where the distillation loop meets the training engine (src/distill/autodiff and
 * src/distill/engine): build the training model from the student + losses, run steps, hand back the
 * trained values, and save/load checkpoints. Keeping this narrow lets the loop in distill.ts read as the
 * recipe, and lets the engine change its internals (worker thread, optimizer details) in one place.
 */
import { buildTrainingModel } from './autodiff/backward.js';
import { probeShapes } from './autodiff/shapes.js';
import { TrainerCore, type CoreSnapshot } from './engine/core.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointTensor, type TensorGroup } from './engine/checkpoint.js';
import { encodeModel } from '../onnx/io.js';
import type { Model } from '../onnx/ir.js';
import { LesionFuseError } from '../util/errors.js';

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
  values(): Map<string, Float32Array>;
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

const GROUP_OF: Record<keyof Omit<CoreSnapshot, 'step'>, TensorGroup> = { params: 'param', state: 'state', adamM: 'adam_m', adamV: 'adam_v' };

/** Build the training model for `spec` and start the engine on it. */
export async function createEngine(spec: EngineSpec): Promise<EngineHandle> {
  const shapes = await probeShapes(spec.lossModel);
  const tm = buildTrainingModel(spec.lossModel, { loss: spec.loss, params: spec.params, shapes, outputs: spec.monitor });
  const core = await TrainerCore.create({
    modelBytes: encodeModel(tm.model),
    loss: tm.loss,
    params: tm.params.map((p) => ({ name: p.name, dims: p.dims, data: tm.initial.get(p.name)! })),
    state: tm.state.map((s) => ({ name: s.name, dims: s.dims, data: s.initial })),
    bnStats: tm.bnStats,
    outputs: tm.outputs,
    options: {
      optimizer: { lr: spec.lr, weightDecay: spec.weightDecay },
      schedule: { kind: 'cosine', warmupSteps: spec.warmupSteps, totalSteps: spec.totalSteps, minLr: spec.lr * 0.05 },
      clipNorm: spec.clipNorm ?? 5,
      threads: spec.threads,
      graphOptimizationLevel: 'all',
    },
  });
  let lastLr = 0;
  const dataInputs = new Set(tm.inputs.map((i) => i.name));
  return {
    async step(feeds) {
      for (const k of Object.keys(feeds)) if (!dataInputs.has(k)) throw new LesionFuseError(`the training graph has no input '${k}'`);
      const batch: Record<string, { dims: number[]; data: Float32Array }> = {};
      for (const [k, v] of Object.entries(feeds)) batch[k] = { dims: dimsFor(k, spec), data: v };
      const r = await core.step(batch);
      lastLr = r.lr;
      const monitor: Record<string, number> = {};
      for (const [k, t] of Object.entries(r.outputs)) monitor[k] = t.data[0]!;
      return { loss: r.loss, monitor, lr: r.lr, gradNorm: r.gradNorm };
    },
    values() {
      const snap = core.snapshot();
      const m = new Map<string, Float32Array>();
      for (const t of [...snap.params, ...snap.state]) m.set(t.name, t.data);
      return m;
    },
    currentLr: () => lastLr,
    async save(path, extra) {
      const snap = core.snapshot();
      const tensors: CheckpointTensor[] = [];
      for (const key of ['params', 'state', 'adamM', 'adamV'] as const) {
        for (const t of snap[key]) tensors.push({ group: GROUP_OF[key], name: t.name, dims: t.dims, data: t.data });
      }
      // Shuffles and augmentation derive from (seed, epoch, batch), so the engine's RNG is not used: store its seed state.
      await saveCheckpoint(path, { step: snap.step, rng: { s: [spec.seed >>> 0, 0, 0, 1], spare: null }, config: spec.config, extra, tensors });
    },
    async load(path) {
      const ck = await loadCheckpoint(path);
      if (JSON.stringify(ck.config) !== JSON.stringify(spec.config)) {
        throw new LesionFuseError(`the checkpoint was written by a run with other settings (${JSON.stringify(ck.config)}); resume with the same options`, { subject: path });
      }
      const pick = (g: TensorGroup) => ck.tensors.filter((t) => t.group === g).map((t) => ({ name: t.name, dims: t.dims, data: t.data }));
      const current = core.snapshot();
      const expect = new Map([...current.params, ...current.state].map((t) => [t.name, t.data.length]));
      for (const t of [...pick('param'), ...pick('state')]) {
        if (expect.get(t.name) !== t.data.length) throw new LesionFuseError(`tensor '${t.name}' does not match the student`, { subject: path });
        expect.delete(t.name);
      }
      if (expect.size > 0) throw new LesionFuseError(`the checkpoint lacks ${[...expect.keys()].slice(0, 3).join(', ')}`, { subject: path });
      core.restore({ step: ck.step, params: pick('param'), state: pick('state'), adamM: pick('adam_m'), adamV: pick('adam_v') });
      return ck.extra;
    },
    async close() {
      await core.release();
    },
  };
}
