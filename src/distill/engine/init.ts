/**
 * Seeded weight initialisation (He/Kaiming), for students built from scratch.
 * Fan computation follows PyTorch (`torch.nn.init._calculate_fan_in_and_fan_out`):
 * fan_in = dims[1] * prod(dims[2:]), fan_out = dims[0] * prod(dims[2:]).
 */
import { Rng } from './rng.js';

export interface KaimingOptions {
  /** 'fan_in' (default) keeps forward activations' variance; 'fan_out' the gradients'. */
  mode?: 'fan_in' | 'fan_out';
  /** Negative slope of the following LeakyRelu (0 for Relu, the default). */
  negativeSlope?: number;
}

function fan(dims: readonly number[], mode: 'fan_in' | 'fan_out'): number {
  if (dims.length < 2) throw new Error(`Kaiming init needs a tensor of rank >= 2, got [${dims.join(',')}]`);
  let rf = 1;
  for (let i = 2; i < dims.length; i++) rf *= dims[i]!;
  return (mode === 'fan_in' ? dims[1]! : dims[0]!) * rf;
}

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** N(0, gain^2 / fan), gain = sqrt(2 / (1 + a^2)). */
export function kaimingNormal(rng: Rng, dims: readonly number[], opts: KaimingOptions = {}): Float32Array {
  const a = opts.negativeSlope ?? 0;
  const std = Math.sqrt(2 / (1 + a * a)) / Math.sqrt(fan(dims, opts.mode ?? 'fan_in'));
  const out = new Float32Array(count(dims));
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
  return out;
}

/** U(-b, b), b = gain * sqrt(3 / fan). */
export function kaimingUniform(rng: Rng, dims: readonly number[], opts: KaimingOptions = {}): Float32Array {
  const a = opts.negativeSlope ?? 0;
  const bound = Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fan(dims, opts.mode ?? 'fan_in'));
  const out = new Float32Array(count(dims));
  for (let i = 0; i < out.length; i++) out[i] = (rng.uniform() * 2 - 1) * bound;
  return out;
}
