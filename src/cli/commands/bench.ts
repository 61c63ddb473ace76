import type { CommandModule } from 'yargs';
import { benchmarkReport, benchMarkdown, parseInputOption, type InputOverride } from '../../runtime/benchmark.js';
import { parseSize } from '../../runtime/segment.js';

interface Args {
  models: string[];
  profile: string[];
  out?: string;
  runs: number;
  warmup: number;
  batch: number;
  'input-size'?: string;
  input?: string[];
  json: boolean;
}

/** `lesionfuse bench MODEL... --profile P...`: latency, throughput, memory, size per model x profile. */
export const command: CommandModule<object, Args> = {
  command: 'bench <models..>',
  describe: 'benchmark models on profiles: latency (median, p90), throughput, peak memory, size',
  builder: (y) =>
    y
      .positional('models', { type: 'string', array: true, demandOption: true, describe: 'ONNX files or default:student / default:teacher' })
      .option('profile', { type: 'string', array: true, default: ['cpu-1t'], describe: 'profile names or .json paths (several allowed); unavailable ones are reported as skipped' })
      .option('out', { type: 'string', describe: 'folder for bench.json and bench.md' })
      .option('runs', { type: 'number', default: 30, describe: 'timed runs at batch 1' })
      .option('warmup', { type: 'number', default: 5, describe: 'untimed runs first' })
      .option('batch', { type: 'number', default: 8, describe: 'batch size of the throughput measurement (0 skips it)' })
      .option('input-size', { type: 'string', describe: 'HxW for models with dynamic height/width' })
      .option('input', { type: 'string', array: true, describe: 'NAME=SHAPE[:fill] for an input the graph does not size, or a value other than zeros (e.g. state=2x1x128, sr=:16000); repeatable' })
      .option('json', { type: 'boolean', default: false, describe: 'print bench.json to stdout instead of the table' })
      .example('$0 bench default:student default:teacher --profile cpu-1t cpu-2t cuda --out reports/bench', 'two models, three profiles')
      .example('$0 bench vad.onnx --input input=1x512 --input state=2x1x128 --input sr=:16000', 'a model with several inputs, each sized and filled'),
  handler: async (a) => {
    const report = await benchmarkReport({
      models: a.models,
      profiles: a.profile,
      out: a.out,
      runs: a.runs,
      warmup: a.warmup,
      throughputBatch: a.batch,
      inputSize: a['input-size'] ? parseSize(a['input-size']) : undefined,
      inputs: Object.fromEntries((a.input ?? []).map((t) => parseInputOption(t))) as Record<string, InputOverride>,
      command: `lesionfuse ${process.argv.slice(2).join(' ')}`,
    });
    process.stdout.write(a.json ? JSON.stringify(report, null, 2) + '\n' : benchMarkdown(report));
  },
};
