/**
 * The training engine's entry point. A Trainer takes a TrainingModel (from
 * `buildTrainingModel`) and runs steps: each step is ONE onnxruntime run of
 * forward + loss + backward with the weights as inputs and the gradients as
 * outputs, followed by gradient clipping and AdamW in TypeScript. The session,
 * weights and optimizer live in a worker thread so the CLI's event loop (progress
 * bar, signals) stays responsive during a step.
 *
 * Deterministic on the CPU: the thread count of onnxruntime is fixed and all
 * randomness comes from the seeded `rng`, whose state is in every checkpoint;
 * a run resumed from a checkpoint reproduces the uninterrupted run bit for bit.
 *
 * @example
 * const tm = buildTrainingModel(forwardWithLoss, { loss: 'loss', shapes, outputs: ['logits'] });
 * const trainer = await Trainer.create(tm, { optimizer: { lr: 1e-3 }, schedule: { kind: 'cosine', warmupSteps: 100, totalSteps: 5000 }, clipNorm: 1 });
 * const r = await trainer.step({ image: { dims: [8, 3, 192, 256], data }, mask: { dims: [8, 1, 192, 256], data: m } });
 * await trainer.saveCheckpoint('run/last.ckpt');
 * const student = trainer.applyTo(forwardModel);   // forward model with the trained weights
 * await trainer.dispose();
 */
import { Worker } from 'node:worker_threads';
import type { Model } from '../../onnx/ir.js';
import { encodeModel } from '../../onnx/io.js';
import { LesionFuseError } from '../../util/errors.js';
import type { TrainingModel } from '../autodiff/backward.js';
import { loadCheckpoint, saveCheckpoint, type Checkpoint, type CheckpointTensor } from './checkpoint.js';
import { TrainerCore, type CoreOptions, type CoreSnapshot, type CoreSpec, type HostTensor, type StepResult } from './core.js';
import type { AdamWOptions } from './optim.js';
import { Rng } from './rng.js';
import type { LrSchedule } from './schedule.js';

export type { HostTensor, StepResult } from './core.js';

export interface TrainerOptions {
  /** AdamW hyper-parameters (defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on rank>=2 weights). */
  optimizer?: AdamWOptions;
  /** Learning-rate schedule (default constant). */
  schedule?: LrSchedule;
  /** Clip the global gradient norm to this value (default: no clipping). */
  clipNorm?: number;
  /** Seed of `trainer.rng` (default 0). */
  seed?: number;
  /** onnxruntime intra-op threads, fixed for determinism (default 2). */
  threads?: number;
  /** onnxruntime graph optimization level (default 'all'; the tests check results stay exact). */
  graphOptimizationLevel?: CoreOptions['graphOptimizationLevel'];
  /** Run the session in a worker thread (default true). false runs inline (tests, tools). */
  worker?: boolean;
  /** Initial parameter values (default: the forward model's initializers). */
  initial?: ReadonlyMap<string, Float32Array>;
  /** The run's configuration, stored in checkpoints and compared on resume (any JSON). */
  config?: unknown;
  /** Write onnxruntime's profiler JSON with this prefix (benchmarks). */
  profilePrefix?: string;
  /**
   * Let onnxruntime's intra-op threads spin while idle (onnxruntime's own default). Default false here:
   * the main thread decodes and augments the next batch while a step runs, and on a shared machine
   * spinning threads took the cores from everything else (steps 2-6x slower, reports/engine/README.md).
   */
  allowSpinning?: boolean;
}

/** Either the core in this thread or a proxy to it in a worker. */
interface CoreLink {
  call<T>(method: string, arg?: unknown): Promise<T>;
  close(): Promise<void>;
}

