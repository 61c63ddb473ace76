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
export const SELECTION_RULES = ['non-inferior', 'fastest-within', 'best-dice', 'named'] as const;

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
        /** Largest allowed max |dp| on probabilities in the parity check (default: the rewrite's, 1e-4). */
        tolerance: z.number().positive().max(1).optional(),
        /** Images the parity check runs (default: the rewrite's, up to 8 bundled samples). */
        parityImages: z.number().int().min(1).max(64).optional(),
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
        rule: z.enum(SELECTION_RULES).default('non-inferior'),
        /** non-inferior: largest acceptable Dice loss against the reference (upper bound of its 95% interval). */
        margin: z.number().min(0).max(1).default(0.01),
        /** non-inferior: the candidate id every other is compared with (default: the teacher's fp32 candidate, else the best Dice). */
        reference: z.string().optional(),
        /** non-inferior: fewest images a decision (and a subgroup in it) needs. */
        minGroupN: z.number().int().min(2).default(10),
        /** The profile whose latency decides (fastest-within). Default: the first profile. */
        profile: z.string().optional(),
        /** fastest-within: allowed Dice drop from the best candidate. */
        maxDiceDrop: z.number().min(0).max(1).default(0.02),
        /** named: the candidate id to package. */
        candidate: z.string().optional(),
      })
      .strict()
      .default({ rule: 'non-inferior', margin: 0.01, minGroupN: 10, maxDiceDrop: 0.02 }),
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
    return `${where}: H and W must be positive multiples of 32 (docs/inputs.md: the models downsample by up to 32), got ${h}x${w}; e.g. ${Math.max(32, Math.round(h / 32) * 32)}x${Math.max(32, Math.round(w / 32) * 32)}`;
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
  const problems = r.success ? [] : zodProblems(r.error);
  // The checks the schema cannot make (names, files, sizes) run even when the schema failed, on the raw
  // value, so that one run lists every problem; where the schema already named a path, it is not repeated.
  const named = new Set(problems.map((p) => p.split(':')[0]!));
  const v = (r.success ? r.data : structuredClone(value)) as LooseConfig;
  const { problems: more, teacherPath } = semanticProblems(v, baseDir);
  for (const p of more) if (!named.has(p.split(':')[0]!)) problems.push(p);
  if (problems.length || !r.success) throw new PipelineConfigError(source, problems);
  const cfg = r.data;
  const outDir = cfg.out ? (isAbsolute(cfg.out) ? cfg.out : resolve(baseDir, cfg.out)) : resolve(baseDir, 'lesionfuse-out', cfg.name);
  return { ...cfg, source, outDir, teacherPath };
}

