import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { planQuantization, insertQdq, transformerFloatAdds } from '../../src/quantize/qdq.js';
import { MinMaxCalibrator, collectRanges, chunks } from '../../src/quantize/calibrate.js';
import { activationParams, fakeQuantize, quantizeWeightsPerChannel, quantizeBias } from '../../src/quantize/arith.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { Net, rng, tinySegNet, randomImages } from './nets.js';

async function run(model: Model, x: Float32Array, n: number, hw = 16, level: 'disabled' | 'all' = 'all'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1, graphOptimizationLevel: level });
  const out = await s.run({ [model.graph.inputs[0]!.name]: new ort.Tensor('float32', x, [n, 3, hw, hw]) });
  const y = out[model.graph.outputs[0]!.name]!.data as Float32Array;
  await s.release();
  return y;
}

async function calibrated(model: Model, opts: Parameters<typeof planQuantization>[1] = {}) {
  const plan = planQuantization(model, opts);
  const imgs = randomImages(8, 11);
  const per = 3 * 16 * 16;
  const batches = chunks([...Array(8).keys()], 4).map((ix) => ({ data: imgs.slice(ix[0]! * per, (ix.at(-1)! + 1) * per), n: ix.length }));
  const cal = await collectRanges(model, plan.calibrate, batches, new MinMaxCalibrator(), { inputShape: [3, 16, 16], threads: 1, progress: false });
  return { plan, ranges: cal.ranges };
}

test('plan: weight layers, pass-through ops and folded Relus of a small conv net', () => {
  const plan = planQuantization(tinySegNet(1, 'N'));
  const kinds = Object.fromEntries(plan.quantized.map((p) => [p.key, p.kind]));
  assert.equal(kinds['enc1'], 'weight');
  assert.equal(kinds['dec_t'], 'weight');
  assert.equal(kinds['pool1'], 'shared');
  assert.equal(kinds['up'], 'shared');
  assert.equal(kinds['res_add'], 'own');
  assert.equal(kinds['cat'], 'own');
  assert.equal(kinds['enc1_relu'], 'fused-relu');
  assert.equal(kinds['dec1_relu'], 'fused-relu');
  // calibrated tensors: the input, each layer output after Relu folding, Add/Concat outputs; not MaxPool/Resize outputs
  assert.ok(plan.calibrate.includes('image'));
  assert.ok(plan.calibrate.includes('enc1_relu_out'));
  assert.ok(!plan.calibrate.includes('enc1_out'));
  assert.ok(!plan.calibrate.includes('pool1_out'));
  assert.ok(!plan.calibrate.includes('up_out'));
  assert.equal(plan.float.length, 0);
});

test('QDQ model opens and runs in onnxruntime and stays close to float; per-channel axes right', async () => {
  const model = tinySegNet(1, 'N');
  const { plan, ranges } = await calibrated(model);
  const { model: q, record } = insertQdq(model, plan, ranges);
  const ops = q.graph.nodes.map((n) => n.opType);
  assert.ok(ops.filter((o) => o === 'QuantizeLinear').length >= 6);
  assert.ok(!ops.includes('Relu'), 'Relus folded into the ranges before them');
  // per-channel scales: Conv axis 0 with C_out scales, ConvTranspose axis 1 with C_out scales
  const w = Object.fromEntries(record.weights.map((r) => [r.node, r]));
  assert.deepEqual([w['enc1']!.axis, w['enc1']!.channels], [0, 8]);
  assert.deepEqual([w['dec_t']!.axis, w['dec_t']!.channels], [1, 4]);
  assert.deepEqual([w['head']!.axis, w['head']!.channels], [0, 1]);
  const int8 = q.graph.initializers.filter((t) => t.dataType === DataType.INT8 && t.dims.length === 4);
  assert.equal(int8.length, 5);
  assert.ok(q.graph.initializers.some((t) => t.dataType === DataType.INT32 && t.name.startsWith('enc1.bias')));
  assert.ok(!q.graph.initializers.some((t) => t.name === 'enc1.weight'), 'float weights dropped');
  // MaxPool and Resize reuse their input's parameters
  const acts = Object.fromEntries(record.activations.map((a) => [a.tensor, a]));
  assert.equal(acts['pool1_out']!.sharedWith, 'enc1_relu_out');
  assert.equal(acts['pool1_out']!.scale, acts['enc1_relu_out']!.scale);
  assert.equal(acts['enc1_relu_out']!.zeroPoint, -128, 'a folded Relu range starts at 0');

  const x = randomImages(2, 99);
  const yf = await run(model, x, 2);
  const yq = await run(q, x, 2);
  let maxDiff = 0;
  let range = 0;
  for (let i = 0; i < yf.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(yf[i]! - yq[i]!));
    range = Math.max(range, Math.abs(yf[i]!));
  }
  assert.ok(maxDiff > 0, 'the quantized model must differ from float');
  assert.ok(maxDiff < 0.08 * range, `max |diff| ${maxDiff} vs output range ${range}`);
});