function inlineLink(core: TrainerCore): CoreLink {
  return {
    async call<T>(method: string, arg?: unknown): Promise<T> {
      switch (method) {
        case 'step':
          return (await core.step(arg as Record<string, HostTensor>)) as T;
        case 'evaluate':
          return (await core.evaluate(arg as Record<string, HostTensor>)) as T;
        case 'snapshot':
          return core.snapshot() as T;
        case 'restore':
          core.restore(arg as CoreSnapshot);
          return true as T;
        case 'endProfiling':
          return core.endProfiling() as T;
        case 'release':
          await core.release();
          return true as T;
      }
      throw new Error(`unknown method ${method}`);
    },
    async close() {},
  };
}

async function workerLink(spec: CoreSpec): Promise<CoreLink> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: spec });
  let next = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let dead: Error | undefined;
  worker.on('message', (m: { id: number; ok: boolean; value?: unknown; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(new LesionFuseError(`training step failed: ${m.error}`, { subject: 'engine' }));
  });
  const fail = (e: Error): void => {
    dead = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => {
    if (code !== 0) fail(new LesionFuseError(`training worker exited with code ${code}`, { subject: 'engine' }));
  });
  const link: CoreLink = {
    call<T>(method: string, arg?: unknown): Promise<T> {
      if (dead) return Promise.reject(dead);
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        worker.postMessage({ id, method, arg });
      });
    },
    async close() {
      await worker.terminate();
    },
  };
  await link.call('init');
  return link;
}

export class Trainer {
  /** The run's seeded PRNG, for shuffling and augmentation draws; saved in checkpoints. */
  rng: Rng;
  private lastStep = 0;

