/**
 * The pipeline config (`lesionfuse run pipeline.yaml`): one YAML file that names the teacher, the students,
 * the rewrites, the quantization, the profiles, the dataset, the selection rule and the output folder.
 * It is validated completely BEFORE any work starts, and every problem is listed with its path in the file
 * and the allowed values, so a typo costs seconds rather than an hour of distillation.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { LesionFuseError } from '../util/errors.js';
import { BUNDLED_MODELS, resolveModelPath } from '../models.js';
import { STUDENT_NAMES } from '../distill/zoo/index.js';
import { PASSES, DEFAULT_PASSES } from '../export/rewrite.js';
import { listProfiles } from '../runtime/profiles.js';

const SPLITS = ['train', 'val', 'test', 'all'] as const;
export const CALIBRATORS = ['minmax', 'percentile', 'entropy'] as const;
export const SELECTION_RULES = ['fastest-within', 'best-dice', 'named'] as const;

const ModelRef = z.string().min(1);
const InputSize = z.string().regex(/^\d+x\d+$/, 'must be HxW, e.g. 192x256');

const DistilledStudent = z
  .object({
    /** Zoo architecture to distil. */
    name: z.string(),
    /** Candidate id prefix (default: the name, or name-w<width>). */
    id: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore').optional(),
    width: z.number().int().min(1).max(512).optional(),
    depth: z.number().int().min(1).max(6).optional(),
    epochs: z.number().int().min(1).max(1000).default(10),
    batch: z.number().int().min(1).max(256).default(8),
    lr: z.number().positive().max(1).optional(),
    temperature: z.number().positive().max(100).optional(),
    kd: z.boolean().default(true),
    /** Use only N training images (a seeded subset). */
    limit: z.number().int().min(1).optional(),
    valLimit: z.number().int().min(1).optional(),
    maxSteps: z.number().int().min(1).optional(),
    seed: z.number().int().min(0).default(0),
  })
  .strict();

const GivenStudent = z
  .object({
    /** An existing student model (path or default:student): no distillation. */
    model: ModelRef,
    id: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore').optional(),
  })
  .strict();

const DataRef = z
  .object({
    path: z.string().min(1),
    split: z.enum(SPLITS).optional(),
    limit: z.number().int().min(1).optional(),
    sources: z.array(z.string()).optional(),
  })
  .strict();

/** The schema of the config file. Unknown keys are refused (usually typos). */
export const PipelineSchema = z
  .object({
    /** Run name: used in titles and file names. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore'),
    /** Output folder, relative to the config file. Default: lesionfuse-out/<name> beside the config. */
    out: z.string().optional(),
    teacher: z.object({ model: ModelRef, id: z.string().regex(/^[A-Za-z0-9._-]+$/).default('teacher') }).strict().optional(),
    students: z.array(z.union([GivenStudent, DistilledStudent])).default([]),
    /** Model input size for distilled students without a teacher; H and W multiples of 32. */
    inputSize: InputSize.optional(),
    /** Data the students are distilled on (its train/val splits). Default: the evaluation dataset's folder. */
    trainData: z.object({ path: z.string().min(1) }).strict().optional(),
    rewrite: z
      .object({
        /** Passes applied to every base model (each gives a 'rewritten' candidate); [] = none. */
        passes: z.array(z.string()).default([...DEFAULT_PASSES]),
        tolerance: z.number().positive().max(1).optional(),
      })
      .strict()
      .optional(),
    quantize: z
      .object({
        enabled: z.boolean().default(true),
        calibrator: z.enum(CALIBRATORS).default('minmax'),
        /** Default: the quantizer's choice for this CPU. */
        activations: z.enum(['int8', 'uint8']).optional(),
        perChannel: z.boolean().default(true),
        calibration: DataRef,
        /** Max Dice drop on the val data; null = no gate. */
        gate: z.number().min(0).max(1).nullable().default(0.01),
        /** Per-layer sensitivity: 'auto' (only when the gate fails), 'always', 'off'. */
        sensitivity: z.enum(['auto', 'always', 'off']).default('auto'),
        /** Validation data for the gate/sensitivity (default: the calibration data's val split). */
        validation: DataRef.optional(),
        dynamicMatMul: z.boolean().default(false),
        /** Write a model that fails the gate anyway (it is marked in the report). */
        force: z.boolean().default(false),
      })
      .strict()
      .optional(),
    profiles: z.array(z.string()).min(1),
    dataset: DataRef,
    benchmark: z
      .object({
        warmup: z.number().int().min(0).max(1000).default(5),
        runs: z.number().int().min(1).max(100000).default(30),
        throughputBatch: z.number().int().min(1).max(256).default(8),
        throughputRuns: z.number().int().min(1).max(10000).default(10),
      })
      .strict()
      .default({ warmup: 5, runs: 30, throughputBatch: 8, throughputRuns: 10 }),
    report: z
      .object({
        /** Overlays of the first N evaluation images per candidate in the HTML report. */
        overlays: z.number().int().min(0).max(20).default(3),
        title: z.string().optional(),
      })
      .strict()
      .default({ overlays: 3 }),
    select: z
      .object({
        rule: z.enum(SELECTION_RULES).default('fastest-within'),
        /** The profile whose latency decides (fastest-within). Default: the first profile. */
        profile: z.string().optional(),
        /** fastest-within: allowed Dice drop from the best candidate. */
        maxDiceDrop: z.number().min(0).max(1).default(0.02),
        /** named: the candidate id to package. */
        candidate: z.string().optional(),
      })
      .strict()
      .default({ rule: 'fastest-within', maxDiceDrop: 0.02 }),
    package: z
      .object({
        enabled: z.boolean().default(true),
        /** Profile the bundle is tuned for. Default: select.profile. */
        profile: z.string().optional(),
        tar: z.boolean().default(true),
        sample: z.string().optional(),
      })
      .strict()
      .default({ enabled: true, tar: true }),
    /** Caveats printed in the report (the demo uses this to say what it shortened). */
    notes: z.array(z.string()).default([]),
  })
  .strict();