/** Hand-computed fake-quant Conv (3x3, pad 1, 3 -> 4 channels, 16 x 16), the reference for onnxruntime's output. */
function referenceConv(model: Model, ranges: Map<string, { min: number; max: number }>, x: Float32Array, reduceRange: boolean): { y: Float32Array; step: number } {
  const inR = ranges.get('image')!;
  const pin = activationParams(inR.min, inR.max, 'int8');
  const xq = x.map((v) => fakeQuantize(v, pin, 'int8'));
  const wt = model.graph.initializers.find((t) => t.name === 'c.weight')!;
  const bt = model.graph.initializers.find((t) => t.name === 'c.bias')!;
  const wq = quantizeWeightsPerChannel(wt.values as Float32Array, wt.dims, 0, { reduceRange });
  const bq = quantizeBias(bt.values as Float32Array, pin.scale, wq.scales);
  const outR = ranges.get('c_out')!;
  const pout = activationParams(outR.min, outR.max, 'int8');
  const y = new Float32Array(4 * 16 * 16);
  for (let co = 0; co < 4; co++) {
    for (let yy = 0; yy < 16; yy++) {
      for (let xx = 0; xx < 16; xx++) {
        let acc = bq.values[co]! * bq.scales[co]!;
        for (let ci = 0; ci < 3; ci++) {
          for (let ky = 0; ky < 3; ky++) {
            for (let kx = 0; kx < 3; kx++) {
              const iy = yy + ky - 1;
              const ix = xx + kx - 1;
              if (iy < 0 || iy >= 16 || ix < 0 || ix >= 16) continue;
              const wi = ((co * 3 + ci) * 3 + ky) * 3 + kx;
              acc += xq[(ci * 16 + iy) * 16 + ix]! * wq.values[wi]! * wq.scales[co]!;
            }
          }
        }
        y[(co * 16 + yy) * 16 + xx] = fakeQuantize(acc, pout, 'int8');
      }
    }
  }
  return { y, step: pout.scale };
}

function worstSteps(a: Float32Array, b: Float32Array, step: number): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i]! - b[i]!) / step);
  return w;
}

test('a quantized Conv matches a hand-computed fake-quant reference within one output step', async () => {
  const b = new Net(rng(5));
  const y = b.conv('image', 3, 4, 3, 'c', { pad: 1 });
  const model = b.model({ name: 'image', dataType: DataType.FLOAT, shape: ['N', 3, 16, 16] }, [y]);
  const { plan, ranges } = await calibrated(model);
  const x = randomImages(1, 3);
  // ONNX semantics (no fusion): full 8-bit weights
  const full = insertQdq(model, plan, ranges, { reduceRange: false }).model;
  const ref = referenceConv(model, ranges, x, false);
  assert.ok(worstSteps(ref.y, await run(full, x, 1, 16, 'disabled'), ref.step) <= 1.0001);
  // 7-bit weights: onnxruntime's fused INT8 kernels agree too, on any x86 CPU (no int16 saturation possible)
  const reduced = insertQdq(model, plan, ranges, { reduceRange: true }).model;
  const ref7 = referenceConv(model, ranges, x, true);
  assert.ok(worstSteps(ref7.y, await run(reduced, x, 1, 16, 'disabled'), ref7.step) <= 1.0001);
  assert.ok(worstSteps(ref7.y, await run(reduced, x, 1, 16, 'all'), ref7.step) <= 1.0001);
});

