/**
 * AdamW (decoupled weight decay, bias-corrected moments) and global-norm
 * gradient clipping, in TypeScript on Float32Arrays. Arithmetic per element is
 * done in float64 (JS numbers) and stored as float32, in the order PyTorch's
 * `torch.optim.AdamW` (foreach=False) uses, so loss curves can be compared.
 */

export interface AdamWOptions {
  /** Base learning rate (default 1e-3); the schedule scales it per step. */
  lr?: number;
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Added to the root of the second moment (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0.01, PyTorch's AdamW default). */
  weightDecay?: number;
  /**
   * Which parameters are decayed. Default: tensors of rank >= 2 (conv and
   * linear weights); biases and BatchNorm scale/shift (rank 1) are not, as is
   * usual for conv nets.
   */
  decay?: (name: string, dims: readonly number[]) => boolean;
}

export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export const defaultDecay = (_name: string, dims: readonly number[]): boolean => dims.length >= 2;

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decayOf: (name: string, dims: readonly number[]) => boolean;
  state: AdamWState = { step: 0, m: new Map(), v: new Map() };

  constructor(opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.decayOf = opts.decay ?? defaultDecay;
  }

  /**
   * One update of every parameter in place. `lr` is this step's learning rate
   * (from the schedule). Gradients must already be clipped.
   */
  step(params: ReadonlyMap<string, { data: Float32Array; dims: readonly number[] }>, grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    const st = this.state;
    st.step += 1;
    const t = st.step;
    const bc1 = 1 - Math.pow(this.beta1, t);
    const bc2 = 1 - Math.pow(this.beta2, t);
    const stepSize = lr / bc1;
    const bc2sqrt = Math.sqrt(bc2);
    const { beta1, beta2, eps } = this;
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      let m = st.m.get(name);
      let v = st.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.data.length);
        v = new Float32Array(p.data.length);
        st.m.set(name, m);
        st.v.set(name, v);
      }
      const decay = this.weightDecay > 0 && this.decayOf(name, p.dims) ? 1 - lr * this.weightDecay : 1;
      const w = p.data;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        const mi = (m[i] = beta1 * m[i]! + (1 - beta1) * gi);
        const vi = (v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi);
        w[i] = w[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2sqrt + eps);
      }
    }
  }
}

/**
 * Scale all gradients in place so that their global L2 norm is at most
 * `maxNorm` (as torch.nn.utils.clip_grad_norm_: factor maxNorm / (norm + 1e-6),
 * applied only when below 1). Returns the norm before clipping.
 */
export function clipGradNorm(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  let sq = 0;
  for (const g of list) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of list) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  return norm;
}
