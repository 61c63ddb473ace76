/**
 * Accuracy of segmentation models on a dataset, with and without mask post-processing
 * (src/runtime/postprocess.ts), from ONE inference per image: Dice and HD95 per image for the raw mask
 * and for each post-processing variant, per lesion-size bin (the ground truth's share of the frame:
 * <5%, 5-10%, 10-20%, 20-40%, >40%), paired per-image differences with bootstrap intervals, and, on
 * images that carry synthetic artefacts (bench/fullfield-set.ts), how many stickers and rulers were
 * segmented as lesion.
 *
 * Usage (after `npx tsc -p .`; accuracy only, one thread, no timing):
 *   node dist/bench/robustness-eval.js --data /work/lesionfuse-runs/fullfield --split test --tag fullfield \
 *     [--model default:teacher --model default:student] [--out reports/robustness] [--limit N]
 * Writes <out>/<tag>.json (summary + per-image rows) and <out>/<tag>.md (tables).
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Segmenter } from '../src/runtime/segmenter.js';
import { openDataset, parseCsvLine, type Split } from '../src/runtime/dataset.js';
import { decodeImage, readMask } from '../src/runtime/image.js';
import { imageMetrics, meanOf, bootstrapCI, pairedDifference } from '../src/runtime/metrics.js';
import { postprocessMask, type PostprocessOptions } from '../src/runtime/postprocess.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';

export const SIZE_BINS: { name: string; lo: number; hi: number }[] = [
  { name: '<5%', lo: 0, hi: 0.05 },
  { name: '5-10%', lo: 0.05, hi: 0.1 },
  { name: '10-20%', lo: 0.1, hi: 0.2 },
  { name: '20-40%', lo: 0.2, hi: 0.4 },
  { name: '>40%', lo: 0.4, hi: Infinity },
];

export const VARIANTS: Record<string, PostprocessOptions | null> = {
  raw: null,
  largest: { components: 'largest', keepRatio: 1, fillHoles: true },
  central: { components: 'central', keepRatio: 1, fillHoles: true },
  fill_only: { components: 'all', fillHoles: true },
  // also keeps the pieces of a lesion cut by the frame (components of >= 30% of the kept one's area)
  central_keep30: { components: 'central', keepRatio: 0.3, fillHoles: true },
};

/** A sticker / ruler counts as segmented as lesion when at least this share of its pixels is predicted lesion. */
export const ARTEFACT_HIT = 0.1;

interface ArtefactHit {
  kind: string;
  /** Share of the artefact's pixels predicted lesion, per variant. */
  covered: Record<string, number>;
}

interface Row {
  id: string;
  source: string;
  share: number;
  bin: string;
  dice: Record<string, number>;
  hd95: Record<string, number>;
  artefacts: ArtefactHit[];
}

function binOf(share: number): string {
  return SIZE_BINS.find((b) => share >= b.lo && share < b.hi)!.name;
}

async function readArtefacts(root: string): Promise<{ maps: Map<string, string>; records: Record<string, { kind: string; box: { x: number; y: number; width: number; height: number } }[]> }> {
  const maps = new Map<string, string>();
  let records = {};
  try {
    const lines = (await fs.readFile(join(root, 'MANIFEST.csv'), 'utf8')).split('\n').filter(Boolean);
    const head = parseCsvLine(lines[0]!);
    const ci = head.indexOf('id');
    const ca = head.indexOf('artefact_map');
    if (ca >= 0) for (const l of lines.slice(1)) {
      const f = parseCsvLine(l);
      if (f[ca]) maps.set(f[ci]!, join(root, f[ca]!));
    }
    records = JSON.parse(await fs.readFile(join(root, 'artefacts.json'), 'utf8')).artefacts ?? {};
  } catch {
    // not a full-field set: no artefacts
  }
  return { maps, records };
}