export type PipelineConfigInput = z.input<typeof PipelineSchema>;
export type PipelineConfigRaw = z.output<typeof PipelineSchema>;
export type DistilledStudentConfig = z.output<typeof DistilledStudent>;
export type GivenStudentConfig = z.output<typeof GivenStudent>;

/** A validated config with every path resolved (relative paths are relative to the config file's folder). */
export interface PipelineConfig extends PipelineConfigRaw {
  /** The config file (or '<inline>'). */
  source: string;
  /** Absolute output folder. */
  outDir: string;
  /** Resolved model paths, by reference as written. */
  teacherPath: string | null;
}

/** A config with problems: `problems` has one line per problem, `message` joins them on one line. */
export class PipelineConfigError extends LesionFuseError {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`${problems.length} problem${problems.length === 1 ? '' : 's'} in the pipeline config: ${problems.join('; ')}`, { subject: source });
    this.name = 'PipelineConfigError';
    this.problems = problems;
  }
}

function pathText(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || '(top level)';
}

function zodProblems(err: z.ZodError): string[] {
  const out: string[] = [];
  for (const i of err.issues) {
    const where = pathText(i.path);
    if (i.code === 'unrecognized_keys') {
      out.push(`${where === '(top level)' ? '' : where + ': '}unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `'${k}'`).join(', ')}`);
    } else if (i.code === 'invalid_value') {
      out.push(`${where}: ${i.message.replace(/^Invalid option: expected one of /, 'must be one of ')}`);
    } else if (i.code === 'invalid_union') {
      out.push(`${where}: must be either { model: PATH | default:student } (an existing student) or { name: ${STUDENT_NAMES.join('|')}, ... } (a student to distil)`);
    } else out.push(`${where}: ${i.message}`);
  }
  return out;
}

function isBundledRef(ref: string): boolean {
  return ref.startsWith('default:');
}

/** Resolve a model reference: default:x names the bundled models, anything else is relative to `base`. */
function modelRefProblem(ref: string, base: string, where: string): { path: string | null; problem: string | null } {
  if (isBundledRef(ref)) {
    const alias = ref.slice('default:'.length);
    if (!BUNDLED_MODELS.some((m) => m.alias === alias)) {
      return { path: null, problem: `${where}: unknown model name '${ref}'; allowed: ${BUNDLED_MODELS.map((m) => 'default:' + m.alias).join(', ')} or a path to an .onnx file` };
    }
    try {
      return { path: resolveModelPath(ref), problem: null };
    } catch {
      return { path: null, problem: `${where}: '${ref}' is not shipped in this build (missing file)` };
    }
  }
  const p = isAbsolute(ref) ? ref : resolve(base, ref);
  if (!existsSync(p)) return { path: null, problem: `${where}: missing file ${p}` };
  if (!statSync(p).isFile()) return { path: null, problem: `${where}: ${p} is not a file` };
  return { path: p, problem: null };
}

