/**
 * Resize: (1) the interpolation matrices computed in TS reproduce
 * onnxruntime's Resize forward (Y = A_h X A_w^T, max abs difference < 1e-5 on
 * random X), for each mode/coordinate mode/scale the gradient supports; (2)
 * the gradient (A_h^T dY A_w, or Reshape+ReduceSum for integer nearest)
 * matches finite differences (bound as in autodiff_rules.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import type { Attribute } from '../../src/onnx/ir.js';
import { DataType } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { resizeMatrix, type CoordinateMode, type NearestMode, type ResizeMode } from '../../src/distill/autodiff/rules/resize.js';
import { Rng } from '../../src/distill/engine/rng.js';
import { A, f32Init, gradCheck, i64Init, makeModel, node, randTensor } from './autodiff_util.js';

interface ResizeCase {
  mode: ResizeMode;
  coord: CoordinateMode;
  nearest?: NearestMode;
  h: number;
  w: number;
  /** Either scales (H, W) or output sizes (OH, OW). */
  scales?: [number, number];
  sizes?: [number, number];
}

const cases: ResizeCase[] = [
  { mode: 'linear', coord: 'half_pixel', h: 4, w: 5, scales: [2, 2] },
  { mode: 'linear', coord: 'align_corners', h: 4, w: 5, scales: [2, 2] },
  { mode: 'linear', coord: 'pytorch_half_pixel', h: 3, w: 5, sizes: [7, 4] },
  { mode: 'linear', coord: 'half_pixel', h: 5, w: 6, sizes: [8, 3] },
  { mode: 'linear', coord: 'asymmetric', h: 4, w: 3, scales: [1.5, 2.5] },
  { mode: 'linear', coord: 'align_corners', h: 5, w: 4, sizes: [9, 1] },
  { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', h: 3, w: 4, scales: [2, 2] },
  { mode: 'nearest', coord: 'half_pixel', nearest: 'round_prefer_floor', h: 3, w: 4, scales: [2, 3] },
  { mode: 'nearest', coord: 'half_pixel', nearest: 'round_prefer_ceil', h: 4, w: 5, sizes: [6, 8] },
  { mode: 'nearest', coord: 'align_corners', nearest: 'round_prefer_floor', h: 5, w: 3, sizes: [3, 7] },
];

function label(c: ResizeCase): string {
  return `${c.mode} ${c.coord}${c.nearest ? ' ' + c.nearest : ''} ${c.h}x${c.w} ${c.scales ? 'scales ' + c.scales.join('x') : 'sizes ' + c.sizes!.join('x')}`;
}

function resizeNode(c: ResizeCase, x: string, y: string) {
  const attrs: Record<string, Attribute> = { mode: A.str(c.mode), coordinate_transformation_mode: A.str(c.coord) };
  if (c.nearest) attrs['nearest_mode'] = A.str(c.nearest);
  const inputs = c.scales ? [x, '', 'scales'] : [x, '', '', 'sizes'];
  return node('Resize', inputs, [y], attrs);
}

function consts(c: ResizeCase, n: number, ch: number) {
  return c.scales ? [f32Init('scales', [1, 1, ...c.scales])] : [i64Init('sizes', [n, ch, ...c.sizes!])];
}

for (const c of cases) {
  test(`Resize matrices match onnxruntime's forward: ${label(c)}`, async () => {
    const [n, ch] = [2, 3];
    const rng = new Rng(5);
    const x = randTensor(rng, 'X', [n, ch, c.h, c.w]);
    const model = makeModel([resizeNode(c, 'X', 'Y')], [x, ...consts(c, n, ch)], ['Y']);
    const s = await ort.InferenceSession.create(encodeModel(model));
    const y = (await s.run({}))['Y']!;
    await s.release();
    const [oh, ow] = [y.dims[2]!, y.dims[3]!];
    const sh = c.scales ? c.scales[0] : oh / c.h;
    const sw = c.scales ? c.scales[1] : ow / c.w;
    const ah = resizeMatrix(c.h, oh, sh, c.mode, c.coord, c.nearest);
    const aw = resizeMatrix(c.w, ow, sw, c.mode, c.coord, c.nearest);
    const xv = x.values as Float32Array;
    const yv = y.data as Float32Array;
    let worst = 0;
    for (let p = 0; p < n * ch; p++) {
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let acc = 0;
          for (let a = 0; a < c.h; a++) {
            const wa = ah[i * c.h + a]!;
            if (wa === 0) continue;
            for (let b = 0; b < c.w; b++) acc += wa * aw[j * c.w + b]! * xv[(p * c.h + a) * c.w + b]!;
          }
          worst = Math.max(worst, Math.abs(acc - yv[(p * oh + i) * ow + j]!));
        }
      }
    }
    assert.ok(worst < 1e-5, `max |A_h X A_w^T - onnxruntime| = ${worst}`);
  });

  test(`Resize gradient vs finite differences: ${label(c)}`, async () => {
    const rng = new Rng(9);
    const x = randTensor(rng, 'X', [2, 2, c.h, c.w]);
    const model = makeModel([resizeNode(c, 'X', 'Y')], [x, ...consts(c, 2, 2)], ['Y']);
    const res = await gradCheck(model, 'Y', ['X']);
    assert.ok(res.worst['X']! < 1e-3, `relative error ${res.worst['X']}`);
  });
}

test('Resize cubic is refused with the node named', async () => {
  const rng = new Rng(1);
  const model = makeModel(
    [node('Resize', ['X', '', 'scales'], ['Y'], { mode: A.str('cubic') })],
    [randTensor(rng, 'X', [1, 1, 3, 3]), f32Init('scales', [1, 1, 2, 2])],
    ['Y'],
  );
  await assert.rejects(gradCheck(model, 'Y', ['X']), /Resize node 'Resize_\d+': mode cubic/);
  void DataType;
});
