/**
 * Does the fast image path (libvips resize-on-decode, libvips map upscale) give the masks the exact path
 * (Pillow-exact BILINEAR in, half-pixel bilinear map out, in JavaScript) gives? Accuracy, not speed: per
 * image, the Dice agreement of the two masks at the image's original resolution, and each path's Dice
 * against the truth mask. The fast path is accepted as the default when the mean agreement is >= 0.999
 * and the worst image's is >= 0.99.
 *
 *   npx tsc -p . && node dist/bench/fast-path-agreement.js --data ../shared/data --split test \
 *     --model default:student --model default:teacher --out reports/runtime/fast-path-agreement
 *
 * One thread (cpu-1t): the timings are irrelevant here, and the machine is shared.
 */
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { openDataset, type Split } from '../src/runtime/dataset.js';
import { readMask } from '../src/runtime/image.js';
import { Segmenter, type SegmentResult } from '../src/runtime/segmenter.js';
import { sha256File } from '../src/util/hash.js';
import { VERSION } from '../src/version.js';

function args(name: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === name && process.argv[i + 1] !== undefined) out.push(process.argv[i + 1]!);
  });
  return out;
}
const arg = (name: string, def: string): string => args(name)[0] ?? def;

const data = arg('--data', '../shared/data');
const split = arg('--split', 'test') as Split;
const models = args('--model').length ? args('--model') : ['default:student'];
const outDir = arg('--out', 'reports/runtime/fast-path-agreement');
const limit = Number(arg('--limit', '0'));
const MEAN_TARGET = 0.999;
const WORST_TARGET = 0.99;

/** Dice of two binary masks; 1 when both are empty. */
function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ? 1 : 0;
    const y = b[i] ? 1 : 0;
    inter += x & y;
    sa += x;
    sb += y;
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

interface Row {
  id: string;
  source: string;
  width: number;
  height: number;
  agreement: number;
  differing_pixels: number;
  dice_fast: number;
  dice_exact: number;
}

async function runModel(model: string) {
  const ds = await openDataset(data, { split });
  const items = limit > 0 ? ds.items.slice(0, limit) : ds.items;
  const fast = await Segmenter.create(model, { profile: 'cpu-1t', resize: 'fast' });
  const exact = await Segmenter.create(model, { profile: 'cpu-1t', resize: 'exact' });
  const rows: Row[] = [];
  try {
    for (const [k, item] of items.entries()) {
      const f: SegmentResult = await fast.segment(item.imagePath);
      const e: SegmentResult = await exact.segment(item.imagePath);
      if (f.width !== e.width || f.height !== e.height) throw new Error(`${item.imagePath}: sizes differ ${f.width}x${f.height} vs ${e.width}x${e.height}`);
      const truth = await readMask(item.maskPath, { expectSize: { width: e.width, height: e.height }, resize: true });
      let diff = 0;
      for (let i = 0; i < f.mask.length; i++) if (f.mask[i] !== e.mask[i]) diff++;
      rows.push({
        id: item.id,
        source: item.source,
        width: e.width,
        height: e.height,
        agreement: dice(f.mask, e.mask),
        differing_pixels: diff,
        dice_fast: dice(f.mask, truth.data),
        dice_exact: dice(e.mask, truth.data),
      });
      if ((k + 1) % 50 === 0) process.stderr.write(`${model}: ${k + 1}/${items.length}\n`);
    }
  } finally {
    await fast.close();
    await exact.close();
  }
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
  const worst = rows.reduce((w, r) => (r.agreement < w.agreement ? r : w), rows[0]!);
  const bySource: Record<string, { n: number; mean_agreement: number; worst_agreement: number }> = {};
  for (const src of [...new Set(rows.map((r) => r.source))].sort()) {
    const rs = rows.filter((r) => r.source === src);
    bySource[src] = { n: rs.length, mean_agreement: mean(rs.map((r) => r.agreement)), worst_agreement: Math.min(...rs.map((r) => r.agreement)) };
  }
  const summary = {
    model,
    model_sha256: await sha256File(fast.modelPath),
    n_images: rows.length,
    mean_agreement: mean(rows.map((r) => r.agreement)),
    worst_agreement: worst.agreement,
    worst_image: worst.id,
    mean_dice_fast: mean(rows.map((r) => r.dice_fast)),
    mean_dice_exact: mean(rows.map((r) => r.dice_exact)),
    by_source: bySource,
    accepted: mean(rows.map((r) => r.agreement)) >= MEAN_TARGET && worst.agreement >= WORST_TARGET,
  };
  return { summary, rows };
}

const results = [];
for (const m of models) results.push(await runModel(m));
const f4 = (x: number): string => x.toFixed(4);
const f5 = (x: number): string => x.toFixed(5);
const md = [
  '# Fast image path vs exact path: mask agreement',
  '',
  `Data: \`${data}\`, split \`${split}\`, original resolution; profile cpu-1t; SDK ${VERSION}. Agreement = Dice of the fast mask`,
  `against the exact mask (1 when both are empty). Targets: mean >= ${MEAN_TARGET}, worst image >= ${WORST_TARGET}.`,
  '',
  '```sh',
  `npx tsc -p . && node dist/bench/fast-path-agreement.js ${process.argv.slice(2).join(' ')}`,
  '```',
  '',
  '| model | images | mean agreement | worst (image) | Dice vs truth, fast | Dice vs truth, exact | accepted |',
  '|---|---|---|---|---|---|---|',
  ...results.map(({ summary: s }) => `| ${s.model} | ${s.n_images} | ${f5(s.mean_agreement)} | ${f5(s.worst_agreement)} (${s.worst_image}) | ${f4(s.mean_dice_fast)} | ${f4(s.mean_dice_exact)} | ${s.accepted ? 'yes' : 'no'} |`),
  '',
  'Per source:',
  '',
  '| model | source | images | mean agreement | worst |',
  '|---|---|---|---|---|',
  ...results.flatMap(({ summary: s }) => Object.entries(s.by_source).map(([src, v]) => `| ${s.model} | ${src} | ${v.n} | ${f5(v.mean_agreement)} | ${f5(v.worst_agreement)} |`)),
  '',
  'Per-image rows are in `fast-path-agreement.json`.',
  '',
].join('\n');
await writeJsonAtomic(join(outDir, 'fast-path-agreement.json'), { data, split, sdk_version: VERSION, created_at: new Date().toISOString(), results });
await writeFileAtomic(join(outDir, 'fast-path-agreement.md'), md);
process.stdout.write(md);