function dataProblem(ref: string, base: string, where: string): { path: string; problem: string | null } {
  const p = isAbsolute(ref) ? ref : resolve(base, ref);
  if (!existsSync(p)) return { path: p, problem: `${where}: missing folder ${p}` };
  if (!statSync(p).isDirectory()) return { path: p, problem: `${where}: ${p} is not a folder` };
  return { path: p, problem: null };
}

function sizeProblem(text: string, where: string): string | null {
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (!m) return null; // the schema already said so
  const h = Number(m[1]);
  const w = Number(m[2]);
  if (h % 32 !== 0 || w % 32 !== 0 || h === 0 || w === 0) {
    return `${where}: H and W must be positive multiples of 32 (the students downsample 5 times), got ${h}x${w}; e.g. ${Math.max(32, Math.round(h / 32) * 32)}x${Math.max(32, Math.round(w / 32) * 32)}`;
  }
  return null;
}

/**
 * The candidate id prefix of each student entry (used for step folders, the report and `select.candidate`).
 * Given students: their `id`, else the file stem ('student' for default:student). Distilled: `id`, else
 * the zoo name (+ '-w<width>' when a width is set).
 */
export function studentIds(students: PipelineConfigRaw['students']): string[] {
  return students.map((s) => {
    if (s.id) return s.id;
    if ('model' in s) return isBundledRef(s.model) ? s.model.slice('default:'.length) : s.model.replace(/^.*[\\/]/, '').replace(/\.onnx$/i, '').replace(/[^A-Za-z0-9._-]/g, '_');
    return s.width ? `${s.name}-w${s.width}` : s.name;
  });
}

/** Every candidate id the config will produce, in report order. */
export function candidateIds(cfg: PipelineConfigRaw): string[] {
  const bases = [...(cfg.teacher ? [cfg.teacher.id] : []), ...studentIds(cfg.students)];
  const ids: string[] = [];
  const rw = (cfg.rewrite?.passes.length ?? 0) > 0;
  const q = cfg.quantize?.enabled ?? false;
  for (const b of bases) {
    ids.push(`${b}-fp32`);
    if (rw) ids.push(`${b}-rewritten`);
    if (q) ids.push(`${b}-int8`);
  }
  return ids;
}

/**
 * Validate a parsed config object. `source` names the file in errors; relative paths resolve against
 * `baseDir`. Throws {@link PipelineConfigError} listing every problem found.
 */
