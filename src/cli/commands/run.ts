/**
 * `lesionfuse run pipeline.yaml`: validate the config (every problem listed before any work), run the
 * pipeline, print the summary. Exit status 3 when a step failed (the report still shows the rest).
 */
import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { loadPipelineConfig, PipelineConfigError } from '../../pipeline/config.js';
import { runPipeline, type PipelineResult } from '../../pipeline/run.js';
import { log } from '../../util/log.js';
import { LesionFuseError } from '../../util/errors.js';

interface Args {
  config: string;
  out?: string;
  json: boolean;
}

/** Print the run's summary (stderr) and where things are (stdout, one path per line). */
export function printSummary(r: PipelineResult, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify({ outDir: r.outDir, report: r.report?.html ?? null, bundle: r.bundle?.dir ?? null, tarball: r.bundle?.tarball ?? null, chosen: r.chosen, steps: r.steps, failed: r.failed }, null, 2) + '\n');
    return;
  }
  log.info('');
  log.info('steps:');
  for (const s of r.steps) log.info(`  ${s.status.padEnd(7)} ${s.id}${s.status === 'ran' && s.seconds ? ` (${s.seconds.toFixed(1)} s)` : ''}${s.reason ? `: ${s.reason}` : ''}`);
  if (r.failed.length) log.error(`${r.failed.length} step${r.failed.length > 1 ? 's' : ''} failed: ${r.failed.map((f) => f.id).join(', ')}`);
  if (r.chosen) log.info(`chosen for packaging: ${r.chosen}`);
  if (r.bundle) log.info(`bundle: ${r.bundle.dir}${r.bundle.tarball ? ` and ${r.bundle.tarball}` : ''}`);
  if (r.report) {
    log.info(`report: ${r.report.html} (also report.md, report.json)`);
    process.stdout.write(`${r.report.html}\n`);
  }
}

export const command: CommandModule<object, Args> = {
  command: 'run <config>',
  describe: 'run a pipeline config: distill -> rewrite -> quantize -> evaluate + benchmark per profile -> report -> package',
  builder: (y) =>
    y
      .positional('config', { type: 'string', demandOption: true, describe: 'the pipeline YAML file (see pipelines/)' })
      .option('out', { type: 'string', describe: "output folder (default: the config's `out`)" })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout' })
      .example('$0 run pipelines/example.yaml', 'run a pipeline; a second run reuses every step whose inputs and settings did not change'),
  handler: async (a) => {
    let cfg;
    try {
      cfg = loadPipelineConfig(a.config);
    } catch (err) {
      if (!(err instanceof PipelineConfigError)) throw err;
      for (const p of err.problems) log.error(`${a.config}: ${p}`);
      throw new LesionFuseError(`${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} in the pipeline config (listed above); nothing was run`, { subject: a.config });
    }
    if (a.out) cfg.outDir = resolve(a.out);
    const r = await runPipeline(cfg, { command: `lesionfuse ${process.argv.slice(2).join(' ')}` });
    printSummary(r, a.json);
    if (r.failed.length) process.exitCode = 3;
  },
};
