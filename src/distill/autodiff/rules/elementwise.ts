/** Gradient rules of element-wise ops (activations, arithmetic with broadcasting, losses' building blocks). */
import { A } from '../emit.js';
import { registerGradient, type GradContext } from '../registry.js';
import { attrFloat, attrInt, constNumbers, unbroadcast, unsupported } from './util.js';

const x = (ctx: GradContext, i = 0): string => ctx.node.inputs[i]!;
const y = (ctx: GradContext, i = 0): string => ctx.node.outputs[i]!;

/** Gradient for input i of a broadcasting binary op, given the full-shape gradient `g`. */
function toInput(ctx: GradContext, i: number, g: string): string | undefined {
  if (!ctx.needsGrad(i)) return undefined;
  return unbroadcast(ctx.b, g, ctx.outputShapes[0]!, ctx.inputShapes[i]!);
}

/** Rules of one-input ops whose gradient is dY times something, written once. */
function unary(opType: string, f: (ctx: GradContext, dY: string) => string): void {
  registerGradient(opType, (ctx) => {
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return [undefined];
    return [f(ctx, dY)];
  });
}

export function registerElementwiseGradients(): void {
  // Relu: pass dY where the output is positive. Uses Y so X need not be kept.
  unary('Relu', (c, dY) => {
    const b = c.b;
    const zero = b.scalar(0);
    return b.op('Where', [b.op('Greater', [y(c), zero]), dY, zero]);
  });
  unary('LeakyRelu', (c, dY) => {
    const b = c.b;
    const alpha = attrFloat(c, 'alpha', 0.01);
    return b.op('Where', [b.op('Greater', [x(c), b.scalar(0)]), dY, b.op('Mul', [dY, b.scalar(alpha)])]);
  });
  // Sigmoid: dY * Y * (1 - Y).
  unary('Sigmoid', (c, dY) => {
    const b = c.b;
    return b.op('Mul', [dY, b.op('Mul', [y(c), b.op('Sub', [b.scalar(1), y(c)])])]);
  });
  unary('Tanh', (c, dY) => {
    const b = c.b;
    return b.op('Mul', [dY, b.op('Sub', [b.scalar(1), b.op('Mul', [y(c), y(c)])])]);
  });
  unary('Exp', (c, dY) => c.b.op('Mul', [dY, y(c)]));
  unary('Log', (c, dY) => c.b.op('Div', [dY, x(c)]));
  unary('Neg', (c, dY) => c.b.op('Neg', [dY]));
  unary('Abs', (c, dY) => c.b.op('Mul', [dY, c.b.op('Sign', [x(c)])]));
  // d sqrt(x) = dY / (2 sqrt(x)).
  unary('Sqrt', (c, dY) => c.b.op('Div', [c.b.op('Mul', [dY, c.b.scalar(0.5)]), y(c)]));
  // Softplus(x) = log(1 + e^x): derivative sigmoid(x).
  unary('Softplus', (c, dY) => c.b.op('Mul', [dY, c.b.op('Sigmoid', [x(c)])]));
  unary('Identity', (_c, dY) => dY);
  unary('Cast', (c, dY) => {
    const to = attrInt(c, 'to', 1);
    if (to !== 1) throw unsupported(c, `only float32 casts are differentiable (to=${to})`);
    return dY;
  });
  // Dropout in inference form (no mask output, training_mode absent) is the identity.
  registerGradient('Dropout', (ctx) => {
    if (ctx.node.inputs.length >= 3 && ctx.node.inputs[2]) throw unsupported(ctx, 'training_mode input is not supported');
    return [ctx.needsGrad(0) ? ctx.dY[0] : undefined];
  });
  // Softmax over one axis (opset 13+): Y * (dY - sum(dY * Y, axis)).
  unary('Softmax', (c, dY) => {
    const b = c.b;
    const rank = c.inputShapes[0]!.length;
    let axis = attrInt(c, 'axis', -1);
    if (axis < 0) axis += rank;
    const s = b.op('ReduceSum', [b.op('Mul', [dY, y(c)]), b.i64([axis])], { keepdims: A.int(1) });
    return b.op('Mul', [y(c), b.op('Sub', [dY, s])]);
  });

  // Clip: gradient passes where min <= x <= max (inputs 1 and 2 are optional constants).
  registerGradient('Clip', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return [undefined];
    if (ctx.needsGrad(1) || ctx.needsGrad(2)) throw unsupported(ctx, 'min/max must not need a gradient');
    const b = ctx.b;
    let mask: string | undefined;
    const lo = ctx.node.inputs[1];
    const hi = ctx.node.inputs[2];
    if (lo) mask = b.op('GreaterOrEqual', [x(ctx), lo]);
    if (hi) {
      const m = b.op('LessOrEqual', [x(ctx), hi]);
      mask = mask ? b.op('And', [mask, m]) : m;
    }
    if (!mask) return [dY];
    return [b.op('Mul', [dY, b.op('Cast', [mask], { to: A.int(1) })])];
  });

  // Pow with a constant exponent p: dY * p * x^(p-1).
  registerGradient('Pow', (ctx) => {
    if (ctx.needsGrad(1)) throw unsupported(ctx, 'the exponent must be a constant');
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return [undefined, undefined];
    const p = constNumbers(ctx.constantInput(1));
    if (!p) throw unsupported(ctx, 'the exponent must be an initializer or Constant');
    const b = ctx.b;
    const pm1 = b.f32(p.map((v) => v - 1), ctx.constantInput(1)!.dims);
    const pc = b.f32(p, ctx.constantInput(1)!.dims);
    const g = b.op('Mul', [dY, b.op('Mul', [pc, b.op('Pow', [x(ctx), pm1])])]);
    return [unbroadcast(b, g, ctx.outputShapes[0]!, ctx.inputShapes[0]!), undefined];
  });

  registerGradient('Add', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined];
    return [toInput(ctx, 0, dY), toInput(ctx, 1, dY)];
  });
  registerGradient('Sum', (ctx) => {
    const dY = ctx.dY[0];
    return ctx.node.inputs.map((_, i) => (dY ? toInput(ctx, i, dY) : undefined));
  });
  registerGradient('Sub', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined];
    return [toInput(ctx, 0, dY), ctx.needsGrad(1) ? toInput(ctx, 1, ctx.b.op('Neg', [dY])) : undefined];
  });
  registerGradient('Mul', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined];
    const b = ctx.b;
    return [
      ctx.needsGrad(0) ? toInput(ctx, 0, b.op('Mul', [dY, x(ctx, 1)])) : undefined,
      ctx.needsGrad(1) ? toInput(ctx, 1, b.op('Mul', [dY, x(ctx, 0)])) : undefined,
    ];
  });
  // Div: dA = dY / B; dB = -dY * Y / B.
  registerGradient('Div', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined];
    const b = ctx.b;
    const dA = b.op('Div', [dY, x(ctx, 1)]);
    return [
      ctx.needsGrad(0) ? toInput(ctx, 0, dA) : undefined,
      ctx.needsGrad(1) ? toInput(ctx, 1, b.op('Neg', [b.op('Mul', [dA, y(ctx)])])) : undefined,
    ];
  });
  // Max/Min of two inputs: the gradient goes to the winner. Ties go to the first input (PyTorch splits
  // them); ties have measure zero for continuous data, so the choice does not matter in training.
  for (const [op, cmp] of [
    ['Max', 'GreaterOrEqual'],
    ['Min', 'LessOrEqual'],
  ] as const) {
    registerGradient(op, (ctx) => {
      if (ctx.node.inputs.length !== 2) throw unsupported(ctx, 'only the two-input form is differentiable');
      const dY = ctx.dY[0];
      if (!dY) return [undefined, undefined];
      const b = ctx.b;
      const first = b.op(cmp, [x(ctx, 0), x(ctx, 1)]);
      const zero = b.scalar(0);
      return [
        ctx.needsGrad(0) ? toInput(ctx, 0, b.op('Where', [first, dY, zero])) : undefined,
        ctx.needsGrad(1) ? toInput(ctx, 1, b.op('Where', [first, zero, dY])) : undefined,
      ];
    });
  }
  registerGradient('Where', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined, undefined];
    const b = ctx.b;
    const cond = x(ctx, 0);
    const zero = b.scalar(0);
    return [
      undefined,
      ctx.needsGrad(1) ? toInput(ctx, 1, b.op('Where', [cond, dY, zero])) : undefined,
      ctx.needsGrad(2) ? toInput(ctx, 2, b.op('Where', [cond, zero, dY])) : undefined,
    ];
  });
  // Constants and comparisons carry no gradient.
  for (const op of ['Constant', 'ConstantOfShape', 'Shape', 'Greater', 'Less', 'Equal', 'GreaterOrEqual', 'LessOrEqual', 'Sign', 'Floor', 'Ceil', 'Round']) {
    registerGradient(op, (ctx) => ctx.node.inputs.map(() => undefined));
  }
}
