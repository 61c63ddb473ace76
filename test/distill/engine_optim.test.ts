import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, clipGradNorm } from '../../src/distill/engine/optim.js';
import { learningRateAt } from '../../src/distill/engine/schedule.js';
import { Rng } from '../../src/distill/engine/rng.js';
import { kaimingNormal, kaimingUniform } from '../../src/distill/engine/init.js';

const close = (a: number, b: number, tol: number, what: string): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('AdamW matches a hand computation (textbook form), with decoupled decay on weights only', () => {
  const lr = 0.1;
  const [b1, b2, eps, wd] = [0.9, 0.999, 1e-8, 0.1];
  const opt = new AdamW({ lr, beta1: b1, beta2: b2, eps, weightDecay: wd });
  const w = { data: Float32Array.from([1, -2]), dims: [1, 2] };
  const bias = { data: Float32Array.from([1]), dims: [1] };
  const params = new Map([
    ['w', w],
    ['b', bias],
  ]);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * sign(g) (up to eps); decay multiplies by 1 - lr*wd first.
  opt.step(params, new Map([['w', Float32Array.from([0.5, -0.1])], ['b', Float32Array.from([0.5])]]), lr);
  close(w.data[0]!, 0.89, 1e-6, 'w[0] after step 1');
  close(w.data[1]!, -1.88, 1e-6, 'w[1] after step 1');
  close(bias.data[0]!, 0.9, 1e-6, 'bias (not decayed) after step 1');
  // Step 2, textbook: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p = p(1 - lr wd) - lr m/(1-b1^2) / (sqrt(v/(1-b2^2)) + eps).
  const g1 = [0.5, -0.1];
  const g2 = [0.2, 0.3];
  const expect = [0.89, -1.88].map((p, i) => {
    const m = b1 * (1 - b1) * g1[i]! + (1 - b1) * g2[i]!;
    const v = b2 * (1 - b2) * g1[i]! ** 2 + (1 - b2) * g2[i]! ** 2;
    return p * (1 - lr * wd) - (lr * (m / (1 - b1 ** 2))) / (Math.sqrt(v / (1 - b2 ** 2)) + eps);
  });
  opt.step(params, new Map([['w', Float32Array.from(g2)]]), lr);
  close(w.data[0]!, expect[0]!, 2e-6, 'w[0] after step 2');
  close(w.data[1]!, expect[1]!, 2e-6, 'w[1] after step 2');
  close(bias.data[0]!, 0.9, 1e-7, 'bias without a gradient is left alone');
  assert.equal(opt.state.step, 2);
});

test('global-norm clipping scales all gradients together, only when above the threshold', () => {
  const a = Float32Array.from([3, 4]);
  const b = Float32Array.from([12]);
  const norm = clipGradNorm([a, b], 1.3);
  close(norm, 13, 1e-9, 'norm before clipping');
  close(a[0]!, 0.3, 1e-6, 'a[0]');
  close(a[1]!, 0.4, 1e-6, 'a[1]');
  close(b[0]!, 1.2, 1e-6, 'b[0]');
  const c = Float32Array.from([0.1, 0.2]);
  clipGradNorm([c], 1);
  assert.deepEqual(Array.from(c), [Math.fround(0.1), Math.fround(0.2)]);
});

test('warm-up + cosine and constant schedules', () => {
  const s = { kind: 'cosine' as const, warmupSteps: 4, totalSteps: 14, minLr: 0.1 };
  const lrs = [0, 1, 2, 3].map((t) => learningRateAt(s, 1, t));
  assert.deepEqual(lrs, [0.25, 0.5, 0.75, 1]);
  close(learningRateAt(s, 1, 4), 1, 1e-12, 'start of cosine');
  close(learningRateAt(s, 1, 9), 0.55, 1e-12, 'half way: (1 + 0.1) / 2');
  close(learningRateAt(s, 1, 14), 0.1, 1e-12, 'end');
  close(learningRateAt(s, 1, 99), 0.1, 1e-12, 'after the end');
  assert.equal(learningRateAt({ kind: 'constant' }, 0.3, 1000), 0.3);
});

test('seeded PRNG: reproducible, state round trip, sane distributions', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextU32()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => new Rng(43).nextU32()));
  a.normal();
  const c = Rng.fromState(a.getState());
  assert.deepEqual([a.normal(), a.uniform(), a.int(10)], [c.normal(), c.uniform(), c.int(10)]);
  const r = new Rng(1);
  let s = 0;
  let s2 = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const v = r.normal();
    s += v;
    s2 += v * v;
  }
  close(s / n, 0, 0.03, 'normal mean');
  close(s2 / n, 1, 0.04, 'normal variance');
  const p = new Rng(3).permutation(50);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
});

test('Kaiming init has the He standard deviation and bound', () => {
  const dims = [64, 16, 3, 3];
  const w = kaimingNormal(new Rng(5), dims);
  let s2 = 0;
  for (const v of w) s2 += v * v;
  close(Math.sqrt(s2 / w.length), Math.sqrt(2 / (16 * 9)), 0.005, 'normal std');
  const u = kaimingUniform(new Rng(5), dims, { mode: 'fan_out' });
  const bound = Math.sqrt(2) * Math.sqrt(3 / (64 * 9));
  assert.ok(u.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...u) > 0.95 * bound);
  assert.deepEqual(kaimingNormal(new Rng(5), dims), w);
});