export async function evaluateModel(
  model: string,
  dataDir: string,
  split: Split,
  opts: { limit?: number; log?: (s: string) => void } = {},
): Promise<Row[]> {
  const ds = await openDataset(dataDir, { split });
  const items = opts.limit ? ds.items.slice(0, opts.limit) : ds.items;
  const art = await readArtefacts(ds.root);
  const seg = await Segmenter.create(model, { profile: 'cpu-1t', threads: 1 });
  const rows: Row[] = [];
  try {
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      const img = await decodeImage(it.imagePath);
      const truth = await readMask(it.maskPath, { expectSize: { width: img.width, height: img.height } });
      const r = await seg.segment(img);
      const W = img.width;
      const H = img.height;
      const share = truth.data.reduce((s, v) => s + v, 0) / truth.data.length;
      const masks: Record<string, Uint8Array> = {};
      for (const [name, pp] of Object.entries(VARIANTS)) masks[name] = pp ? postprocessMask(r.mask, W, H, pp) : r.mask;
      const dice: Record<string, number> = {};
      const hd95: Record<string, number> = {};
      for (const [name, m] of Object.entries(masks)) {
        const met = imageMetrics(m, truth.data, W, H);
        dice[name] = met.dice;
        hd95[name] = met.hd95;
      }
      const hits: ArtefactHit[] = [];
      const mapPath = art.maps.get(it.id);
      if (mapPath) {
        const codes = await readArtefactMap(mapPath, W, H);
        for (const rec of art.records[it.id] ?? []) {
          if (rec.kind !== 'sticker' && rec.kind !== 'ruler') continue;
          const code = rec.kind === 'sticker' ? 1 : 2;
          const covered: Record<string, number> = {};
          for (const [name, m] of Object.entries(masks)) {
            let n = 0;
            let on = 0;
            for (let y = Math.max(0, rec.box.y); y < Math.min(H, rec.box.y + rec.box.height); y++) {
              for (let x = Math.max(0, rec.box.x); x < Math.min(W, rec.box.x + rec.box.width); x++) {
                const i = y * W + x;
                if (codes[i] !== code) continue;
                n++;
                on += m[i]!;
              }
            }
            covered[name] = n ? on / n : 0;
          }
          hits.push({ kind: rec.kind, covered });
        }
      }
      rows.push({ id: it.id, source: it.source, share, bin: binOf(share), dice, hd95, artefacts: hits });
      if (opts.log && (k + 1) % 25 === 0) opts.log(`${model}: ${k + 1}/${items.length}`);
    }
  } finally {
    await seg.close();
  }
  return rows;
}

async function readArtefactMap(path: string, W: number, H: number): Promise<Uint8Array> {
  const sharp = (await import('sharp')).default;
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  if (info.width !== W || info.height !== H) throw new Error(`${path}: artefact map is ${info.width} x ${info.height}, image ${W} x ${H}`);
  const out = new Uint8Array(W * H);
  for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]!;
  return out;
}

function fmt(x: number, d = 3): string {
  return Number.isFinite(x) ? x.toFixed(d) : 'n/a';
}
function ci(c: [number, number], d = 3): string {
  return `[${fmt(c[0], d)}, ${fmt(c[1], d)}]`;
}
function signed(x: number, d = 3): string {
  return Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(d) : 'n/a';
}

