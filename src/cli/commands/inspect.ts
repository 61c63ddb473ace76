import type { CommandModule } from 'yargs';
import { statSync } from 'node:fs';
import { resolveModelPath } from '../../models.js';
import { readModel } from '../../onnx/io.js';
import { inspectModel, formatModelSummary } from '../../onnx/inspect.js';
import { checkModel } from '../../onnx/check.js';
import { log } from '../../util/log.js';
import { parseSize } from '../../runtime/segment.js';

interface Args {
  model: string;
  json: boolean;
  'input-size'?: string;
}

/** `lesionfuse inspect MODEL [--json]`: what a model is, at a glance. */
export const command: CommandModule<object, Args> = {
  command: 'inspect <model>',
  describe: 'show inputs/outputs, opsets, ops, parameters and multiply-adds of an ONNX model',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'an ONNX file, or default:teacher / default:student' })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout' })
      .option('input-size', { type: 'string', describe: 'HxW at which to count multiply-adds when the model\'s height/width are symbolic' })
      .example('$0 inspect default:student', 'summarise the bundled student')
      .example('$0 inspect model.onnx --json', 'machine-readable summary')
      .example('$0 inspect external.onnx --input-size 224x224', 'multiply-adds of a model with dynamic height/width'),
  handler: async (args) => {
    const path = resolveModelPath(args.model);
    const model = await readModel(path);
    const inputSize = args['input-size'] !== undefined ? parseSize(args['input-size']) : undefined;
    const summary = inspectModel(model, { fileSizeBytes: statSync(path).size, ...(inputSize ? { inputSize } : {}) });
    const issues = checkModel(model);
    const errors = issues.filter((i) => i.severity === 'error').length;
    // A model the checker flags as invalid is a failed inspection: exit 2 (the summary is still printed).
    if (errors > 0) process.exitCode = 2;
    if (args.json) {
      process.stdout.write(JSON.stringify({ path, ...summary, issues }, null, 2) + '\n');
      if (errors > 0) log.error(`${path}: the checker found ${errors} error(s) (see "issues")`);
      return;
    }
    process.stdout.write(formatModelSummary(summary, path) + '\n');
    for (const i of issues) (i.severity === 'error' ? log.error : log.warn)(`${path}: ${i.message}`);
  },
};
