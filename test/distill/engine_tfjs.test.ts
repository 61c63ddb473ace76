/**
 * The optional tfjs backend. tfjs-node cannot be installed here (it downloads
 * libtensorflow), so its code path is driven by a small fake implementing the
 * tfjs functions the backend calls, in float64 with naive loops and
 * `variableGrads` by central finite differences. The backend's loss and
 * gradients on a small U-Net-like graph (Conv, BN, ReLU, MaxPool, nearest
 * Resize, Concat, bias, Sigmoid, MSE) must equal the ONNX engine's
 * (onnxruntime) ones: this checks the NCHW->NHWC mapping and every weight
 * transpose. A real tfjs install is checked for availability only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as ort from '../../src/util/ort.js';
import { DataType } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { TfjsGraphTrainer, tfjsBackendAvailability, type TfLike, type TfTensor, type TfVariable } from '../../src/distill/backends/tfjs.js';
import { buildTrainingModel } from '../../src/distill/autodiff/backward.js';
import { probeShapes } from '../../src/distill/autodiff/shapes.js';
import { Rng } from '../../src/distill/engine/rng.js';
import { A, f32Init, makeModel, node, randTensor } from './autodiff_util.js';

class FT implements TfTensor {
  constructor(
    public shape: number[],
    public data: Float64Array,
  ) {}
  dataSync(): Float32Array {
    return Float32Array.from(this.data);
  }
  dispose(): void {}
}
class FV extends FT implements TfVariable {
  constructor(
    t: FT,
    public name: string,
  ) {
    super(t.shape.slice(), Float64Array.from(t.data));
  }
  assign(t: TfTensor): void {
    this.data = Float64Array.from((t as FT).data);
  }
}

const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);
const strides = (s: number[]): number[] => s.map((_, i) => size(s.slice(i + 1)));
const idx = (i: number, s: number[]): number[] => {
  const st = strides(s);
  return s.map((_, k) => Math.floor(i / st[k]!) % s[k]!);
};
function broadcast(a: FT, b: FT, f: (x: number, y: number) => number): FT {
  const r = Math.max(a.shape.length, b.shape.length);
  const pa = [...new Array(r - a.shape.length).fill(1), ...a.shape];
  const pb = [...new Array(r - b.shape.length).fill(1), ...b.shape];
  const s = pa.map((d, i) => Math.max(d, pb[i]!));
  const out = new Float64Array(size(s));
  const sa = strides(pa);
  const sb = strides(pb);
  for (let i = 0; i < out.length; i++) {
    const ix = idx(i, s);
    let ia = 0;
    let ib = 0;
    ix.forEach((v, k) => {
      ia += (pa[k] === 1 ? 0 : v) * sa[k]!;
      ib += (pb[k] === 1 ? 0 : v) * sb[k]!;
    });
    out[i] = f(a.data[ia]!, b.data[ib]!);
  }
  return new FT(s, out);
}
const map = (a: FT, f: (x: number) => number): FT => new FT(a.shape.slice(), a.data.map(f));
function reduce(a: FT, axes: number[] | undefined, keep: boolean, mean: boolean): FT {
  const ax = axes ?? a.shape.map((_, i) => i);
  const s = a.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const out = new Float64Array(size(s));
  const so = strides(s);
  for (let i = 0; i < a.data.length; i++) {
    const ix = idx(i, a.shape);
    let o = 0;
    ix.forEach((v, k) => (o += (ax.includes(k) ? 0 : v) * so[k]!));
    out[o] += a.data[i]!;
  }
  const count = size(ax.map((k) => a.shape[k]!));
  if (mean) out.forEach((v, i) => (out[i] = v / count));
  return new FT(keep ? s : a.shape.filter((_, i) => !ax.includes(i)), out);
}

/** Only what TfjsGraphTrainer calls for the test graph; anything else throws. */
function fakeTf(): TfLike {
  const vars: FV[] = [];
  const tf = {
    tensor: (v: Float32Array, s: number[]) => new FT(s.slice(), Float64Array.from(v)),
    variable: (t: TfTensor, _tr?: boolean, name?: string) => {
      const v = new FV(t as FT, name ?? `v${vars.length}`);
      vars.push(v);
      return v;
    },
    tidy: <T>(fn: () => T): T => fn(),
    variableGrads(f: () => TfTensor, list?: TfVariable[]) {
      const value = f() as FT;
      const grads: Record<string, TfTensor> = {};
      for (const v of (list ?? vars) as FV[]) {
        const g = new Float64Array(v.data.length);
        for (let i = 0; i < g.length; i++) {
          const o = v.data[i]!;
          const h = 1e-5;
          v.data[i] = o + h;
          const up = (f() as FT).data[0]!;
          v.data[i] = o - h;
          const dn = (f() as FT).data[0]!;
          v.data[i] = o;
          g[i] = (up - dn) / (2 * h);
        }
        grads[v.name] = new FT(v.shape.slice(), g);
      }
      return { value, grads };
    },
    transpose(x: TfTensor, perm: number[]) {
      const a = x as FT;
      const s = perm.map((p) => a.shape[p]!);
      const out = new Float64Array(a.data.length);
      const sa = strides(a.shape);
      for (let i = 0; i < out.length; i++) {
        const ix = idx(i, s);
        let j = 0;
        perm.forEach((p, k) => (j += ix[k]! * sa[p]!));
        out[i] = a.data[j]!;
      }
      return new FT(s, out);
    },
    reshape: (x: TfTensor, s: number[]) => new FT(s.slice(), (x as FT).data),
    conv2d(x: TfTensor, f: TfTensor, st: [number, number], pad: unknown, _df: 'NHWC', dil: [number, number]) {
      const a = x as FT;
      const w = f as FT;
      const [n, h, wd, c] = a.shape as [number, number, number, number];
      const [kh, kw, , m] = w.shape as [number, number, number, number];
      const p = pad === 'valid' ? [[0, 0], [0, 0], [0, 0], [0, 0]] : (pad as number[][]);
      const oh = Math.floor((h + p[1]![0]! + p[1]![1]! - dil[0] * (kh - 1) - 1) / st[0]) + 1;
      const ow = Math.floor((wd + p[2]![0]! + p[2]![1]! - dil[1] * (kw - 1) - 1) / st[1]) + 1;
      const out = new Float64Array(n * oh * ow * m);
      for (let b = 0; b < n; b++)
        for (let y = 0; y < oh; y++)
          for (let xx = 0; xx < ow; xx++)
            for (let o = 0; o < m; o++) {
              let acc = 0;
              for (let i = 0; i < kh; i++)
                for (let j = 0; j < kw; j++) {
                  const iy = y * st[0] + i * dil[0] - p[1]![0]!;
                  const ix = xx * st[1] + j * dil[1] - p[2]![0]!;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                  for (let ci = 0; ci < c; ci++) acc += a.data[((b * h + iy) * wd + ix) * c + ci]! * w.data[((i * kw + j) * c + ci) * m + o]!;
                }
              out[((b * oh + y) * ow + xx) * m + o] = acc;
            }
      return new FT([n, oh, ow, m], out);
    },
    add: (a: TfTensor, b: TfTensor) => broadcast(a as FT, b as FT, (x, y) => x + y),
    sub: (a: TfTensor, b: TfTensor) => broadcast(a as FT, b as FT, (x, y) => x - y),
    mul: (a: TfTensor, b: TfTensor) => broadcast(a as FT, b as FT, (x, y) => x * y),
    relu: (a: TfTensor) => map(a as FT, (x) => Math.max(0, x)),
    sigmoid: (a: TfTensor) => map(a as FT, (x) => 1 / (1 + Math.exp(-x))),
    maxPool(x: TfTensor, k: [number, number], st: [number, number]) {
      const a = x as FT;
      const [n, h, w, c] = a.shape as [number, number, number, number];
      const oh = Math.floor((h - k[0]) / st[0]) + 1;
      const ow = Math.floor((w - k[1]) / st[1]) + 1;
      const out = new Float64Array(n * oh * ow * c).fill(-Infinity);
      for (let b = 0; b < n; b++)
        for (let y = 0; y < oh; y++)
          for (let xx = 0; xx < ow; xx++)
            for (let ch = 0; ch < c; ch++)
              for (let i = 0; i < k[0]; i++)
                for (let j = 0; j < k[1]; j++) {
                  const o = ((b * oh + y) * ow + xx) * c + ch;
                  out[o] = Math.max(out[o]!, a.data[((b * h + y * st[0] + i) * w + xx * st[1] + j) * c + ch]!);
                }
      return new FT([n, oh, ow, c], out);
    },
    moments(x: TfTensor, axes: number[]) {
      const mean = reduce(x as FT, axes, false, true);
      const d = broadcast(x as FT, mean, (p, q) => (p - q) * (p - q));
      return { mean, variance: reduce(d, axes, false, true) };
    },
    batchNorm(x: TfTensor, mean: TfTensor, variance: TfTensor, offset: TfTensor, scale: TfTensor, eps: number) {
      const inv = map(variance as FT, (v) => 1 / Math.sqrt(v + eps));
      const xc = broadcast(x as FT, mean as FT, (p, q) => p - q);
      return broadcast(broadcast(broadcast(xc, inv, (p, q) => p * q), scale as FT, (p, q) => p * q), offset as FT, (p, q) => p + q);
    },
    concat(xs: TfTensor[], axis: number) {
      const fs = xs as FT[];
      const s = fs[0]!.shape.slice();
      s[axis] = fs.reduce((acc, f) => acc + f.shape[axis]!, 0);
      const out = new Float64Array(size(s));
      for (let i = 0; i < out.length; i++) {
        const ix = idx(i, s);
        let a = ix[axis]!;
        let k = 0;
        while (a >= fs[k]!.shape[axis]!) a -= fs[k++]!.shape[axis]!;
        const src = ix.slice();
        src[axis] = a;
        out[i] = fs[k]!.data[src.reduce((acc, v, d) => acc + v * strides(fs[k]!.shape)[d]!, 0)]!;
      }
      return new FT(s, out);
    },
    mean: (x: TfTensor, axes?: number[], keep?: boolean) => reduce(x as FT, axes, !!keep, true),
    sum: (x: TfTensor, axes?: number[], keep?: boolean) => reduce(x as FT, axes, !!keep, false),
    image: {
      resizeNearestNeighbor(x: TfTensor, sz: [number, number], alignCorners?: boolean, halfPixel?: boolean) {
        assert.equal(!!alignCorners || !!halfPixel, false);
        const a = x as FT;
        const [n, h, w, c] = a.shape as [number, number, number, number];
        const out = new Float64Array(n * sz[0] * sz[1] * c);
        for (let i = 0; i < out.length; i++) {
          const [b, y, xx, ch] = idx(i, [n, sz[0], sz[1], c]) as [number, number, number, number];
          out[i] = a.data[((b * h + Math.floor((y * h) / sz[0])) * w + Math.floor((xx * w) / sz[1])) * c + ch]!;
        }
        return new FT([n, sz[0], sz[1], c], out);
      },
    },
  };
  return new Proxy(tf, {
    get(target, prop) {
      if (prop in target) return (target as Record<string | symbol, unknown>)[prop];
      throw new Error(`fake tfjs: ${String(prop)} is not implemented`);
    },
  }) as unknown as TfLike;
}

