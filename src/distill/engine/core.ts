/**
 * The part of the trainer that owns the onnxruntime session, the weights and
 * the optimizer. It runs inside the worker thread (or inline, for tests and
 * tools that want no thread): weights never cross threads during training,
 * only batches in and scalars out.
 *
 * Weights are held in Float32Arrays wrapped once in ort Tensors; AdamW updates
 * the arrays in place, so each step feeds the same Tensor objects (no copy of
 * the weights per step on the JS side).
 */
import * as ort from '../../util/ort.js';
import { AdamW, clipGradNorm, type AdamWOptions } from './optim.js';
import { learningRateAt, type LrSchedule } from './schedule.js';

/** A dense float32 tensor crossing the thread boundary. */
export interface HostTensor {
  dims: number[];
  data: Float32Array;
}

/** Everything the core needs, as structured-clonable data. */
export interface CoreSpec {
  modelBytes: Uint8Array;
  loss: string;
  params: { name: string; dims: number[]; data: Float32Array }[];
  state: { name: string; dims: number[]; data: Float32Array }[];
  bnStats: { param: string; update: string }[];
  /** Extra forward outputs returned each step. */
  outputs: string[];
  options: CoreOptions;
}

export interface CoreOptions {
  optimizer: AdamWOptions;
  schedule: LrSchedule;
  /** Global-norm clipping threshold; 0 or undefined = no clipping. */
  clipNorm?: number;
  /** intra-op threads of onnxruntime (fixed, for determinism). */
  threads: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write onnxruntime's profiler JSON with this file prefix. */
  profilePrefix?: string;
  /**
   * Let onnxruntime's intra-op threads spin while waiting (onnxruntime's default, true). On a machine
   * shared with other work, spinning threads steal the cores the others need; false waits passively.
   */
  allowSpinning?: boolean;
}

export interface StepResult {
  /** Number of updates done, including this one. */
  step: number;
  loss: number;
  /** Learning rate used by this update. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The requested forward outputs of this step. */
  outputs: Record<string, HostTensor>;
  /** Wall time of the onnxruntime run and of the optimizer, ms. */
  runMs: number;
  optimMs: number;
}

export interface CoreSnapshot {
  step: number;
  params: { name: string; dims: number[]; data: Float32Array }[];
  state: { name: string; dims: number[]; data: Float32Array }[];
  adamM: { name: string; dims: number[]; data: Float32Array }[];
  adamV: { name: string; dims: number[]; data: Float32Array }[];
}

export class TrainerCore {
  private session!: ort.InferenceSession;
  private readonly opt: AdamW;
  private readonly params = new Map<string, { data: Float32Array; dims: number[]; tensor: ort.Tensor }>();
  private readonly state = new Map<string, { data: Float32Array; dims: number[]; tensor: ort.Tensor }>();
  private readonly gradNames = new Map<string, string>();

  private constructor(private readonly spec: CoreSpec) {
    this.opt = new AdamW(spec.options.optimizer);
    for (const p of spec.params) {
      const data = Float32Array.from(p.data);
      this.params.set(p.name, { data, dims: p.dims, tensor: new ort.Tensor('float32', data, p.dims) });
      this.gradNames.set(p.name, `grad:${p.name}`);
    }
    for (const s of spec.state) {
      const data = Float32Array.from(s.data);
      this.state.set(s.name, { data, dims: s.dims, tensor: new ort.Tensor('float32', data, s.dims) });
    }
  }

  static async create(spec: CoreSpec): Promise<TrainerCore> {
    const core = new TrainerCore(spec);
    const o = spec.options;
    core.session = await ort.InferenceSession.create(spec.modelBytes, {
      intraOpNumThreads: o.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: o.graphOptimizationLevel,
      enableProfiling: !!o.profilePrefix,
      profileFilePrefix: o.profilePrefix,
      ...(o.allowSpinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    });
    return core;
  }

  /** One training step: one session run (forward + loss + backward), clipping, AdamW. */
  async step(batch: Record<string, HostTensor>): Promise<StepResult> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(batch)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
    for (const [name, p] of this.params) feeds[name] = p.tensor;
    for (const [name, s] of this.state) feeds[name] = s.tensor;
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    const t1 = performance.now();
    const grads = new Map<string, Float32Array>();
    for (const [name, g] of this.gradNames) grads.set(name, out[g]!.data as Float32Array);
    const o = this.spec.options;
    const gradNorm = o.clipNorm && o.clipNorm > 0 ? clipGradNorm(grads.values(), o.clipNorm) : clipGradNorm(grads.values(), Infinity);
    const lr = learningRateAt(o.schedule, this.opt.lr, this.opt.state.step);
    this.opt.step(this.params, grads, lr);
    for (const s of this.spec.bnStats) this.state.get(s.param)!.data.set(out[s.update]!.data as Float32Array);
    const t2 = performance.now();
    const outputs: Record<string, HostTensor> = {};
    for (const name of this.spec.outputs) outputs[name] = { dims: [...out[name]!.dims], data: out[name]!.data as Float32Array };
    return {
      step: this.opt.state.step,
      loss: (out[this.spec.loss]!.data as Float32Array)[0]!,
      lr,
      gradNorm,
      outputs,
      runMs: t1 - t0,
      optimMs: t2 - t1,
    };
  }

  /** Loss and requested outputs without an update (validation). BatchNorm still uses batch statistics. */
  async evaluate(batch: Record<string, HostTensor>): Promise<{ loss: number; outputs: Record<string, HostTensor> }> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(batch)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
    for (const [name, p] of this.params) feeds[name] = p.tensor;
    for (const [name, s] of this.state) feeds[name] = s.tensor;
    const out = await this.session.run(feeds, [this.spec.loss, ...this.spec.outputs]);
    const outputs: Record<string, HostTensor> = {};
    for (const name of this.spec.outputs) outputs[name] = { dims: [...out[name]!.dims], data: out[name]!.data as Float32Array };
    return { loss: (out[this.spec.loss]!.data as Float32Array)[0]!, outputs };
  }

  snapshot(): CoreSnapshot {
    const list = (m: Map<string, { data: Float32Array; dims: number[] }>) => [...m].map(([name, v]) => ({ name, dims: v.dims, data: Float32Array.from(v.data) }));
    const moments = (which: 'm' | 'v') =>
      [...this.params].map(([name, p]) => ({ name, dims: p.dims, data: Float32Array.from(this.opt.state[which].get(name) ?? new Float32Array(p.data.length)) }));
    return { step: this.opt.state.step, params: list(this.params), state: list(this.state), adamM: moments('m'), adamV: moments('v') };
  }

  /** Restore weights, statistics and optimizer state (names and sizes checked by the caller). */
  restore(s: CoreSnapshot): void {
    for (const p of s.params) this.params.get(p.name)!.data.set(p.data);
    for (const p of s.state) this.state.get(p.name)!.data.set(p.data);
    this.opt.state = {
      step: s.step,
      m: new Map(s.adamM.map((t) => [t.name, Float32Array.from(t.data)])),
      v: new Map(s.adamV.map((t) => [t.name, Float32Array.from(t.data)])),
    };
  }

  /** Ends profiling (when on) and returns the profile file name. */
  endProfiling(): string | undefined {
    if (!this.spec.options.profilePrefix) return undefined;
    return (this.session as unknown as { endProfiling(): string | void }).endProfiling() || undefined;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
