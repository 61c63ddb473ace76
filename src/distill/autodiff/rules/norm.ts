/**
 * BatchNormalization in training mode. The forward runs with training_mode=1
 * (batch statistics; the running_mean/running_var outputs are exposed so the
 * trainer can update the stored statistics). The backward recomputes the batch
 * mean and inverse std with ReduceMean and applies
 * dX = gamma * inv_std * (dY - mean(dY) - xhat * mean(dY * xhat)),
 * dgamma = sum(dY * xhat), dbeta = sum(dY), means and sums over all axes but C.
 */
import { A } from '../emit.js';
import { registerGradient } from '../registry.js';
import { attrFloat } from './util.js';

export function registerNormGradients(): void {
  registerGradient(
    'BatchNormalization',
    (ctx) => {
      const out: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
      const dY = ctx.dY[0];
      if (!dY) return out;
      const b = ctx.b;
      const xs = ctx.inputShapes[0]!;
      const c = xs[1]!;
      const axes = [0, ...Array.from({ length: xs.length - 2 }, (_, i) => i + 2)];
      const bshape = xs.map((_, i) => (i === 1 ? c : 1));
      const x = ctx.node.inputs[0]!;
      const eps = attrFloat(ctx, 'epsilon', 1e-5);
      const mu = b.reduceMean(x, axes, true);
      const xc = b.op('Sub', [x, mu]);
      const v = b.reduceMean(b.op('Mul', [xc, xc]), axes, true);
      const inv = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [v, b.scalar(eps)])])]);
      const xhat = b.op('Mul', [xc, inv]);
      const dyx = b.op('Mul', [dY, xhat]);
      if (ctx.needsGrad(0)) {
        const gamma = b.op('Reshape', [ctx.node.inputs[1]!, b.i64(bshape)]);
        const inner = b.op('Sub', [b.op('Sub', [dY, b.reduceMean(dY, axes, true)]), b.op('Mul', [xhat, b.reduceMean(dyx, axes, true)])]);
        out[0] = b.op('Mul', [b.op('Mul', [gamma, inv]), inner]);
      }
      if (ctx.needsGrad(1)) out[1] = b.op('ReduceSum', [dyx, b.i64(axes)], { keepdims: A.int(0) });
      if (ctx.needsGrad(2)) out[2] = b.op('ReduceSum', [dY, b.i64(axes)], { keepdims: A.int(0) });
      return out;
    },
    (node, fresh) => {
      node.attributes = { ...node.attributes, training_mode: { type: 'int', value: 1 } };
      const y = node.outputs[0]!;
      node.outputs = [y, node.outputs[1] || fresh(`${node.inputs[3]}_update`), node.outputs[2] || fresh(`${node.inputs[4]}_update`)];
    },
  );
}