/** A config that may not have passed the schema: every field is checked for its type before use. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LooseConfig = Record<string, any>;

const isObj = (x: unknown): x is LooseConfig => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStr = (x: unknown): x is string => typeof x === 'string';

/** The checks beyond the schema. Resolves paths in `v` in place (relative to `baseDir`). */
function semanticProblems(v: LooseConfig, baseDir: string): { problems: string[]; teacherPath: string | null } {
  const problems: string[] = [];
  let teacherPath: string | null = null;
  if (isObj(v.teacher) && isStr(v.teacher.model)) {
    const t = modelRefProblem(v.teacher.model, baseDir, 'teacher.model');
    teacherPath = t.path;
    if (t.problem) problems.push(t.problem);
  }
  const students: LooseConfig[] = Array.isArray(v.students) ? v.students.filter(isObj) : [];
  students.forEach((s, i) => {
    if (isStr(s.model)) {
      const t = modelRefProblem(s.model, baseDir, `students[${i}].model`);
      if (t.problem) problems.push(t.problem);
      else s.model = t.path!;
    } else if (isStr(s.name)) {
      if (!(STUDENT_NAMES as readonly string[]).includes(s.name)) {
        problems.push(`students[${i}].name: unknown student '${s.name}'; allowed: ${STUDENT_NAMES.join(', ')}`);
      }
      if (!isObj(v.teacher) && s.kd !== false) problems.push(`students[${i}].kd: distillation needs a teacher (add teacher.model, or set kd: false)`);
    }
  });
  const wellFormed = students.every((s) => isStr(s.model) || isStr(s.name));
  if (wellFormed) {
    const ids = studentIds(students as PipelineConfigRaw['students']);
    const allBases = [...(isObj(v.teacher) ? [isStr(v.teacher.id) ? v.teacher.id : 'teacher'] : []), ...ids];
    allBases.forEach((id, i) => {
      if (allBases.indexOf(id) !== i) problems.push(`students: two models share the id '${id}'; give one an 'id'`);
    });
    if (allBases.length === 0) problems.push('teacher, students: name at least one model (teacher.model or students)');
  }
  if (isStr(v.inputSize)) {
    const p = sizeProblem(v.inputSize, 'inputSize');
    if (p) problems.push(p);
  }
  const passes: unknown[] = isObj(v.rewrite) && Array.isArray(v.rewrite.passes) ? v.rewrite.passes : [];
  passes.forEach((pass, i) => {
    if (isStr(pass) && !(pass in PASSES)) problems.push(`rewrite.passes[${i}]: unknown pass '${pass}'; allowed: ${Object.keys(PASSES).join(', ')}`);
  });
  const shipped = listProfiles().map((p) => p.name);
  const profiles: unknown[] = Array.isArray(v.profiles) ? v.profiles : [];
  profiles.forEach((p, i) => {
    if (!isStr(p)) return;
    if (p.endsWith('.json')) {
      const abs = isAbsolute(p) ? p : resolve(baseDir, p);
      if (!existsSync(abs)) problems.push(`profiles[${i}]: missing file ${abs}`);
      else profiles[i] = abs;
    } else if (!shipped.includes(p)) problems.push(`profiles[${i}]: unknown profile '${p}'; allowed: ${shipped.join(', ')} or a path to a .json profile`);
    if (profiles.indexOf(profiles[i]) !== i) problems.push(`profiles[${i}]: '${p}' is listed twice`);
  });
  const profileNames = profiles.filter(isStr).map((p) => p.replace(/^.*[\\/]/, '').replace(/\.json$/, ''));
  const select = isObj(v.select) ? v.select : {};
  if (isStr(select.profile) && !profiles.includes(select.profile) && !profileNames.includes(select.profile)) {
    problems.push(`select.profile: '${select.profile}' is not one of the run's profiles (${profiles.join(', ')})`);
  }
  const pkg = isObj(v.package) ? v.package : {};
  if (isStr(pkg.profile) && !profiles.includes(pkg.profile) && !profileNames.includes(pkg.profile) && !shipped.includes(pkg.profile)) {
    problems.push(`package.profile: unknown profile '${pkg.profile}'; allowed: ${shipped.join(', ')}`);
  }
  if (select.rule === 'named' && wellFormed) {
    const all = candidateIds({ ...v, students, rewrite: isObj(v.rewrite) ? { passes: Array.isArray(v.rewrite.passes) ? v.rewrite.passes : [...DEFAULT_PASSES] } : undefined, quantize: isObj(v.quantize) ? { enabled: v.quantize.enabled !== false } : undefined, teacher: isObj(v.teacher) ? { id: isStr(v.teacher.id) ? v.teacher.id : 'teacher' } : undefined } as unknown as PipelineConfigRaw);
    if (!isStr(select.candidate)) problems.push(`select.candidate: required when select.rule is 'named'; allowed: ${all.join(', ')}`);
    else if (!all.includes(select.candidate)) problems.push(`select.candidate: unknown candidate '${select.candidate}'; allowed: ${all.join(', ')}`);
  } else if (isStr(select.candidate) && select.rule !== 'named') {
    problems.push(`select.candidate: only used when select.rule is 'named' (rule is '${select.rule ?? 'non-inferior'}')`);
  }
  const folder = (obj: unknown, where: string): void => {
    if (!isObj(obj) || !isStr(obj.path)) return;
    const d = dataProblem(obj.path, baseDir, where);
    obj.path = d.path;
    if (d.problem) problems.push(d.problem);
  };
  folder(v.dataset, 'dataset.path');
  folder(v.trainData, 'trainData.path');
  if (isObj(v.quantize)) {
    folder(v.quantize.calibration, 'quantize.calibration.path');
    folder(v.quantize.validation, 'quantize.validation.path');
    const split = isObj(v.quantize.calibration) ? v.quantize.calibration.split : undefined;
    if (isStr(split) && split !== 'train') {
      problems.push(`quantize.calibration.split: calibration always uses the train split of a dataset (or every image of a plain folder; never test, docs/benchmarks.md); allowed: train`);
    }
  }
  if (isStr(pkg.sample)) {
    const p = isAbsolute(pkg.sample) ? pkg.sample : resolve(baseDir, pkg.sample);
    if (!existsSync(p)) problems.push(`package.sample: missing file ${p}`);
    pkg.sample = p;
  }
  return { problems, teacherPath };
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
