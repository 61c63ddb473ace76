/**
 * `lesionfuse demo [--out DIR] [--fast]`: the offline demo on the bundled models and samples (src/pipeline/demo.ts).
 */
import type { CommandModule } from 'yargs';
import { runDemo } from '../../pipeline/demo.js';
import { printSummary } from './run.js';
import { log } from '../../util/log.js';

interface Args {
  out?: string;
  teacher?: string;
  student?: string;
  fast: boolean;
  json: boolean;
}

export const command: CommandModule<object, Args> = {
  command: 'demo',
  describe: 'the offline demo: bundled teacher + student -> rewrite -> INT8 -> evaluate -> benchmark -> report -> bundle, in a few minutes',
  builder: (y) =>
    y
      .option('out', { type: 'string', describe: 'output folder (default: lesionfuse-out/demo)' })
      .option('fast', { type: 'boolean', default: process.env.LESIONFUSE_DEMO_FAST === '1', describe: 'a smoke test: 2 images, 3 timed runs (also LESIONFUSE_DEMO_FAST=1)' })
      .option('teacher', { type: 'string', describe: 'use this teacher instead of default:teacher (e.g. an interim export)' })
      .option('student', { type: 'string', describe: 'use this student instead of default:student' })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout' })
      .example('$0 demo', 'run the demo and print where the report is')
      .example('$0 demo --out /tmp/demo --fast', 'a quick smoke test'),
  handler: async (a) => {
    const models = { ...(a.teacher ? { teacher: a.teacher } : {}), ...(a.student ? { student: a.student } : {}) };
    const r = await runDemo({ out: a.out, fast: a.fast, models, command: `lesionfuse ${process.argv.slice(2).join(' ')}` });
    printSummary(r, a.json);
    for (const s of r.skipped) log.warn(`demo: ${s}`);
    if (r.report) log.info(`\nOpen the report: ${r.report.html}`);
    if (r.failed.length) process.exitCode = 3;
  },
};
