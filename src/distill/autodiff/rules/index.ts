/** Registers every built-in gradient rule once (imported for its effect by `backward.ts`). */
import { registerConvGradients } from './conv.js';
import { registerElementwiseGradients } from './elementwise.js';
import { registerLinalgGradients } from './linalg.js';
import { registerNormGradients } from './norm.js';
import { registerPoolGradients } from './pool.js';
import { registerResizeGradient } from './resize.js';
import { registerShapeGradients } from './shape.js';

let done = false;
/** Idempotent: registers the built-in rules on first call. */
export function registerBuiltinGradients(): void {
  if (done) return;
  done = true;
  registerElementwiseGradients();
  registerConvGradients();
  registerPoolGradients();
  registerResizeGradient();
  registerNormGradients();
  registerShapeGradients();
  registerLinalgGradients();
}
registerBuiltinGradients();