test('uint8 activations and per-tensor weights also open and run', async () => {
  const model = tinySegNet(2, 'N');
  for (const opts of [{ activationType: 'uint8' as const }, { perChannel: false }, { weightType: 'uint8' as const }]) {
    const { plan, ranges } = await calibrated(model, opts);
    const { model: q } = insertQdq(model, plan, ranges, opts);
    const y = await run(q, randomImages(1, 4), 1);
    assert.equal(y.length, 256);
    assert.ok(y.every(Number.isFinite));
  }
});

test('exclusion list respected; unknown names refused with one line', async () => {
  const model = tinySegNet(1, 'N');
  const { plan, ranges } = await calibrated(model, { exclude: ['enc2', 'cat'] });
  const f = Object.fromEntries(plan.float.map((x) => [x.key, x.reason]));
  assert.equal(f['enc2'], 'excluded by the user');
  assert.equal(f['cat'], 'excluded by the user');
  const { model: q } = insertQdq(model, plan, ranges, { exclude: ['enc2', 'cat'] });
  const enc2 = q.graph.nodes.find((n) => n.name === 'enc2')!;
  assert.equal(enc2.inputs[1], 'enc2.weight', 'excluded conv keeps its float weight');
  assert.ok(q.graph.initializers.some((t) => t.name === 'enc2.weight' && t.dataType === DataType.FLOAT));
  // cat's output still gets a Q/DQ pair: dec1 (quantized) reads it; its own range comes from calibration
  assert.ok(plan.calibrate.includes('cat_out'));
  await run(q, randomImages(1, 4), 1);
  assert.throws(() => planQuantization(model, { exclude: ['nope'] }), (e: unknown) => e instanceof LesionFuseError && /nope/.test((e as Error).message) && !(e as Error).message.includes('\n'));
});

test('opset below 13 with per-channel weights is refused naming the fix', async () => {
  const model = tinySegNet(1, 'N');
  const { plan, ranges } = await calibrated(model);
  model.opsetImports = [{ domain: '', version: 11 }];
  assert.throws(() => insertQdq(model, plan, ranges), /opset 11.*--opset 13/);
});

test('ViT-safe: residual Adds next to LayerNorm and MatMul bias Adds stay float; unsupported ops noted', () => {
  // tokens [1, 4, 8] -> x + MatMul(LN(x)) + bias ; then LN ; Softmax attention-like MatMul
  const b = new Net(rng(3));
  const g = b.w('ln.g', [8], 0.1, 1);
  const bb = b.w('ln.b', [8], 0.1);
  const ln = b.op('LayerNormalization', ['tokens', g, bb], { axis: -1, epsilon: 0.00001 }, 'ln1');
  const mm = b.op('MatMul', [ln, b.w('fc.w', [8, 8])], {}, 'fc');
  const bias = b.op('Add', [mm, b.w('fc.b', [8])], {}, 'fc_bias');
  const res = b.op('Add', ['tokens', bias], {}, 'residual');
  const ln2 = b.op('LayerNormalization', [res, g, bb], { axis: -1, epsilon: 0.00001 }, 'ln2');
  const sm = b.op('Softmax', [ln2], { axis: -1 }, 'sm');
  const model = b.model({ name: 'tokens', dataType: DataType.FLOAT, shape: [1, 4, 8, 1] }, [sm]);
  const adds = transformerFloatAdds(model);
  assert.match(adds.get('residual')!, /residual/);
  assert.match(adds.get('fc_bias')!, /bias Add/);
  const plan = planQuantization(model);
  assert.deepEqual(plan.quantized.map((p) => p.key), ['fc']);
  const f = Object.fromEntries(plan.float.map((x) => [x.key, x.reason]));
  assert.match(f['ln1']!, /ViT-safe: LayerNormalization/);
  assert.match(f['sm']!, /ViT-safe: Softmax/);
  // preset 'all' quantizes the Adds
  const all = planQuantization(model, { preset: 'all' });
  assert.ok(all.quantized.some((p) => p.key === 'residual'));
});

