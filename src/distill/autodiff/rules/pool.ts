/** Pooling gradients: MaxPool through its Indices output, AveragePool as a ConvTranspose, GlobalAveragePool as Expand. */
import { numel } from '../../../onnx/tensor.js';
import { A } from '../emit.js';
import { registerGradient } from '../registry.js';
import { attrInt, attrInts, attrStr, unsupported } from './util.js';

export function registerPoolGradients(): void {
  // MaxPool: the forward emits Indices (flat over N*C*H*W with storage_order 0); the gradient
  // scatter-adds dY at those positions, which is right for overlapping windows too.
  registerGradient(
    'MaxPool',
    (ctx) => {
      const dY = ctx.dY[0];
      if (!dY || !ctx.needsGrad(0)) return [undefined];
      if (attrInt(ctx, 'storage_order', 0) !== 0) throw unsupported(ctx, 'storage_order=1');
      const b = ctx.b;
      const xs = ctx.inputShapes[0]!;
      const flat = b.op('Reshape', [dY, b.i64([-1])]);
      const idx = b.op('Reshape', [ctx.node.outputs[1]!, b.i64([-1])]);
      const sum = b.op('ScatterElements', [b.zeros([numel(xs)]), idx, flat], {
        axis: A.int(0),
        reduction: A.str('add'),
      });
      return [b.op('Reshape', [sum, b.i64(xs as number[])])];
    },
    (node, fresh) => {
      if (!node.outputs[1]) {
        node.outputs = [node.outputs[0]!, fresh(`${node.outputs[0]}_indices`)];
      }
    },
  );

  // AveragePool: dX = ConvTranspose(dY / count, ones) with group = C; `count` is the number of
  // elements each window averaged (it differs at the border when count_include_pad = 0).
  registerGradient('AveragePool', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return [undefined];
    const b = ctx.b;
    const xs = ctx.inputShapes[0]!;
    const ys = ctx.outputShapes[0]!;
    const r = xs.length - 2;
    const c = xs[1]!;
    const kernel = attrInts(ctx, 'kernel_shape')!;
    const strides = attrInts(ctx, 'strides') ?? new Array(r).fill(1);
    if ((attrInts(ctx, 'dilations') ?? []).some((d) => d !== 1)) throw unsupported(ctx, 'dilations');
    const autoPad = attrStr(ctx, 'auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') throw unsupported(ctx, `auto_pad ${autoPad}`);
    const pads = autoPad === 'VALID' ? new Array(2 * r).fill(0) : (attrInts(ctx, 'pads') ?? new Array(2 * r).fill(0));
    const includePad = attrInt(ctx, 'count_include_pad', 0) === 1;
    // count per output position, separable per axis.
    const perAxis = ys.slice(2).map((oh, i) =>
      Array.from({ length: oh }, (_, o) => {
        const start = o * strides[i]! - pads[i]!;
        if (includePad) {
          if (start + kernel[i]! > xs[i + 2]! + pads[i + r]!) throw unsupported(ctx, 'ceil_mode windows past the padding with count_include_pad=1');
          return kernel[i]!;
        }
        return Math.min(start + kernel[i]!, xs[i + 2]!) - Math.max(start, 0);
      }),
    );
    const spatial = ys.slice(2);
    const inv = new Float32Array(numel(spatial));
    for (let flat = 0; flat < inv.length; flat++) {
      let rem = flat;
      let cnt = 1;
      for (let i = r - 1; i >= 0; i--) {
        cnt *= perAxis[i]![rem % spatial[i]!]!;
        rem = Math.floor(rem / spatial[i]!);
      }
      inv[flat] = 1 / cnt;
    }
    const scaled = b.op('Mul', [dY, b.f32(inv, [1, 1, ...spatial])]);
    const ones = b.f32(new Float32Array(c * numel(kernel)).fill(1), [c, 1, ...kernel]);
    // Only the begin pads are cropped by the ConvTranspose: the end of the full output is fitted
    // below, because a floor-mode pool may not use all of its end padding.
    let dx = b.op('ConvTranspose', [scaled, ones], {
      strides: A.ints(strides),
      pads: A.ints([...pads.slice(0, r), ...new Array(r).fill(0)]),
      group: A.int(c),
      kernel_shape: A.ints(kernel),
    });
    // Fit the natural ConvTranspose size to the input: cut positions that only padding covered,
    // pad positions no window covered.
    const natural = spatial.map((oh, i) => strides[i]! * (oh - 1) + kernel[i]! - pads[i]!);
    if (natural.some((n, i) => n > xs[i + 2]!)) {
      const axes = Array.from({ length: r }, (_, i) => i + 2);
      dx = b.op('Slice', [dx, b.i64(new Array(r).fill(0)), b.i64(axes.map((a) => Math.min(natural[a - 2]!, xs[a]!))), b.i64(axes)]);
    }
    if (natural.some((n, i) => n < xs[i + 2]!)) {
      const padEnd = natural.map((n, i) => Math.max(0, xs[i + 2]! - n));
      dx = b.op('Pad', [dx, b.i64([0, 0, ...new Array(r).fill(0), 0, 0, ...padEnd])]);
    }
    return [dx];
  });

  registerGradient('GlobalAveragePool', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return [undefined];
    const b = ctx.b;
    const xs = ctx.inputShapes[0]!;
    const count = numel(xs.slice(2));
    return [b.op('Expand', [b.op('Mul', [dY, b.scalar(1 / count)]), b.i64(xs as number[])])];
  });
}
