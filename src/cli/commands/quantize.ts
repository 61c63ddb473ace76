/**
 * `lesionfuse quantize IN OUT --calib DIR ...`: a thin layer over `quantizeFile` (src/quantize).
 * Writes OUT (QDQ INT8) and OUT.quant.json (what was quantized, what stayed float and why,
 * calibration time, val Dice before/after, the gate's verdict), or refuses with the drop.
 */
import type { CommandModule } from 'yargs';
import { quantizeFile, quantizationRecord, type QuantizeResult } from '../../quantize/quantize.js';
import { CALIBRATION_METHODS, type CalibrationMethod } from '../../quantize/calibrate.js';
import { resolveModelPath } from '../../models.js';
import { LesionFuseError } from '../../util/errors.js';

interface Args {
  input: string;
  output: string;
  calib: string;
  calibrator: string;
  activations: string;
  weights: string;
  'per-channel': boolean;
  'reduce-range': string;
  val?: string;
  'val-split': string;
  gate: number;
  exclude?: string;
  sensitivity: boolean;
  'sensitivity-always': boolean;
  'sensitivity-images': number;
  'dynamic-matmul': boolean;
  preset: string;
  'calib-limit': number;
  'val-limit': number;
  percentile?: number;
  'input-size'?: string;
  threads: number;
  force: boolean;
  json: boolean;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], option: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new LesionFuseError(`must be one of ${allowed.join(', ')}, got '${value}'`, { subject: option });
  return value as T;
}

function printResult(r: QuantizeResult, out: string): void {
  const w = (s: string) => process.stdout.write(s + '\n');
  w(`wrote ${out} and ${out}.quant.json`);
  w(`quantized: ${r.quantizedNodes.length} node(s) static INT8 (QDQ, ${r.settings.activations} activations, ${r.settings.weights} weights${r.settings.perChannel ? ' per channel' : ' per tensor'}${r.settings.reduceRange ? ', 7-bit' : ''})${r.dynamicMatMuls.length ? `, ${r.dynamicMatMuls.length} MatMul(s) dynamic INT8` : ''}`);
  w(`  activations: ${r.settings.activationsReason}`);
  w(`  weights 7-bit: ${r.settings.reduceRange} (${r.settings.reduceRangeReason}); BatchNorm folded: ${r.settings.batchNormFolded}`);
  const byReason = new Map<string, string[]>();
  for (const f of r.floatNodes) byReason.set(f.reason, [...(byReason.get(f.reason) ?? []), f.key]);
  w(`float: ${r.floatNodes.length} node(s)`);
  for (const [reason, keys] of [...byReason].sort((a, b) => b[1].length - a[1].length)) {
    w(`  ${String(keys.length).padStart(4)}  ${reason}${keys.length <= 4 ? `: ${keys.join(', ')}` : `: ${keys.slice(0, 3).join(', ')}, ...`}`);
  }
  w(`calibration: ${r.calibration.method} on ${r.calibration.images} image(s) from ${r.calibration.source}, ${r.calibration.tensors} tensor(s), ${r.calibration.seconds.toFixed(1)} s`);
  if (r.dice) w(`val Dice (${r.dice.images} images at ${r.dice.resolution}): float ${r.dice.float.toFixed(4)} -> INT8 ${r.dice.quantized.toFixed(4)} (drop ${r.dice.drop.toFixed(4)})`);
  if (r.autoExcluded.length) w(`kept in float by sensitivity: ${r.autoExcluded.map((l) => `${l.node} (${l.diceDrop.toFixed(4)})`).join(', ')}`);
  w(`gate: ${r.gate.verdict}`);
}