test('dynamic INT8 MatMuls run in onnxruntime-node and stay close to float', async () => {
  const { quantizeDynamicMatMuls } = await import('../../src/quantize/dynamic.js');
  const b = new Net(rng(9));
  const h = b.op('MatMul', ['tokens', b.w('fc1.w', [16, 32])], {}, 'fc1');
  const r = b.op('Relu', [h], {}, 'act');
  const y = b.op('MatMul', [r, b.w('fc2.w', [32, 8])], {}, 'fc2');
  const model = b.model({ name: 'tokens', dataType: DataType.FLOAT, shape: [1, 6, 16, 1] }, [y]);
  model.graph.inputs[0]!.shape = [1, 6, 16];
  for (const reduceRange of [false, true]) {
    const dq = quantizeDynamicMatMuls(model, { reduceRange, exclude: ['fc2'] });
    assert.deepEqual(dq.quantized, ['fc1']);
    assert.equal(dq.float[0]!.reason, 'excluded by the user');
    assert.ok(dq.model.graph.nodes.some((n) => n.opType === 'MatMulInteger'));
    const x = randomImages(1, 5).slice(0, 96);
    const feed = (m: Model) => ort.InferenceSession.create(encodeModel(m)).then((s) => s.run({ tokens: new ort.Tensor('float32', x, [1, 6, 16]) }));
    const yf = (await feed(model))[y]!.data as Float32Array;
    const yq = (await feed(dq.model))[y]!.data as Float32Array;
    let d = 0;
    let m = 0;
    for (let i = 0; i < yf.length; i++) {
      d = Math.max(d, Math.abs(yf[i]! - yq[i]!));
      m = Math.max(m, Math.abs(yf[i]!));
    }
    assert.ok(yq.every(Number.isFinite));
    // 7-bit weights cannot saturate onnxruntime's u8s8 int16 accumulation on any x86 CPU; full 8-bit
    // weights do on AVX2 CPUs without VNNI (this is why reduceRange defaults to 'auto')
    if (reduceRange) assert.ok(d > 0 && d < 0.03 * m, `dynamic max diff ${d} vs range ${m}`);
  }
});

test('kernels that ran are read back from onnxruntime\'s profiler (fused INT8 Conv, not DQ + float Conv)', async () => {
  const { profileKernels } = await import('../../src/quantize/kernels.js');
  const model = tinySegNet(1, 'N');
  const { plan, ranges } = await calibrated(model);
  // uint8 activations: onnxruntime's x86 path fuses every Conv (with int8 activations it fuses only those
  // whose neighbours it can convert to uint8, see reports/quantize); ARM fuses both
  const q = insertQdq(model, plan, ranges, { reduceRange: true, activationType: 'uint8' }).model;
  const feeds = { image: new ort.Tensor('float32', randomImages(1, 2), [1, 3, 16, 16]) };
  const pf = await profileKernels(encodeModel(model), feeds, { runs: 2 });
  const pq = await profileKernels(encodeModel(q), feeds, { runs: 2 });
  const ops = (p: typeof pf) => new Set(p.ops.map((o) => o.op));
  assert.ok(ops(pf).has('Conv') || ops(pf).has('FusedConv'));
  assert.ok(!ops(pf).has('QLinearConv'));
  assert.ok(ops(pq).has('QLinearConv'), `INT8 model kernels: ${[...ops(pq)].join(', ')}`);
  assert.equal(pq.ops.find((o) => o.op === 'QLinearConv')!.calls, 2 * 4, 'four Convs, two runs');
});