test('tfjs backend (driven by a fake tfjs) gives the ONNX engine\'s loss and gradients', async () => {
  const rng = new Rng(31);
  const [N, H, W] = [2, 4, 4];
  const inits = [
    randTensor(rng, 'w1', [2, 3, 3, 3], 0.4),
    randTensor(rng, 'g1', [2], 0.2),
    randTensor(rng, 'b1', [2], 0.1),
    f32Init('m1', [0, 0]),
    f32Init('v1', [1, 1]),
    randTensor(rng, 'w2', [3, 2, 3, 3], 0.3),
    randTensor(rng, 'b2', [3], 0.1),
    randTensor(rng, 'w3', [1, 5, 1, 1], 0.5),
    randTensor(rng, 'b3', [1], 0.1),
    f32Init('scales', [1, 1, 2, 2]),
  ];
  (inits[1]!.values as Float32Array).forEach((v, i, a) => (a[i] = 1 + v));
  const p1 = { pads: A.ints([1, 1, 1, 1]) };
  const nodes = [
    node('Conv', ['image', 'w1'], ['c1'], p1),
    node('BatchNormalization', ['c1', 'g1', 'b1', 'm1', 'v1'], ['n1']),
    node('Relu', ['n1'], ['e1']),
    node('MaxPool', ['e1'], ['p'], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) }),
    node('Conv', ['p', 'w2', 'b2'], ['c2'], p1),
    node('Relu', ['c2'], ['e2']),
    node('Resize', ['e2', '', 'scales'], ['up'], { mode: A.str('nearest'), coordinate_transformation_mode: A.str('asymmetric'), nearest_mode: A.str('floor') }),
    node('Concat', ['e1', 'up'], ['cat'], { axis: A.int(1) }),
    node('Conv', ['cat', 'w3', 'b3'], ['logits']),
    node('Sigmoid', ['logits'], ['prob']),
    node('Sub', ['prob', 'mask'], ['d']),
    node('Mul', ['d', 'd'], ['sq']),
    node('ReduceMean', ['sq'], ['loss'], { keepdims: A.int(0) }),
  ];
  const model = makeModel(nodes, inits, ['loss']);
  model.graph.inputs = [
    { name: 'image', dataType: DataType.FLOAT, shape: [N, 3, H, W] },
    { name: 'mask', dataType: DataType.FLOAT, shape: [N, 1, H, W] },
  ];
  const params = ['w1', 'g1', 'b1', 'w2', 'b2', 'w3', 'b3'];
  const image = new Float32Array(N * 3 * H * W).map(() => rng.normal());
  const mask = new Float32Array(N * H * W).map(() => (rng.uniform() < 0.5 ? 1 : 0));
  const feeds = { image: { dims: [N, 3, H, W], data: image }, mask: { dims: [N, 1, H, W], data: mask } };

  // Reference: the ONNX engine's training model in onnxruntime (BN in training mode, as the tfjs path uses batch statistics).
  const tm = buildTrainingModel(model, { loss: 'loss', params, shapes: await probeShapes(model) });
  const s = await ort.InferenceSession.create(encodeModel(tm.model));
  const ref = await s.run({
    image: new ort.Tensor('float32', image, [N, 3, H, W]),
    mask: new ort.Tensor('float32', mask, [N, 1, H, W]),
    ...Object.fromEntries(tm.params.map((p) => [p.name, new ort.Tensor('float32', tm.initial.get(p.name)!, p.dims)])),
    ...Object.fromEntries(tm.state.map((st) => [st.name, new ort.Tensor('float32', st.initial, st.dims)])),
  });
  await s.release();

  const trainer = new TfjsGraphTrainer(fakeTf(), model, { loss: 'loss', params });
  const { loss, grads } = trainer.lossAndGrads(feeds);
  const refLoss = (ref['loss']!.data as Float32Array)[0]!;
  assert.ok(Math.abs(loss - refLoss) < 1e-5 * Math.abs(refLoss), `loss ${loss} vs ${refLoss}`);
  for (const p of params) {
    const a = grads.get(p)!;
    const b = ref[`grad:${p}`]!.data as Float32Array;
    const scale = Math.max(...Array.from(b, Math.abs));
    const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!))) / scale;
    assert.ok(worst < 1e-3, `${p}: relative difference ${worst}`);
  }
  // A step changes the weights (AdamW in TS on the tfjs path too).
  const before = trainer.weights().get('w3')!;
  trainer.step(feeds);
  assert.notDeepEqual(trainer.weights().get('w3'), before);
});

test('tfjs availability is reported with a reason, never as an error', async () => {
  const req = createRequire(import.meta.url);
  const installed = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].some((m) => {
    try {
      req.resolve(m);
      return true;
    } catch {
      return false;
    }
  });
  const a = await tfjsBackendAvailability();
  assert.equal(a.available, installed);
  if (!a.available) {
    assert.match(a.reason, /@tensorflow\/tfjs-node-gpu: not installed; @tensorflow\/tfjs-node: not installed/);
    console.log(`tfjs backend here: ${a.reason}`);
  }
});

test('an op the tfjs path does not map is refused by name', () => {
  const model = makeModel([node('Softmax', ['x'], ['y'])], [f32Init('x', [1, 2])], ['y']);
  assert.throws(() => new TfjsGraphTrainer(fakeTf(), model, { loss: 'y', params: [] }), /op Softmax \(node 'Softmax_\d+'\) is not mapped to tfjs/);
});