export const command: CommandModule<object, Args> = {
  command: 'quantize <input> <output>',
  describe: 'static INT8 quantization (QDQ) calibrated on real images, with a Dice gate on the val split',
  builder: (y) =>
    y
      .positional('input', { type: 'string', demandOption: true, describe: 'float ONNX model (a path or default:teacher / default:student)' })
      .positional('output', { type: 'string', demandOption: true, describe: 'where to write the INT8 model (and OUTPUT.quant.json)' })
      .option('calib', { type: 'string', demandOption: true, describe: 'calibration images: a dataset (its train split) or a folder of images' })
      .option('calibrator', { type: 'string', default: 'minmax', describe: `range estimator: ${CALIBRATION_METHODS.join(', ')}` })
      .option('percentile', { type: 'number', describe: 'percentile calibrator: the percentile kept (default 99.999)' })
      .option('calib-limit', { type: 'number', default: 64, describe: 'calibration images at most' })
      .option('activations', { type: 'string', default: 'auto', describe: 'activation type: auto (uint8 on x86, int8 elsewhere), int8 or uint8' })
      .option('weights', { type: 'string', default: 'int8', describe: 'weight type: int8 (per channel) or uint8 (per tensor: shown only as the accuracy trap)' })
      .option('per-channel', { type: 'boolean', default: true, describe: 'one weight scale per output channel (--no-per-channel for one per tensor)' })
      .option('reduce-range', { type: 'string', default: 'auto', describe: "7-bit weights: auto (on for x86 CPUs without VNNI), on, off" })
      .option('val', { type: 'string', describe: 'dataset whose val split measures Dice (default: --calib)' })
      .option('val-split', { type: 'string', default: 'val', describe: 'split of --val that measures Dice: val, train, test, or all (every image of a folder without splits)' })
      .option('val-limit', { type: 'number', default: 32, describe: 'val images at most' })
      .option('gate', { type: 'number', default: 0.01, describe: 'largest accepted val Dice drop' })
      .option('exclude', { type: 'string', describe: 'comma-separated node names kept in float' })
      .option('sensitivity', { type: 'boolean', default: true, describe: 'per-layer sensitivity and automatic exclusion when the gate fails (--no-sensitivity to skip)' })
      .option('sensitivity-always', { type: 'boolean', default: false, describe: 'measure per-layer sensitivity even when the gate passes' })
      .option('sensitivity-images', { type: 'number', default: 8, describe: 'val images per per-layer sensitivity probe' })
      .option('dynamic-matmul', { type: 'boolean', default: false, describe: 'MatMuls with a constant weight in dynamic INT8' })
      .option('preset', { type: 'string', default: 'vit-safe', describe: "vit-safe (keep a transformer's residual/bias Adds in float) or all" })
      .option('input-size', { type: 'string', describe: 'HxW, when the model has a symbolic size and no metadata' })
      .option('threads', { type: 'number', default: 0, describe: 'onnxruntime threads (0 = all cores)' })
      .option('force', { type: 'boolean', default: false, describe: 'write the model even when it fails the gate (says so)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the record as JSON on stdout' })
      .example('$0 quantize student.onnx student.int8.onnx --calib ../shared/data', 'min-max calibration on 64 train images, gate on 32 val images')
      .example('$0 quantize my.onnx my.int8.onnx --calib calib_images/ --val my_labelled/ --val-split all', 'calibrate on one folder, gate on every image/mask pair of another')
      .example('$0 quantize default:teacher teacher.int8.onnx --calib ../shared/data --calibrator percentile --dynamic-matmul', 'percentile ranges, transformer MatMuls in dynamic INT8'),
  handler: async (a) => {
    const calibrator = oneOf(a.calibrator, CALIBRATION_METHODS, '--calibrator') as CalibrationMethod;
    const activations = oneOf(a.activations, ['auto', 'int8', 'uint8'] as const, '--activations');
    const weights = oneOf(a.weights, ['int8', 'uint8'] as const, '--weights');
    const preset = oneOf(a.preset, ['vit-safe', 'all'] as const, '--preset');
    const valSplit = oneOf(a['val-split'], ['val', 'train', 'test', 'all'] as const, '--val-split');
    const rr = oneOf(a['reduce-range'], ['auto', 'on', 'off'] as const, '--reduce-range');
    if (!(a.gate >= 0 && a.gate < 1)) throw new LesionFuseError(`must be a Dice drop in [0, 1), got ${a.gate}`, { subject: '--gate' });
    for (const [k, v] of [['--calib-limit', a['calib-limit']], ['--val-limit', a['val-limit']], ['--sensitivity-images', a['sensitivity-images']]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new LesionFuseError(`must be a positive integer, got ${v}`, { subject: k });
    }
    let inputSize: { height: number; width: number } | undefined;
    if (a['input-size']) {
      const m = /^(\d+)x(\d+)$/i.exec(a['input-size'].trim());
      if (!m) throw new LesionFuseError(`expected HxW (e.g. 192x256), got '${a['input-size']}'`, { subject: '--input-size' });
      inputSize = { height: Number(m[1]), width: Number(m[2]) };
    }
    const out = a.output;
    const r = await quantizeFile(resolveModelPath(a.input), out, {
      calib: a.calib,
      calibrator,
      calibratorOptions: a.percentile !== undefined ? { percentile: a.percentile } : undefined,
      calibLimit: a['calib-limit'],
      val: a.val,
      valLimit: a['val-limit'],
      valSplit,
      gate: a.gate,
      sensitivity: !a.sensitivity ? 'off' : a['sensitivity-always'] ? 'always' : 'auto',
      sensitivityImages: a['sensitivity-images'],
      activations,
      weights,
      perChannel: a['per-channel'],
      reduceRange: rr === 'auto' ? 'auto' : rr === 'on',
      exclude: a.exclude ? a.exclude.split(',').map((s) => s.trim()).filter(Boolean) : [],
      preset,
      dynamicMatMuls: a['dynamic-matmul'],
      inputSize,
      threads: a.threads,
      force: a.force,
    });
    if (a.json) process.stdout.write(JSON.stringify(quantizationRecord(r, { output: out }), null, 2) + '\n');
    else printResult(r, out);
  },
};
