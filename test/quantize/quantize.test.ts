import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, copyFileSync, readdirSync, writeFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from '../../src/util/ort.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { encodeModel, writeModel } from '../../src/onnx/io.js';
import { quantize, quantizeFile, calibrationImages } from '../../src/quantize/quantize.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { packageRoot } from '../../src/util/paths.js';
import { Net, rng, tinySegNet } from './nets.js';

let dir = '';
let data = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'lf-quant-'));
  data = join(dir, 'data');
  const fx = join(packageRoot(), 'test', 'fixtures');
  mkdirSync(join(data, 'images'), { recursive: true });
  mkdirSync(join(data, 'masks'), { recursive: true });
  mkdirSync(join(data, 'splits'), { recursive: true });
  const imgs = readdirSync(join(fx, 'images')).sort();
  for (const f of imgs) copyFileSync(join(fx, 'images', f), join(data, 'images', f));
  for (const f of readdirSync(join(fx, 'masks'))) copyFileSync(join(fx, 'masks', f), join(data, 'masks', f));
  writeFileSync(join(data, 'splits', 'train.txt'), imgs.slice(0, 4).map((f) => `images/${f}`).join('\n'));
  writeFileSync(join(data, 'splits', 'val.txt'), imgs.slice(4).map((f) => `images/${f}`).join('\n'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A net that quantization breaks: conv A's channel 0 carries a +300 offset, so the shared scale of
 * A's output (int8 over ~[-x, 300]) is ~1.2 and the small channels B reads collapse to a few levels.
 */
function fragileNet(): Model {
  const b = new Net(rng(21));
  const a = b.conv('image', 3, 4, 3, 'A', { wScale: 0.5 });
  const bias = b.inits.find((t) => t.name === 'A.bias')!;
  (bias.values as Float32Array)[0] = 300;
  const bw = b.inits.length;
  const y = b.conv(a, 4, 1, 1, 'B', { wScale: 1 });
  const w = b.inits[bw]!.values as Float32Array;
  w[0] = 0; // B ignores the offset channel
  const m = b.model({ name: 'image', dataType: DataType.FLOAT, shape: ['N', 3, 16, 16] }, [y]);
  return m;
}

test('calibration images come from the train split of a dataset, or from a plain folder', async () => {
  const train = await calibrationImages(data, 64);
  assert.equal(train.length, 4);
  assert.ok(train.every((p) => p.includes('/images/')));
  const plain = await calibrationImages(join(data, 'images'), 3);
  assert.equal(plain.length, 3);
  await assert.rejects(calibrationImages(join(dir, 'nope'), 3), LesionFuseError);
});

test('quantize: a benign net passes the gate; the record lists quantized and float nodes, times and Dice', async () => {
  const model = tinySegNet(4, 'N');
  const r = await quantize(model, { calib: data, gate: 0.2, progress: false, threads: 1 });
  assert.equal(r.calibration.images, 4);
  assert.ok(r.calibration.seconds > 0);
  assert.equal(r.dice!.images, 2);
  assert.ok(r.gate.passed);
  // Two val images are too few for the interval rule: the gate says it fell back to the mean drop.
  assert.equal(r.gate.decision!.verdict, 'too-few-images');
  assert.match(r.gate.verdict, /^passed: Dice drop .* \(a mean over only 2 val image\(s\), too few for the interval rule, which needs 10\)$/);
  assert.ok(r.quantizedNodes.some((n) => n.key === 'enc1'));
  assert.equal(r.settings.weights, 'int8');
  const s = await ort.InferenceSession.create(encodeModel(r.model));
  const y = await s.run({ image: new ort.Tensor('float32', new Float32Array(2 * 3 * 256), [2, 3, 16, 16]) });
  assert.equal((y['head_out']!.data as Float32Array).length, 2 * 256);
});

test('the gate refuses to write a model that loses too much; force writes it and says so', async () => {
  const inPath = join(dir, 'fragile.onnx');
  await writeModel(fragileNet(), inPath);
  const out = join(dir, 'fragile.int8.onnx');
  const opts = { calib: data, gate: 0.01, sensitivity: 'off' as const, progress: false, threads: 1, reduceRange: false };
  await assert.rejects(quantizeFile(inPath, out, opts), (e: unknown) => {
    assert.ok(e instanceof LesionFuseError);
    assert.match((e as Error).message, /Dice drop 0\.\d+ .*exceeds the gate 0\.01/);
    assert.ok(!(e as Error).message.includes('\n'));
    return true;
  });
  assert.ok(!existsSync(out), 'nothing written');
  const r = await quantizeFile(inPath, out, { ...opts, force: true });
  assert.equal(r.gate.passed, false);
  assert.ok(existsSync(out));
  const rec = JSON.parse(readFileSync(`${out}.quant.json`, 'utf8'));
  assert.equal(rec.forced, true);
  assert.equal(rec.gate.passed, false);
  assert.ok(rec.dice.drop > 0.01);
});

test('sensitivity keeps the layers that cost Dice in float until the gate is met', async () => {
  const r = await quantize(fragileNet(), { calib: data, gate: 0.01, progress: false, threads: 1, reduceRange: false });
  assert.ok(r.sensitivity && r.sensitivity.length === 2);
  assert.ok(r.autoExcluded.length >= 1);
  assert.ok(r.gate.passed, r.gate.verdict);
  const reasons = r.floatNodes.filter((f) => f.reason.startsWith('sensitivity'));
  assert.equal(reasons.length, r.autoExcluded.length);
});

test('sensitivity probes a layer alone even where the full plan borrows its range from a neighbour', async () => {
  // enc1 -> Relu: the full plan quantizes Conv+Relu as one and calibrates only the Relu's output; enc1 alone
  // needs its own output range (the shipped teacher's stem conv failed exactly so)
  const r = await quantize(tinySegNet(4, 'N'), { calib: data, gate: 0.5, sensitivity: 'always', progress: false, threads: 1 });
  assert.ok(r.sensitivity && r.sensitivity.some((l) => l.node === 'enc1'), JSON.stringify(r.sensitivity));
  assert.ok(r.sensitivity.every((l) => Number.isFinite(l.diceDrop)));
  assert.ok(r.calibration.tensors > 0);
});

test('bad models are refused in one line naming the file', async () => {
  const empty = join(dir, 'empty.onnx');
  writeFileSync(empty, '');
  const notOnnx = join(dir, 'text.onnx');
  writeFileSync(notOnnx, 'hello, this is not a protobuf model at all');
  for (const p of [empty, notOnnx, join(dir, 'missing.onnx'), dir]) {
    await assert.rejects(quantizeFile(p, join(dir, 'o.onnx'), { calib: data, progress: false }), (e: unknown) => {
      assert.ok(e instanceof LesionFuseError, String(e));
      assert.ok((e as Error).message.includes(p), (e as Error).message);
      assert.ok(!(e as Error).message.includes('\n'));
      return true;
    });
  }
  // a model without an image input of rank 4
  const b = new Net(rng(1));
  const y = b.op('Relu', ['x']);
  const m = b.model({ name: 'x', dataType: DataType.FLOAT, shape: [1, 3, 8, 8] }, [y]);
  m.graph.inputs[0]!.shape = [1, 3];
  await assert.rejects(quantize(m, { calib: data, progress: false }), /must be \[N, 3, H, W\]/);
});

test('a model whose weight ops all sit inside If branches is refused saying so (not "has no Conv")', async () => {
  const { GraphBuilder } = await import('../../src/onnx/builder.js');
  const { floatTensor } = await import('../../src/onnx/tensor.js');
  const branch = (name: string) => {
    const g = new GraphBuilder(name);
    const w = g.initializer(`${name}.w`, floatTensor([1, 3, 1, 1], [0.1, 0.2, 0.3]));
    g.output(g.op('Conv', ['image', w], {}, { output: `${name}.conv` }), `${name}.y`, { dataType: DataType.FLOAT, shape: [1, 1, 16, 16] });
    return g.build().graph;
  };
  const b = new GraphBuilder('if-net');
  const x = b.input('image', DataType.FLOAT, [1, 3, 16, 16]);
  const cond = b.op('Greater', [b.op('ReduceMean', [x], { keepdims: 0 }), b.constant(floatTensor([], [0]))]);
  b.output(b.op('If', [cond], { then_branch: branch('a'), else_branch: branch('b') }), 'y', { dataType: DataType.FLOAT, shape: [1, 1, 16, 16] });
  const m = b.build({ opset: 17 });
  await assert.rejects(quantize(m, { calib: data, progress: false }), /nothing to quantize in the main graph: its 2 Conv\/ConvTranspose\/Gemm\/MatMul node\(s\) are inside If\/Loop\/Scan branches/);
});

test('with enough val images the gate is a non-inferiority decision on the paired per-image Dice', async () => {
  // 12 val pairs: each fixture twice under two ids.
  const d12 = join(dir, 'data12');
  const fx = join(packageRoot(), 'test', 'fixtures');
  for (const sub of ['images', 'masks', 'splits']) mkdirSync(join(d12, sub), { recursive: true });
  const names: string[] = [];
  for (const p of ['a_', 'b_']) {
    for (const f of readdirSync(join(fx, 'images'))) {
      copyFileSync(join(fx, 'images', f), join(d12, 'images', p + f));
      names.push(`images/${p}${f}`);
    }
    for (const f of readdirSync(join(fx, 'masks'))) copyFileSync(join(fx, 'masks', f), join(d12, 'masks', p + f));
  }
  writeFileSync(join(d12, 'splits', 'train.txt'), names.slice(0, 4).join('\n'));
  writeFileSync(join(d12, 'splits', 'val.txt'), names.join('\n'));
  const ok = await quantize(tinySegNet(4, 'N'), { calib: d12, gate: 0.2, progress: false, threads: 1 });
  assert.equal(ok.dice!.images, 12);
  const d = ok.gate.decision!;
  assert.equal(d.n, 12);
  // The mean of the paired losses is the difference of the means.
  assert.ok(Math.abs(d.meanLoss - ok.dice!.drop) < 1e-9, `${d.meanLoss} vs ${ok.dice!.drop}`);
  assert.ok(d.lossCi95[0] <= d.meanLoss && d.meanLoss <= d.lossCi95[1]);
  assert.equal(d.verdict, 'non-inferior');
  assert.equal(ok.gate.passed, true);
  assert.match(ok.gate.verdict, /^passed: non-inferior: Dice loss /);
  const bad = await quantize(fragileNet(), { calib: d12, gate: 0.01, sensitivity: 'off', progress: false, threads: 1, reduceRange: false });
  assert.equal(bad.gate.passed, false);
  assert.ok(['inferior', 'not-shown'].includes(bad.gate.decision!.verdict), bad.gate.verdict);
  assert.ok(bad.gate.decision!.lossCi95[1] > 0.01);
});
