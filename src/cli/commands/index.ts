import type { CommandModule } from 'yargs';
import { notYetAvailable } from '../notYet.js';
import { command as inspectCommand } from './inspect.js';
import { command as modelsCommand } from './models.js';
import { command as evalCommand } from './eval.js';
import { command as benchCommand } from './bench.js';
import { command as segmentCommand } from './segment.js';
import { command as rewriteCommand } from './rewrite.js';
import { command as quantizeCommand } from './quantize.js';
import { command as packageCommand } from './package.js';
import { command as runCommand } from './run.js';
import { command as demoCommand } from './demo.js';
import { command as distillCommand } from './distill.js';
import { command as keygenCommand } from './keygen.js';
import { command as auditCommand } from './audit.js';

// Each stage replaces its placeholder with `import { command as x } from './x.js'`.
export const commands: CommandModule<any, any>[] = [
  inspectCommand,
  modelsCommand,
  evalCommand,
  benchCommand,
  segmentCommand,
  rewriteCommand,
  quantizeCommand,
  distillCommand,
  runCommand,
  packageCommand,
  keygenCommand,
  demoCommand,
  auditCommand,
];
