/**
 * `lesionfuse distill`: a thin layer over `distill()` (src/distill/distill.ts).
 */
import type { CommandModule } from 'yargs';
import { distill } from '../../distill/distill.js';
import { DEFAULT_ROBUST } from '../../distill/augment.js';
import { parseStudentName, STUDENT_NAMES } from '../../distill/zoo/index.js';
import { resolveModelPath } from '../../models.js';
import { LesionFuseError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { parseSize } from '../../runtime/segment.js';

interface DistillArgs {
  teacher?: string;
  student: string;
  width?: number;
  depth?: number;
  data: string;
  out: string;
  epochs: number;
  batch: number;
  lr: number;
  'weight-decay': number;
  'loss-weights'?: string;
  temperature: number;
  kd: boolean;
  limit?: number;
  'val-limit'?: number;
  'max-steps'?: number;
  seed: number;
  resume: boolean;
  threads: number;
  augment: boolean;
  robust: boolean;
  'cache-dir'?: string;
  'skip-unpaired': boolean;
  'input-size'?: string;
  json: boolean;
}

/** Parse `bce=1,dice=1,kd=0.5` into weights; unknown names and bad numbers are refused. */
export function parseLossWeights(text: string): { bce?: number; dice?: number; kd?: number } {
  const out: Record<string, number> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(bce|dice|kd)=(.+)$/.exec(part);
    if (!m) throw new LesionFuseError(`'${part}' is not name=value with name bce, dice or kd`, { subject: '--loss-weights' });
    const v = Number(m[2]);
    if (!Number.isFinite(v) || v < 0) throw new LesionFuseError(`${m[1]} must be a number >= 0, got '${m[2]}'`, { subject: '--loss-weights' });
    out[m[1]!] = v;
  }
  return out;
}

export const command: CommandModule<object, DistillArgs> = {
  command: 'distill',
  describe: 'distil a teacher into a zoo student (or train it on the masks alone with --no-kd)',
  builder: (y) =>
    y
      .option('teacher', { type: 'string', describe: 'teacher ONNX (a path or default:teacher); required unless --no-kd' })
      .option('student', { type: 'string', demandOption: true, choices: [...STUDENT_NAMES], describe: 'the zoo student' })
      .option('width', { type: 'number', describe: 'student width (channels at the first level; zoo default)' })
      .option('depth', { type: 'number', describe: 'number of x2 downsamplings (default 4)' })
      .option('data', { type: 'string', demandOption: true, describe: 'dataset folder (train split to train, val split to select)' })
      .option('out', { type: 'string', demandOption: true, describe: 'output folder (student.onnx, checkpoint, history)' })
      .option('epochs', { type: 'number', default: 10 })
      .option('batch', { type: 'number', default: 8 })
      .option('lr', { type: 'number', default: 2e-3, describe: 'peak AdamW learning rate (warm-up + cosine)' })
      .option('weight-decay', { type: 'number', default: 1e-4 })
      .option('loss-weights', { type: 'string', describe: 'e.g. bce=1,dice=1,kd=1 (defaults 1 each)' })
      .option('temperature', { type: 'number', default: 2, describe: 'KD temperature' })
      .option('kd', { type: 'boolean', default: true, describe: 'distil from the teacher; --no-kd trains on the masks alone' })
      .option('limit', { type: 'number', describe: 'use a seeded subset of N training images' })
      .option('val-limit', { type: 'number', describe: 'use a seeded subset of N validation images' })
      .option('max-steps', { type: 'number', describe: 'stop after N optimizer steps with a checkpoint (--resume continues; the schedule still spans --epochs)' })
      .option('seed', { type: 'number', default: 0 })
      .option('resume', { type: 'boolean', default: false, describe: 'continue from <out>/checkpoint.lfck' })
      .option('threads', { type: 'number', default: 2, describe: 'onnxruntime intra-op threads' })
      .option('augment', { type: 'boolean', default: true, describe: '--no-augment turns augmentation off' })
      .option('robust', { type: 'boolean', default: false, describe: 'full-field augmentation: zoom-out, stickers/rulers/hair/dark corners, darker skin (reports/robustness)' })
      .option('cache-dir', { type: 'string', describe: 'soft-label cache (default <out>/cache/softlabels)' })
      .option('skip-unpaired', { type: 'boolean', default: false, describe: 'go on without images that have no mask (and masks without image)' })
      .option('input-size', { type: 'string', describe: "HxW to train at, for a teacher whose height/width are symbolic and unrecorded (default: the teacher's)" })
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
      .example(
        'lesionfuse distill --teacher default:teacher --student ultralight --data ../shared/data --out runs/ul --epochs 5',
        'distil the bundled teacher into the ultra-light student',
      )
      .example('lesionfuse distill --student ultralight --no-kd --data ../shared/data --out runs/ul-masks', 'the same student on the masks alone (the baseline)'),
  handler: async (a) => {
    const result = await distill({
      teacher: a.teacher ? resolveModelPath(a.teacher) : undefined,
      student: parseStudentName(a.student),
      width: a.width,
      depth: a.depth,
      data: a.data,
      out: a.out,
      epochs: a.epochs,
      batch: a.batch,
      lr: a.lr,
      weightDecay: a['weight-decay'],
      lossWeights: a['loss-weights'] ? parseLossWeights(a['loss-weights']) : undefined,
      temperature: a.temperature,
      kd: a.kd,
      limit: a.limit,
      valLimit: a['val-limit'],
      maxSteps: a['max-steps'],
      seed: a.seed,
      resume: a.resume,
      threads: a.threads,
      augment: a.augment ? (a.robust ? { robust: { ...DEFAULT_ROBUST } } : undefined) : false,
      cacheDir: a['cache-dir'],
      skipUnpaired: a['skip-unpaired'],
      ...(a['input-size'] !== undefined ? { inputSize: parseSize(a['input-size']) } : {}),
    });
    if (a.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      log.info(
        `student ${result.studentPath}: ${result.paramCount} parameters, ${(result.macs / 1e6).toFixed(1)}M multiply-adds, best val Dice ${result.bestValDice.toFixed(4)} at epoch ${result.bestEpoch}` +
          (result.teacherValDice !== null ? ` (teacher ${result.teacherValDice.toFixed(4)} on the same images and resolution)` : ''),
      );
    }
  },
};