export function summarise(results: Record<string, Row[]>, tag: string): { md: string; summary: unknown } {
  const models = Object.keys(results);
  const lines: string[] = [];
  const summary: Record<string, unknown> = {};
  const groups = (rows: Row[]): [string, Row[]][] => [['all', rows], ...SIZE_BINS.map((b) => [b.name, rows.filter((r) => r.bin === b.name)] as [string, Row[]]), ...[...new Set(rows.map((r) => r.source))].sort().map((s) => [`source ${s}`, rows.filter((r) => r.source === s)] as [string, Row[]])];

  lines.push(`### ${tag}: Dice per lesion-size bin (raw masks, mean [95% bootstrap interval])`, '');
  lines.push(`| images | n | ${models.map((m) => `${m} Dice`).join(' | ')} | ${models.map((m) => `${m} HD95 px`).join(' | ')} |`);
  lines.push(`|---|---|${models.map(() => '---').join('|')}|${models.map(() => '---').join('|')}|`);
  for (const [g] of groups(results[models[0]!]!)) {
    const per = models.map((m) => groups(results[m]!).find((x) => x[0] === g)![1]);
    const n = per[0]!.length;
    if (n === 0) {
      lines.push(`| ${g} | 0 | ${models.map(() => '-').join(' | ')} | ${models.map(() => '-').join(' | ')} |`);
      continue;
    }
    const d = per.map((rs) => {
      const v = rs.map((r) => r.dice.raw!);
      return `${fmt(meanOf(v).mean)} ${ci(bootstrapCI(v))}`;
    });
    const h = per.map((rs) => fmt(meanOf(rs.map((r) => r.hd95.raw!)).mean, 1));
    lines.push(`| ${g} | ${n} | ${d.join(' | ')} | ${h.join(' | ')} |`);
    summary[`dice_raw ${g}`] = Object.fromEntries(models.map((m, k) => [m, meanOf(per[k]!.map((r) => r.dice.raw!)).mean]));
  }
  if (models.length === 2) {
    const [a, b] = models as [string, string];
    lines.push('', `${b} / ${a} Dice ratio per bin (raw): ` + groups(results[a]!).filter(([, rs]) => rs.length > 0).map(([g, rs]) => {
      const bs = groups(results[b]!).find((x) => x[0] === g)![1];
      return `${g} ${fmt(meanOf(bs.map((r) => r.dice.raw!)).mean / meanOf(rs.map((r) => r.dice.raw!)).mean)}`;
    }).join('; '));
  }

  for (const m of models) {
    lines.push('', `### ${tag}, ${m}: post-processing minus raw, paired per image (mean [95% interval]; better / worse images)`, '');
    lines.push('| images | n | variant | Dice | HD95 px (lower is better) |', '|---|---|---|---|---|');
    for (const [g, rs] of groups(results[m]!)) {
      if (rs.length === 0) continue;
      for (const v of Object.keys(VARIANTS).filter((x) => x !== 'raw')) {
        const pd = pairedDifference(rs.map((r) => r.dice[v]!), rs.map((r) => r.dice.raw!));
        const ph = pairedDifference(rs.map((r) => r.hd95[v]!), rs.map((r) => r.hd95.raw!), { lowerIsBetter: true });
        lines.push(`| ${g} | ${rs.length} | ${v} | ${signed(pd.mean)} ${ci(pd.ci95)}; ${pd.better} / ${pd.worse} | ${signed(ph.mean, 1)} ${ci(ph.ci95, 1)}; ${ph.better} / ${ph.worse} (n ${ph.n}) |`);
        summary[`pp ${m} ${g} ${v}`] = { dice: pd, hd95: ph };
      }
    }
  }

  const withArt = results[models[0]!]!.filter((r) => r.artefacts.length > 0);
  if (withArt.length > 0) {
    lines.push('', `### ${tag}: stickers and rulers segmented as lesion (>= ${ARTEFACT_HIT * 100}% of the artefact's pixels predicted lesion)`, '');
    lines.push('| model | variant | stickers hit / drawn | rulers hit / drawn | images with any hit |', '|---|---|---|---|---|');
    for (const m of models) {
      const rs = results[m]!.filter((r) => r.artefacts.length > 0);
      for (const v of Object.keys(VARIANTS)) {
        const count = (kind: string): string => {
          const all = rs.flatMap((r) => r.artefacts.filter((a) => a.kind === kind));
          return `${all.filter((a) => a.covered[v]! >= ARTEFACT_HIT).length} / ${all.length}`;
        };
        const imgs = rs.filter((r) => r.artefacts.some((a) => a.covered[v]! >= ARTEFACT_HIT)).length;
        lines.push(`| ${m} | ${v} | ${count('sticker')} | ${count('ruler')} | ${imgs} / ${rs.length} |`);
        summary[`artefacts ${m} ${v}`] = { stickers: count('sticker'), rulers: count('ruler'), images: `${imgs} / ${rs.length}` };
      }
    }
  }
  return { md: lines.join('\n') + '\n', summary };
}

function args(name: string, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === `--${name}`) out.push(argv[i + 1]!);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const data = args('data', argv)[0] ?? '/work/lesionfuse-runs/fullfield';
  const split = (args('split', argv)[0] ?? 'test') as Split;
  const tag = args('tag', argv)[0] ?? 'fullfield';
  const out = args('out', argv)[0] ?? 'reports/robustness';
  const limit = args('limit', argv)[0] ? Number(args('limit', argv)[0]) : undefined;
  const models = args('model', argv).length ? args('model', argv) : ['default:teacher', 'default:student'];
  (async () => {
    const results: Record<string, Row[]> = {};
    for (const m of models) results[m.replace(/^default:/, '')] = await evaluateModel(m, data, split, { limit, log: (s) => process.stderr.write(`${s}\n`) });
    const { md, summary } = summarise(results, tag);
    await fs.mkdir(out, { recursive: true });
    await writeFileAtomic(join(out, `${tag}.md`), md);
    await writeJsonAtomic(join(out, `${tag}.json`), { data: resolve(data), split, models, summary, rows: results });
    process.stdout.write(md);
  })().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
