import type { CommandModule } from 'yargs';
import { getLogLevel, log } from '../../util/log.js';
import { segmentFiles, parseSize } from '../../runtime/segment.js';
import { DEFAULT_MAX_PIXELS } from '../../runtime/image.js';
import { DEFAULT_PROFILE } from '../../runtime/segmenter.js';

interface Args {
  postprocess?: string;
  model: string;
  inputs: string[];
  out: string;
  profile: string;
  threads?: number;
  batch?: number;
  threshold?: number;
  'input-size'?: string;
  output?: string;
  'max-pixels': number;
  outputs: string;
  overwrite: boolean;
  resize?: string;
  json: boolean;
  quiet?: boolean;
}

/** `lesionfuse segment MODEL INPUTS... --out DIR`: masks for files, folders and globs; exit 3 when any image failed. */
export const command: CommandModule<object, Args> = {
  command: 'segment <model> <inputs..>',
  describe: 'segment images (files, folders, globs) into masks (and probability maps, overlays on request)',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'an ONNX file, or default:student / default:teacher' })
      .positional('inputs', { type: 'string', array: true, demandOption: true, describe: 'image files, folders (walked) or quoted globs with * and ?' })
      .option('out', { type: 'string', demandOption: true, describe: 'output folder (new, empty, or made by segment with the same model): <stem>_mask.png (0/255), failures.csv, segment.json' })
      .option('profile', { type: 'string', default: DEFAULT_PROFILE, describe: 'profile name or .json path' })
      .option('threads', { type: 'number', describe: "intra-op threads (overrides the profile's)" })
      .option('batch', { type: 'number', describe: "images per model run (default: the profile's batch)" })
      .option('threshold', { type: 'number', describe: 'probability threshold (default: model metadata, else 0.5)' })
      .option('input-size', { type: 'string', describe: 'HxW for models with dynamic height/width' })
      .option('output', { type: 'string', describe: 'which model output is the segmentation map (models with several outputs)' })
      .option('max-pixels', { type: 'number', default: DEFAULT_MAX_PIXELS, describe: 'refuse images whose header declares more pixels (decompression bombs)' })
      .option('outputs', { type: 'string', default: 'mask', describe: 'what to write per image, comma-separated: mask (<stem>_mask.png), prob (<stem>_prob.png), overlay (<stem>_overlay.jpg, at most 1024 px)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'write into a folder made by another model or with other settings, or holding other files' })
      .option('resize', { type: 'string', choices: ['fast', 'exact'], describe: "how images are resized to the model: exact (Pillow BILINEAR) or fast (libvips on decode); default: the model's lesionfuse.resize, else exact" })
      .option('postprocess', { type: 'string', choices: ['lesion', 'none'], describe: "mask post-processing: lesion (keep the lesion-like components, fill holes) or none; default: the model's lesionfuse.postprocess, else none" })
      .option('json', { type: 'boolean', default: false, describe: 'print the list of outputs and failures as JSON on stdout' })
      .example('$0 segment default:student photos/ --out masks/', 'segment every image in a folder')
      .example("$0 segment model.onnx 'scans/*.JPG' lesion.png --out out/ --profile cpu-2t", 'a quoted glob and a file')
      .example('$0 segment default:student photos/ --out review/ --outputs mask,overlay', 'masks and small overlays to look at'),
  handler: async (a) => {
    const res = await segmentFiles({
      model: a.model,
      inputs: a.inputs,
      out: a.out,
      profile: a.profile,
      threads: a.threads,
      batchSize: a.batch,
      threshold: a.threshold,
      inputSize: a['input-size'] ? parseSize(a['input-size']) : undefined,
      output: a.output,
      maxPixels: a['max-pixels'],
      outputs: a.outputs,
      overwrite: a.overwrite,
      resize: a.resize as 'fast' | 'exact' | undefined,
      postprocess: a.postprocess as 'lesion' | 'none' | undefined,
      progress: getLogLevel() !== 'quiet',
    });
    for (const s of res.segmented) for (const w of s.warnings) log.warn(`${s.input}: ${w}`);
    for (const f of res.failures) log.error(`${f.path}: ${f.reason}`);
    if (a.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n');
    log.info(`segmented ${res.segmented.length} image(s) into ${a.out}; ${res.failures.length} failed${res.failures.length ? ` (listed in ${res.failuresCsv})` : ''}`);
    if (res.failures.length > 0) process.exitCode = 3;
  },
};
