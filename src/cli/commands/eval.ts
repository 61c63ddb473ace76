import type { CommandModule } from 'yargs';
import { LesionFuseError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { evaluate, evaluatePredictions, type EvalResult } from '../../runtime/evaluate.js';
import { METRIC_NAMES } from '../../runtime/metrics.js';
import { parseSize } from '../../runtime/segment.js';
import { DEFAULT_PROFILE } from '../../runtime/segmenter.js';
import { DEFAULT_MAX_PIXELS } from '../../runtime/image.js';
import type { Split } from '../../runtime/dataset.js';
import { MIN_GROUP_N, subgroupMarkdown } from '../../runtime/subgroup-table.js';

interface Args {
  postprocess?: string;
  model?: string;
  data?: string;
  split?: string;
  sources?: string;
  profile: string;
  threads?: number;
  out?: string;
  limit?: number;
  'skip-unpaired': boolean;
  'resize-masks': boolean;
  threshold?: number;
  'input-size'?: string;
  output?: string;
  'max-pixels': number;
  pred?: string;
  truth?: string;
  json: boolean;
  groups?: string;
  reference?: string;
  'min-group-n': number;
}

const fmt = (x: number): string => (Number.isNaN(x) ? 'NaN' : x.toFixed(4));

/** A readable table of the means and intervals, overall and per source. */
export function formatEval(r: EvalResult): string {
  const lines = [`${r.n_images} image(s)${r.failures.length ? `, ${r.failures.length} failed` : ''}; boundary F tolerance ${r.boundary_tolerance_px} px; HD95 in pixels`];
  const groups: [string, typeof r][] = [['all', r], ...Object.entries(r.per_source).map(([k, v]) => [k, v as typeof r] as [string, typeof r])];
  lines.push(['group', 'n', ...METRIC_NAMES].join('\t'));
  for (const [name, s] of groups) {
    lines.push([name, String(s.n_images), ...METRIC_NAMES.map((m) => `${fmt(s.mean[m])} [${fmt(s.ci95[m][0])}, ${fmt(s.ci95[m][1])}]${s.n_valid[m] < s.n_images ? ` (n=${s.n_valid[m]})` : ''}`)].join('\t'));
  }
  return lines.join('\n');
}

/** `lesionfuse eval MODEL --data DIR` or `lesionfuse eval --pred DIR --truth DIR`. Exit 3 when any image failed. */
export const command: CommandModule<object, Args> = {
  command: 'eval [model]',
  describe: 'evaluate a model on a dataset (or existing masks) at the original resolution',
  builder: (y) =>
    y
      .positional('model', { type: 'string', describe: 'an ONNX file, or default:student / default:teacher' })
      .option('data', { type: 'string', describe: 'dataset folder (MANIFEST.csv + splits, ISIC, PH2, or images/ + masks/)' })
      .option('split', { type: 'string', choices: ['train', 'val', 'test', 'all'], describe: "default: test where the dataset has splits, else all" })
      .option('sources', { type: 'string', describe: 'comma-separated sources to keep (e.g. ph2)' })
      .option('profile', { type: 'string', default: DEFAULT_PROFILE, describe: 'profile name or .json path' })
      .option('threads', { type: 'number', describe: "intra-op threads (overrides the profile's)" })
      .option('out', { type: 'string', describe: 'folder for metrics.json and per_image.csv' })
      .option('limit', { type: 'number', describe: 'evaluate only the first N pairs' })
      .option('skip-unpaired', { type: 'boolean', default: false, describe: 'go on without images that have no mask (and masks without image)' })
      .option('resize-masks', { type: 'boolean', default: false, describe: 'resize masks whose size differs from their image instead of failing them' })
      .option('threshold', { type: 'number', describe: 'probability threshold (default: model metadata, else 0.5)' })
      .option('input-size', { type: 'string', describe: 'HxW for models with dynamic height/width' })
      .option('output', { type: 'string', describe: 'which model output is the segmentation map' })
      .option('max-pixels', { type: 'number', default: DEFAULT_MAX_PIXELS, describe: 'refuse images whose header declares more pixels (decompression bombs)' })
      .option('pred', { type: 'string', describe: 'score existing masks in this folder (with --truth) instead of running a model; a `segment` output folder works as it is' })
      .option('truth', { type: 'string', describe: 'truth masks for --pred, matched by id' })
      .option('postprocess', { type: 'string', choices: ['lesion', 'none'], describe: "mask post-processing: lesion (keep the lesion-like components, fill holes) or none; default: the model's lesionfuse.postprocess, else none" })
      .option('json', { type: 'boolean', default: false, describe: 'print metrics.json to stdout' })
      .option('groups', { type: 'string', describe: 'groups.csv: image id, then your own group columns (e.g. fitzpatrick,device)' })
      .option('reference', { type: 'string', describe: "an earlier eval's metrics.json or per_image.csv (e.g. the teacher's): paired differences per group" })
      .option('min-group-n', { type: 'number', default: MIN_GROUP_N, describe: 'groups with fewer images show no numbers' })
      .example('$0 eval default:student --data ../shared/data --split test --profile cpu-2t --out reports/eval', 'the test split')
      .example('$0 eval default:student --data ../shared/data --reference reports/eval-teacher/metrics.json --groups groups.csv --out reports/eval-student', 'subgroups, paired against the teacher')
      .example('$0 eval --pred my_masks/ --truth ISIC2018_Task1_Test_GroundTruth/', 'score masks made by another tool'),
  handler: async (a) => {
    let r: EvalResult;
    if (a.pred !== undefined || a.truth !== undefined) {
      if (!a.pred || !a.truth) throw new LesionFuseError('--pred and --truth go together', { subject: a.pred ? '--truth' : '--pred' });
      if (a.model) throw new LesionFuseError('give either a model with --data, or --pred with --truth, not both', { subject: '--pred' });
      r = await evaluatePredictions({ pred: a.pred, truth: a.truth, out: a.out, resizeMasks: a['resize-masks'], skipUnpaired: a['skip-unpaired'] });
      if (r.unpaired) log.info(`scored ${r.n_images} paired id(s); left out ${r.unpaired.truth_without_prediction} truth mask(s) without a prediction and ${r.unpaired.prediction_without_truth} prediction(s) without truth (--skip-unpaired)`);
    } else {
      if (!a.model) throw new LesionFuseError('name a model (or use --pred DIR --truth DIR)', { subject: 'eval' });
      if (!a.data) throw new LesionFuseError('give the dataset folder with --data DIR', { subject: '--data' });
      r = await evaluate({
        model: a.model,
        data: a.data,
        split: a.split as Split | undefined,
        sources: a.sources ? a.sources.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
        profile: a.profile,
        out: a.out,
        limit: a.limit,
        skipUnpaired: a['skip-unpaired'],
        resizeMasks: a['resize-masks'],
        groups: a.groups,
        reference: a.reference,
        minGroupN: a['min-group-n'],
        segmenter: {
          threshold: a.threshold,
          inputSize: a['input-size'] ? parseSize(a['input-size']) : undefined,
          output: a.output,
          maxPixels: a['max-pixels'],
          threads: a.threads,
          postprocess: a.postprocess as 'lesion' | 'none' | undefined,
        },
      });
    }
    for (const f of r.failures) log.error(`${f.path}: ${f.reason}`);
    if (r.n_masks_thresholded > 0) log.warn(`${r.n_masks_thresholded} truth mask(s) were not binary and were thresholded at half the range`);
    if (a.json) process.stdout.write(JSON.stringify(r, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    else process.stdout.write(formatEval(r) + '\n\n' + subgroupMarkdown(r.subgroups, { minN: r.subgroup_min_n }) + '\n');
    if (a.out) log.info(`wrote ${a.out}/metrics.json, ${a.out}/per_image.csv and ${a.out}/subgroups.md`);
    if (r.failures.length > 0) process.exitCode = 3;
  },
};
