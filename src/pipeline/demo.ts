/**
 * The offline demo: pipelines/demo.yaml on the bundled models and sample images. Runs what exists: a
 * bundled model that is not shipped in this build is dropped with a note saying so, rather than failing
 * the whole demo.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { packageRoot } from '../util/paths.js';
import { LesionFuseError } from '../util/errors.js';
import { log } from '../util/log.js';
import { listBundledModels } from '../models.js';
import { validatePipelineConfig, type PipelineConfigInput } from './config.js';
import { runPipeline, type PipelineResult } from './run.js';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Output folder. Default: lesionfuse-out/demo in the current folder. */
  out?: string;
  /**
   * Shorter still (2 images, 3 timed runs, 1 overlay), for CI. Default: true when the environment has
   * LESIONFUSE_DEMO_FAST=1.
   */
  fast?: boolean;
  /** Use these files instead of the bundled models (null drops one). For development and tests. */
  models?: { teacher?: string | null; student?: string | null };
  /** The command line recorded in the report. */
  command?: string;
}

/** What the demo did, plus what it left out and why. */
export interface DemoResult extends PipelineResult {
  skipped: string[];
}

/** pipelines/demo.yaml adjusted to this install (models present, fast mode, output folder), not yet validated. */
export function demoConfig(opts: DemoOptions = {}): { value: PipelineConfigInput; skipped: string[]; source: string; baseDir: string } {
  const baseDir = join(packageRoot(), 'pipelines');
  const source = join(baseDir, 'demo.yaml');
  if (!existsSync(source)) throw new LesionFuseError('the demo pipeline is not installed', { subject: source });
  const value = parseYaml(readFileSync(source, 'utf8')) as PipelineConfigInput & { teacher?: { model: string }; students: { model: string }[] };
  const skipped: string[] = [];
  const present = new Map(listBundledModels().map((m) => [m.alias, m.present]));
  const pick = (alias: 'teacher' | 'student'): string | null => {
    const override = opts.models?.[alias];
    if (override !== undefined) return override === null ? null : resolve(override);
    if (present.get(`default:${alias}`)) return `default:${alias}`;
    skipped.push(`the bundled ${alias} (default:${alias}) is not shipped in this build, so its candidates were skipped`);
    return null;
  };
  const teacher = pick('teacher');
  const student = pick('student');
  if (teacher) value.teacher = { model: teacher };
  else delete value.teacher;
  value.students = student ? [{ model: student }] : [];
  if (!teacher && !student) throw new LesionFuseError('nothing to demo: neither default:teacher nor default:student is present in this build (see `lesionfuse models`)');
  if (!teacher || !student) value.select = { ...(value.select ?? {}), maxDiceDrop: 1 };
  const fast = opts.fast ?? process.env.LESIONFUSE_DEMO_FAST === '1';
  if (fast) {
    value.dataset = { ...value.dataset, limit: 2 };
    if (value.rewrite) value.rewrite = { ...value.rewrite, parityImages: 2 };
    if (value.quantize) value.quantize = { ...value.quantize, calibration: { ...value.quantize.calibration, limit: 2 } };
    value.benchmark = { warmup: 1, runs: 3, throughputBatch: 2, throughputRuns: 1 };
    value.report = { ...(value.report ?? {}), overlays: 1 };
  }
  // The caveats, with this run's numbers (the YAML's own notes describe the full demo).
  const nCal = value.quantize?.calibration.limit ?? 64;
  const nEval = value.dataset.limit ?? 6;
  value.notes = [
    `Demo shortcut: INT8 calibration uses ${nCal} of the bundled sample images, which are also images scored here. Real runs calibrate on a train split and report on the test split (see pipelines/example.yaml).`,
    `Demo shortcut: accuracy on ${nEval} bundled sample image${nEval === 1 ? '' : 's'} only, so the Dice intervals are wide; the models' cards give test-split numbers.`,
    "Demo shortcut: no INT8 accuracy gate (there is no validation split among the samples); the report shows the INT8 models' Dice instead.",
    ...(fast ? ['Fast demo (LESIONFUSE_DEMO_FAST=1 or --fast): a smoke test, not a measurement.'] : []),
    ...skipped.map((s) => `Skipped: ${s}.`),
  ];
  value.out = resolve(opts.out ?? join('lesionfuse-out', 'demo'));
  return { value, skipped, source, baseDir };
}

/** Run the demo; prints progress on stderr and returns where the report and the bundle are. */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const { value, skipped, source, baseDir } = demoConfig(opts);
  for (const s of skipped) log.warn(`demo: ${s}`);
  const cfg = validatePipelineConfig(value, source, baseDir);
  log.info(`demo: ${cfg.teacher ? 'teacher' : ''}${cfg.teacher && cfg.students.length ? ' + ' : ''}${cfg.students.length ? 'student' : ''}` +
    ` -> rewrite -> INT8 -> evaluate on ${value.dataset.limit ?? 'the 6'} sample images -> benchmark on ${cfg.profiles.join(', ')} (${cfg.benchmark.runs} runs) -> report -> bundle, into ${cfg.outDir}`);
  const r = await runPipeline(cfg, { command: opts.command ?? 'lesionfuse demo' });
  return { ...r, skipped };
}