export function validatePipelineConfig(value: unknown, source: string, baseDir: string): PipelineConfig {
  const r = PipelineSchema.safeParse(value);
  if (!r.success) throw new PipelineConfigError(source, zodProblems(r.error));
  const cfg = r.data;
  const problems: string[] = [];
  let teacherPath: string | null = null;
  if (cfg.teacher) {
    const t = modelRefProblem(cfg.teacher.model, baseDir, 'teacher.model');
    teacherPath = t.path;
    if (t.problem) problems.push(t.problem);
  }
  cfg.students.forEach((s, i) => {
    if ('model' in s) {
      const t = modelRefProblem(s.model, baseDir, `students[${i}].model`);
      if (t.problem) problems.push(t.problem);
      else s.model = t.path!;
    } else {
      if (!(STUDENT_NAMES as readonly string[]).includes(s.name)) {
        problems.push(`students[${i}].name: unknown student '${s.name}'; allowed: ${STUDENT_NAMES.join(', ')}`);
      }
      if (!cfg.teacher && s.kd) problems.push(`students[${i}].kd: distillation needs a teacher (add teacher.model, or set kd: false)`);
    }
  });
  const ids = studentIds(cfg.students);
  const allBases = [...(cfg.teacher ? [cfg.teacher.id] : []), ...ids];
  allBases.forEach((id, i) => {
    if (allBases.indexOf(id) !== i) problems.push(`students: two models share the id '${id}'; give one an 'id'`);
  });
  if (allBases.length === 0) problems.push('teacher, students: name at least one model (teacher.model or students)');
  if (cfg.inputSize) {
    const p = sizeProblem(cfg.inputSize, 'inputSize');
    if (p) problems.push(p);
  }
  for (const [i, pass] of (cfg.rewrite?.passes ?? []).entries()) {
    if (!(pass in PASSES)) problems.push(`rewrite.passes[${i}]: unknown pass '${pass}'; allowed: ${Object.keys(PASSES).join(', ')}`);
  }
  const shipped = listProfiles().map((p) => p.name);
  cfg.profiles.forEach((p, i) => {
    if (p.endsWith('.json')) {
      const abs = isAbsolute(p) ? p : resolve(baseDir, p);
      if (!existsSync(abs)) problems.push(`profiles[${i}]: missing file ${abs}`);
      else cfg.profiles[i] = abs;
    } else if (!shipped.includes(p)) problems.push(`profiles[${i}]: unknown profile '${p}'; allowed: ${shipped.join(', ')} or a path to a .json profile`);
    if (cfg.profiles.indexOf(cfg.profiles[i]!) !== i) problems.push(`profiles[${i}]: '${p}' is listed twice`);
  });
  const profileNames = cfg.profiles.map((p) => p.replace(/^.*[\\/]/, '').replace(/\.json$/, ''));
  if (cfg.select.profile && !cfg.profiles.includes(cfg.select.profile) && !profileNames.includes(cfg.select.profile)) {
    problems.push(`select.profile: '${cfg.select.profile}' is not one of the run's profiles (${cfg.profiles.join(', ')})`);
  }
  if (cfg.package.profile && !cfg.profiles.includes(cfg.package.profile) && !profileNames.includes(cfg.package.profile) && !shipped.includes(cfg.package.profile)) {
    problems.push(`package.profile: unknown profile '${cfg.package.profile}'; allowed: ${shipped.join(', ')}`);
  }
  if (cfg.select.rule === 'named') {
    const all = candidateIds(cfg);
    if (!cfg.select.candidate) problems.push(`select.candidate: required when select.rule is 'named'; allowed: ${all.join(', ')}`);
    else if (!all.includes(cfg.select.candidate)) problems.push(`select.candidate: unknown candidate '${cfg.select.candidate}'; allowed: ${all.join(', ')}`);
  } else if (cfg.select.candidate) {
    problems.push(`select.candidate: only used when select.rule is 'named' (rule is '${cfg.select.rule}')`);
  }
  const ds = dataProblem(cfg.dataset.path, baseDir, 'dataset.path');
  cfg.dataset.path = ds.path;
  if (ds.problem) problems.push(ds.problem);
  if (cfg.trainData) {
    const t = dataProblem(cfg.trainData.path, baseDir, 'trainData.path');
    cfg.trainData.path = t.path;
    if (t.problem) problems.push(t.problem);
  }
  if (cfg.quantize) {
    const c = dataProblem(cfg.quantize.calibration.path, baseDir, 'quantize.calibration.path');
    cfg.quantize.calibration.path = c.path;
    if (c.problem) problems.push(c.problem);
    if (cfg.quantize.calibration.split && cfg.quantize.calibration.split !== 'train') {
      problems.push(`quantize.calibration.split: calibration always uses the train split of a dataset (or every image of a plain folder; never test, BENCHMARKS.md); allowed: train`);
    }
    if (cfg.quantize.validation) {
      const v = dataProblem(cfg.quantize.validation.path, baseDir, 'quantize.validation.path');
      cfg.quantize.validation.path = v.path;
      if (v.problem) problems.push(v.problem);
    }
  }
  if (cfg.package.sample) {
    const p = isAbsolute(cfg.package.sample) ? cfg.package.sample : resolve(baseDir, cfg.package.sample);
    if (!existsSync(p)) problems.push(`package.sample: missing file ${p}`);
    cfg.package.sample = p;
  }
  if (problems.length) throw new PipelineConfigError(source, problems);
  const outDir = cfg.out ? (isAbsolute(cfg.out) ? cfg.out : resolve(baseDir, cfg.out)) : resolve(baseDir, 'lesionfuse-out', cfg.name);
  return { ...cfg, source, outDir, teacherPath };
}

/** Read and validate a YAML (or JSON) config file. */
export function loadPipelineConfig(file: string): PipelineConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LesionFuseError(code === 'ENOENT' ? 'no such config file' : code === 'EISDIR' ? 'is a folder, expected a YAML file' : `cannot read (${(err as Error).message})`, { subject: file });
  }
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: false });
  } catch (err) {
    throw new LesionFuseError(`not valid YAML: ${(err as Error).message.split('\n')[0]}`, { subject: file });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new LesionFuseError('the config must be a YAML mapping (key: value lines)', { subject: file });
  return validatePipelineConfig(value, file, dirname(abs));
}