  private constructor(
    private readonly tm: TrainingModel,
    private readonly link: CoreLink,
    private readonly config: unknown,
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  /** Compile the training model into an onnxruntime session (in a worker unless `worker: false`). */
  static async create(tm: TrainingModel, opts: TrainerOptions = {}): Promise<Trainer> {
    const initial = opts.initial ?? tm.initial;
    const params = tm.params.map((p) => {
      const data = initial.get(p.name) ?? tm.initial.get(p.name);
      if (!data) throw new LesionFuseError(`no initial value for parameter '${p.name}'`, { subject: 'engine' });
      if (data.length !== p.dims.reduce((a, b) => a * b, 1)) {
        throw new LesionFuseError(`initial value of '${p.name}' has ${data.length} values, expected [${p.dims.join(',')}]`, { subject: 'engine' });
      }
      return { name: p.name, dims: p.dims, data: Float32Array.from(data) };
    });
    const spec: CoreSpec = {
      modelBytes: encodeModel(tm.model),
      loss: tm.loss,
      params,
      state: tm.state.map((s) => ({ name: s.name, dims: s.dims, data: Float32Array.from(s.initial) })),
      bnStats: tm.bnStats,
      outputs: tm.outputs,
      options: {
        optimizer: opts.optimizer ?? {},
        schedule: opts.schedule ?? { kind: 'constant' },
        clipNorm: opts.clipNorm,
        threads: opts.threads ?? 2,
        graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
        profilePrefix: opts.profilePrefix,
        allowSpinning: opts.allowSpinning ?? false,
      },
    };
    const link = opts.worker === false ? inlineLink(await TrainerCore.create(spec)) : await workerLink(spec);
    return new Trainer(tm, link, opts.config ?? null, opts.seed ?? 0);
  }

  /** Updates done so far. */
  get stepCount(): number {
    return this.lastStep;
  }

  /** One training step on a batch (the data inputs of the training model, by name). */
  async step(batch: Record<string, HostTensor>): Promise<StepResult> {
    for (const inp of this.tm.inputs) {
      const t = batch[inp.name];
      if (!t) throw new LesionFuseError(`batch has no '${inp.name}' (inputs: ${this.tm.inputs.map((i) => i.name).join(', ')})`, { subject: 'engine' });
      if (t.dims.length !== inp.dims.length || t.dims.some((d, i) => d !== inp.dims[i])) {
        throw new LesionFuseError(`batch '${inp.name}' has dims [${t.dims.join(',')}], the training model expects [${inp.dims.join(',')}]`, { subject: 'engine' });
      }
    }
    const r = await this.link.call<StepResult>('step', batch);
    this.lastStep = r.step;
    return r;
  }

  /** Loss and outputs on a batch without updating anything. */
  async evaluate(batch: Record<string, HostTensor>): Promise<{ loss: number; outputs: Record<string, HostTensor> }> {
    return this.link.call('evaluate', batch);
  }

  /** Current parameters and BatchNorm statistics, by initializer name. */
  async weights(): Promise<Map<string, Float32Array>> {
    const s = await this.link.call<CoreSnapshot>('snapshot');
    return new Map([...s.params, ...s.state].map((t) => [t.name, t.data]));
  }

  /** A copy of `forward` whose initializers hold the current weights and statistics (to write the trained model). */
  async applyTo(forward: Model): Promise<Model> {
    const w = await this.weights();
    const m: Model = structuredClone(forward);
    for (const t of m.graph.initializers) {
      const v = w.get(t.name);
      if (v) t.values = Float32Array.from(v);
    }
    return m;
  }

  /** Save weights, statistics, optimizer moments, step, RNG state and config to one file, atomically. */
  async saveCheckpoint(path: string, extra?: unknown): Promise<void> {
    const s = await this.link.call<CoreSnapshot>('snapshot');
    const group = (g: CheckpointTensor['group'], list: CoreSnapshot['params']): CheckpointTensor[] => list.map((t) => ({ group: g, ...t }));
    const ck: Checkpoint = {
      step: s.step,
      rng: this.rng.getState(),
      config: this.config,
      extra,
      tensors: [...group('param', s.params), ...group('state', s.state), ...group('adam_m', s.adamM), ...group('adam_v', s.adamV)],
    };
    await saveCheckpoint(path, ck);
  }

  /**
   * Restore from a checkpoint written by `saveCheckpoint` for the same model:
   * every parameter and statistic must be present with the same dims, and the
   * stored config must equal this run's (when `checkConfig`, default true).
   * Returns the checkpoint's `extra`.
   */
  async loadCheckpoint(path: string, opts: { checkConfig?: boolean } = {}): Promise<unknown> {
    const ck = await loadCheckpoint(path);
    if ((opts.checkConfig ?? true) && JSON.stringify(ck.config) !== JSON.stringify(this.config)) {
      throw new LesionFuseError('checkpoint was written with a different configuration; start a new run or pass the same options', { subject: path });
    }
    const byKey = new Map(ck.tensors.map((t) => [`${t.group}/${t.name}`, t]));
    const take = (g: CheckpointTensor['group'], list: { name: string; dims: number[] }[]) =>
      list.map((p) => {
        const t = byKey.get(`${g}/${p.name}`);
        if (!t) throw new LesionFuseError(`checkpoint has no ${g} '${p.name}' (written for another model?)`, { subject: path });
        if (t.dims.length !== p.dims.length || t.dims.some((d, i) => d !== p.dims[i])) {
          throw new LesionFuseError(`checkpoint ${g} '${p.name}' has dims [${t.dims.join(',')}], the model has [${p.dims.join(',')}]`, { subject: path });
        }
        return { name: p.name, dims: p.dims, data: t.data };
      });
    const snap: CoreSnapshot = {
      step: ck.step,
      params: take('param', this.tm.params),
      state: take('state', this.tm.state),
      adamM: take('adam_m', this.tm.params),
      adamV: take('adam_v', this.tm.params),
    };
    await this.link.call('restore', snap);
    this.rng = Rng.fromState(ck.rng);
    this.lastStep = ck.step;
    return ck.extra;
  }

  /** End onnxruntime profiling (when `profilePrefix` was set); returns the profile file. */
  async endProfiling(): Promise<string | undefined> {
    return this.link.call('endProfiling');
  }

  /** Release the session and stop the worker. */
  async dispose(): Promise<void> {
    try {
      await this.link.call('release');
    } finally {
      await this.link.close();
    }
  }
}