test('the QDQ model runs in onnxruntime-web (wasm) in Node and agrees with onnxruntime-node', async (t) => {
  let web: typeof import('onnxruntime-web');
  try {
    web = await import('onnxruntime-web');
  } catch {
    t.skip('onnxruntime-web (an optional dependency) is not installed');
    return;
  }
  web.env.wasm.numThreads = 1;
  const model = tinySegNet(1, 'N');
  const { plan, ranges } = await calibrated(model);
  const q = insertQdq(model, plan, ranges, { reduceRange: true }).model;
  const x = randomImages(1, 8);
  const s = await web.InferenceSession.create(encodeModel(q), { executionProviders: ['wasm'] });
  const yw = (await s.run({ image: new web.Tensor('float32', x, [1, 3, 16, 16]) }))[q.graph.outputs[0]!.name]!.data as Float32Array;
  const yn = await run(q, x, 1, 16, 'disabled');
  const step = Math.max(...q.graph.initializers.filter((i) => i.name.startsWith('head_out_scale')).map((i) => (i.values as Float32Array)[0]!));
  let worst = 0;
  for (let i = 0; i < yn.length; i++) worst = Math.max(worst, Math.abs(yw[i]! - yn[i]!));
  assert.ok(worst <= 2.0001 * step, `web vs node differ by ${worst / step} output steps`);
});

test('exported-graph shapes: weights behind Identity are quantized, int64 shape arithmetic never gets Q/DQ', async () => {
  const b = new Net(rng(12));
  const w = b.w('shared.weight', [4, 3, 3, 3]);
  const wid = b.op('Identity', [w], {}, 'w_identity');
  const c = b.op('Conv', ['image', wid], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv');
  // shape arithmetic: Shape -> Gather -> Unsqueeze -> Concat (int64) -> Reshape of the conv output
  const shp = b.op('Shape', [c], {}, 'shape');
  const idx = b.constInit('zero', DataType.INT64, [], new BigInt64Array([0n]));
  const n = b.op('Gather', [shp, idx], { axis: 0 }, 'gather');
  const axes = b.constInit('axes0', DataType.INT64, [1], new BigInt64Array([0n]));
  const nu = b.op('Unsqueeze', [n, axes], {}, 'unsq');
  const rest = b.constInit('rest', DataType.INT64, [1], new BigInt64Array([-1n]));
  const cat = b.op('Concat', [nu, rest], { axis: 0 }, 'shape_concat');
  const flat = b.op('Reshape', [c, cat], {}, 'flatten');
  const model = b.model({ name: 'image', dataType: DataType.FLOAT, shape: ['N', 3, 16, 16] }, [flat]);
  const plan = planQuantization(model);
  const kinds = Object.fromEntries(plan.quantized.map((p) => [p.key, p.kind]));
  assert.equal(kinds['conv'], 'weight');
  assert.equal(kinds['shape_concat'], undefined);
  assert.match(plan.float.find((f) => f.key === 'shape_concat')!.reason, /INT64/);
  const { plan: p2, ranges } = await calibrated(model);
  const { model: q, record } = insertQdq(model, p2, ranges);
  assert.equal(record.weights[0]!.channels, 4);
  assert.ok(!q.graph.nodes.some((x) => x.name === 'w_identity'), 'the Identity that fed the float weight is gone');
  assert.ok(!q.graph.nodes.some((x) => x.opType === 'QuantizeLinear' && [cat, nu, n].includes(x.inputs[0]!)));
  const y = await run(q, randomImages(2, 3), 2);
  assert.equal(y.length, 2 * 4 * 256);
});
