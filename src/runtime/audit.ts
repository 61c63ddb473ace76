/**
 * Site check: does a clinic's own (unlabelled) set of images look like the data a model was measured on?
 *
 * A {@link DataProfile} summarises a set of images through a model: resolution, aspect ratio, colour of the
 * skin, skin tone (ITA, from the skin around the PREDICTED lesion), predicted lesion size, the share of
 * images with dark corners (vignette) or strongly coloured objects (stickers, rulers, ink), and the model's
 * mean confidence (mean over pixels of |2p - 1|: 0 = undecided, 1 = certain). `data_profile.json` beside a
 * model (and in a bundle) is the profile of the images it was validated on; {@link compareProfiles} lists
 * what differs at a site and how much, and warns on shifts (rules in {@link SHIFT_RULES}).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { LesionFuseError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { Progress } from '../util/progress.js';
import { VERSION } from '../version.js';
import { decodeImage } from './image.js';
import { mulberry32, percentile } from './metrics.js';
import { failureReason } from './segment.js';
import { Segmenter } from './segmenter.js';
import { ITA_BINS, RESOLUTION_BINS, SIZE_BINS, imageFeatures, rgbToLab, type ImageFeatures } from './subgroups.js';

export const DATA_PROFILE_SCHEMA = 'lesionfuse.data-profile/1';

/** Aspect ratio (width / height) groups. */
export const ASPECT_BINS = ['portrait (<0.95)', 'square (0.95-1.05)', '1.05-1.25', '4:3 (1.25-1.42)', 'wide (>1.42)'] as const;

export function aspectBin(aspect: number): string {
  if (aspect < 0.95) return ASPECT_BINS[0];
  if (aspect <= 1.05) return ASPECT_BINS[1];
  if (aspect < 1.25) return ASPECT_BINS[2];
  if (aspect <= 1.42) return ASPECT_BINS[3];
  return ASPECT_BINS[4];
}

/** One image of a profile. */
export interface AuditImage {
  path: string;
  width: number;
  height: number;
  aspect: number;
  ita: number;
  itaGroup: string;
  lesionSharePercent: number;
  sizeGroup: string;
  resolution: string;
  darkCorners: boolean;
  sticker: boolean;
  confidence: number;
  /** L*, a*, b* of the image's mean colour. */
  meanLab: [number, number, number];
}

export interface Quantiles {
  p10: number;
  p50: number;
  p90: number;
}

export interface DataProfile {
  schema: typeof DATA_PROFILE_SCHEMA;
  /** What the images are, in words (e.g. 'ISIC 2018 val split, 150 images'). */
  description: string;
  model: string;
  threshold: number;
  n_images: number;
  n_failed: number;
  /** Share (0-1) of the images in each group. */
  groups: { aspect: Record<string, number>; resolution: Record<string, number>; skin_tone: Record<string, number>; lesion_size: Record<string, number> };
  quantiles: { lesion_share_percent: Quantiles; ita: Quantiles; short_side_px: Quantiles; mean_L: Quantiles; mean_b: Quantiles; confidence: Quantiles };
  /** Share (0-1) of images with dark corners, and with sticker-like colours. */
  flags: { dark_corners: number; stickers: number };
  sdk_version: string;
  created_at: string;
}

/** Whether an image counts as having dark corners / a sticker (see ImageFeatures). */
export const DARK_CORNER_MIN = 0.5;
export const STICKER_MIN = 0.005;

/** Profile-relevant facts of one image from its features and the model's probability map. */
export function auditImage(path: string, f: ImageFeatures, probability: Float32Array): AuditImage {
  let conf = 0;
  for (let i = 0; i < probability.length; i++) conf += Math.abs(2 * probability[i]! - 1);
  return {
    path, width: f.width, height: f.height, aspect: f.aspect, ita: f.ita, itaGroup: f.itaGroup, lesionSharePercent: f.lesionSharePercent,
    sizeGroup: f.size, resolution: f.resolution, darkCorners: f.darkCornerShare >= DARK_CORNER_MIN, sticker: f.colouredShare >= STICKER_MIN,
    confidence: probability.length ? conf / probability.length : NaN,
    meanLab: rgbToLab(Math.round(f.meanRgb[0]), Math.round(f.meanRgb[1]), Math.round(f.meanRgb[2])),
  };
}

function shares(labels: string[], order: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of [...order, 'unknown']) out[o] = 0;
  for (const l of labels) out[l] = (out[l] ?? 0) + 1;
  for (const k of Object.keys(out)) out[k] = labels.length ? out[k]! / labels.length : 0;
  if (out['unknown'] === 0 && !order.includes('unknown')) delete out['unknown'];
  return out;
}

function q(values: number[]): Quantiles {
  const v = values.filter((x) => Number.isFinite(x));
  return { p10: percentile(v, 10), p50: percentile(v, 50), p90: percentile(v, 90) };
}

/** Summarise audited images into a profile. */
export function buildProfile(images: readonly AuditImage[], meta: { description: string; model: string; threshold: number; failed: number }): DataProfile {
  const n = images.length;
  return {
    schema: DATA_PROFILE_SCHEMA,
    description: meta.description,
    model: meta.model,
    threshold: meta.threshold,
    n_images: n,
    n_failed: meta.failed,
    groups: {
      aspect: shares(images.map((i) => aspectBin(i.aspect)), ASPECT_BINS),
      resolution: shares(images.map((i) => i.resolution), RESOLUTION_BINS),
      skin_tone: shares(images.map((i) => i.itaGroup), ITA_BINS),
      lesion_size: shares(images.map((i) => i.sizeGroup), SIZE_BINS),
    },
    quantiles: {
      lesion_share_percent: q(images.map((i) => i.lesionSharePercent)),
      ita: q(images.map((i) => i.ita)),
      short_side_px: q(images.map((i) => Math.min(i.width, i.height))),
      mean_L: q(images.map((i) => i.meanLab[0])),
      mean_b: q(images.map((i) => i.meanLab[2])),
      confidence: q(images.map((i) => i.confidence)),
    },
    flags: { dark_corners: n ? images.filter((i) => i.darkCorners).length / n : 0, stickers: n ? images.filter((i) => i.sticker).length / n : 0 },
    sdk_version: VERSION,
    created_at: new Date().toISOString(),
  };
}

/**
 * When a difference is a warning:
 * - a group dimension whose total variation distance (TVD: half the sum of absolute share differences) is
 *   >= 0.2 AND beyond sampling noise: the chance that two samples of these sizes drawn from one pooled
 *   distribution differ as much is under 1% ({@link tvdNoiseP}, 2000 seeded draws);
 * - any group holding >= 10% of the site's images but < 2% of the reference's ("absent from validation");
 * - more than half of the site's predicted lesions under 5% of the frame;
 * - median lesion share differing by more than a factor 2 (and more than 5 points);
 * - median mean L* or b* of the images differing by more than 8;
 * - dark-corner or sticker share differing by more than 0.2;
 * - median confidence lower by more than 0.05;
 * Fewer than 10 site images: differences are listed but nothing is warned on.
 */
export const SHIFT_RULES = { tvd: 0.2, tvdP: 0.01, absentSite: 0.1, absentRef: 0.02, smallLesions: 0.5, shareFactor: 2, sharePoints: 5, colour: 8, flag: 0.2, confidence: 0.05, minImages: 10 };

/**
 * How often two samples of sizes nA and nB, drawn from the pooled distribution of both, are at least
 * `tvd` apart (parametric bootstrap under "no shift", seeded): a p-value for the observed TVD.
 */
export function tvdNoiseP(a: Record<string, number>, nA: number, b: Record<string, number>, nB: number, tvd: number, iterations = 2000): number {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const pooled = keys.map((k) => ((a[k] ?? 0) * nA + (b[k] ?? 0) * nB) / (nA + nB));
  const cum: number[] = [];
  pooled.reduce((s, p, i) => (cum[i] = s + p), 0);
  const rand = mulberry32(1);
  const draw = (n: number): number[] => {
    const c = new Array<number>(keys.length).fill(0);
    for (let i = 0; i < n; i++) {
      const u = rand() * cum[cum.length - 1]!;
      let j = 0;
      while (j < cum.length - 1 && u >= cum[j]!) j++;
      c[j]!++;
    }
    return c.map((x) => x / n);
  };
  let hits = 0;
  for (let it = 0; it < iterations; it++) {
    const x = draw(nA);
    const y = draw(nB);
    if (0.5 * x.reduce((s, v, i) => s + Math.abs(v - y[i]!), 0) >= tvd - 1e-12) hits++;
  }
  return hits / iterations;
}

export interface Finding {
  what: string;
  site: string;
  reference: string;
  /** The size of the difference in the rule's unit (TVD, points, factor...). */
  shift: number;
  warn: boolean;
  message: string;
}

const pct = (x: number): string => `${Math.round(100 * x)}%`;

function topGroups(s: Record<string, number>): string {
  return Object.entries(s).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => `${pct(v)} ${k}`).join(', ') || 'none';
}

/** What differs between a site's profile and the reference profile (see {@link SHIFT_RULES}). */
export function compareProfiles(site: DataProfile, ref: DataProfile): Finding[] {
  const R = SHIFT_RULES;
  const enough = site.n_images >= R.minImages;
  const out: Finding[] = [];
  const names: Record<keyof DataProfile['groups'], string> = { aspect: 'aspect ratio', resolution: 'resolution (shorter side)', skin_tone: 'skin tone (ITA)', lesion_size: 'predicted lesion size' };
  for (const key of Object.keys(names) as (keyof DataProfile['groups'])[]) {
    const a = site.groups[key];
    const b = ref.groups[key];
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const tvd = 0.5 * keys.reduce((s, k) => s + Math.abs((a[k] ?? 0) - (b[k] ?? 0)), 0);
    const p = tvd >= R.tvd ? tvdNoiseP(a, site.n_images, b, ref.n_images, tvd) : 1;
    out.push({
      what: names[key], site: topGroups(a), reference: topGroups(b), shift: tvd, warn: enough && tvd >= R.tvd && p < R.tvdP,
      message: `${names[key]}: ${topGroups(a)} here vs ${topGroups(b)} in validation (total variation ${tvd.toFixed(2)}${tvd >= R.tvd ? `, p ${p < 0.001 ? '< 0.001' : `= ${p.toFixed(3)}`} under no shift` : ''})`,
    });
    for (const k of keys) {
      if ((a[k] ?? 0) >= R.absentSite && (b[k] ?? 0) < R.absentRef && k !== 'unknown') {
        out.push({ what: `${names[key]}: ${k}`, site: pct(a[k]!), reference: pct(b[k] ?? 0), shift: a[k]!, warn: enough, message: `${pct(a[k]!)} of these images are ${names[key]} '${k}', which is (nearly) absent from validation (${pct(b[k] ?? 0)})` });
      }
    }
  }
  const small = site.groups.lesion_size['<5%'] ?? 0;
  if (small > R.smallLesions) {
    out.push({ what: 'small lesions', site: pct(small), reference: pct(ref.groups.lesion_size['<5%'] ?? 0), shift: small, warn: enough, message: `most predicted lesions (${pct(small)}) cover under 5% of the frame (validation: ${pct(ref.groups.lesion_size['<5%'] ?? 0)}); small lesions are where segmenters fail most` });
  }
  const ls = site.quantiles.lesion_share_percent.p50;
  const lr = ref.quantiles.lesion_share_percent.p50;
  const factor = Math.max(ls, lr) / Math.max(1e-9, Math.min(ls, lr));
  out.push({ what: 'median predicted lesion share', site: `${ls.toFixed(1)}%`, reference: `${lr.toFixed(1)}%`, shift: factor, warn: enough && factor > R.shareFactor && Math.abs(ls - lr) > R.sharePoints, message: `median predicted lesion share ${ls.toFixed(1)}% of the frame here vs ${lr.toFixed(1)}% in validation` });
  for (const [k, label] of [['mean_L', 'lightness L*'], ['mean_b', 'yellowness b*']] as const) {
    const d = site.quantiles[k].p50 - ref.quantiles[k].p50;
    out.push({ what: `median image ${label}`, site: site.quantiles[k].p50.toFixed(1), reference: ref.quantiles[k].p50.toFixed(1), shift: Math.abs(d), warn: enough && Math.abs(d) > R.colour, message: `median image ${label} ${site.quantiles[k].p50.toFixed(1)} here vs ${ref.quantiles[k].p50.toFixed(1)} in validation` });
  }
  for (const [k, label] of [['dark_corners', 'images with dark corners (vignette)'], ['stickers', 'images with sticker-like colours']] as const) {
    const d = site.flags[k] - ref.flags[k];
    out.push({ what: label, site: pct(site.flags[k]), reference: pct(ref.flags[k]), shift: Math.abs(d), warn: enough && Math.abs(d) > R.flag, message: `${label}: ${pct(site.flags[k])} here vs ${pct(ref.flags[k])} in validation` });
  }
  const dc = ref.quantiles.confidence.p50 - site.quantiles.confidence.p50;
  out.push({ what: 'median prediction confidence', site: site.quantiles.confidence.p50.toFixed(3), reference: ref.quantiles.confidence.p50.toFixed(3), shift: dc, warn: enough && dc > R.confidence, message: `median prediction confidence ${site.quantiles.confidence.p50.toFixed(3)} here vs ${ref.quantiles.confidence.p50.toFixed(3)} in validation (1 = certain)` });
  return out;
}

export interface ProfileImagesOptions {
  profile?: string;
  threads?: number;
  description?: string;
  progress?: boolean;
}

/** Run a model over image files and profile them; unreadable files are counted and listed, the rest goes on. */
export async function profileImages(model: string, paths: readonly string[], opts: ProfileImagesOptions = {}): Promise<{ profile: DataProfile; images: AuditImage[]; failures: { path: string; reason: string }[] }> {
  if (!paths.length) throw new LesionFuseError('no images to profile');
  const seg = await Segmenter.create(model, { profile: opts.profile ?? 'cpu-1t', threads: opts.threads });
  const images: AuditImage[] = [];
  const failures: { path: string; reason: string }[] = [];
  const progress = opts.progress === false ? null : new Progress('audit', paths.length);
  try {
    for (const p of paths) {
      try {
        const img = await decodeImage(p);
        const r = await seg.segment(img);
        images.push(auditImage(p, imageFeatures(img, r.mask), r.probability));
      } catch (e) {
        if (!(e instanceof LesionFuseError)) throw e;
        failures.push({ path: p, reason: failureReason(e, p) });
      }
      progress?.tick(1);
    }
  } finally {
    await seg.close();
  }
  if (!images.length) throw new LesionFuseError(`none of the ${paths.length} image(s) could be read (first: ${failures[0]?.reason ?? 'unknown'})`);
  const profile = buildProfile(images, { description: opts.description ?? `${images.length} images`, model: seg.metadata.modelName ?? seg.modelPath.replace(/^.*[\\/]/, ''), threshold: seg.metadata.threshold, failed: failures.length });
  return { profile, images, failures };
}

/** Read and check a data_profile.json. */
export async function readProfile(path: string): Promise<DataProfile> {
  let j: DataProfile;
  try {
    j = JSON.parse(await fs.readFile(path, 'utf8')) as DataProfile;
  } catch (e) {
    throw new LesionFuseError(`cannot read the data profile: ${(e as Error).message.split('\n')[0]}`, { subject: path });
  }
  if (j.schema !== DATA_PROFILE_SCHEMA) throw new LesionFuseError(`not a data profile (schema '${String(j.schema)}', expected '${DATA_PROFILE_SCHEMA}')`, { subject: path });
  return j;
}

export function auditMarkdown(site: DataProfile, ref: DataProfile, findings: readonly Finding[]): string {
  const warns = findings.filter((f) => f.warn);
  const L = [
    `# Site check: ${site.description} against ${ref.description}`,
    '',
    `Model: ${site.model}. ${site.n_images} image(s) profiled${site.n_failed ? `, ${site.n_failed} unreadable` : ''}; validation profile: ${ref.n_images} image(s).`,
    '',
    warns.length
      ? `**${warns.length} warning(s): these images differ from what the model was validated on, so its measured accuracy may not hold here.**`
      : site.n_images < SHIFT_RULES.minImages
        ? `Too few images (${site.n_images} < ${SHIFT_RULES.minImages}) to warn on; the differences are listed below.`
        : '**No shift beyond the thresholds**: these images look like the validation data on everything measured here.',
    '',
    ...warns.map((w) => `- WARNING: ${w.message}`),
    '',
    '| what | here | validation | shift | warn |',
    '|---|---|---|---:|---|',
    ...findings.map((f) => `| ${f.what} | ${f.site} | ${f.reference} | ${f.shift.toFixed(2)} | ${f.warn ? 'yes' : ''} |`),
    '',
    'Lesion size and skin tone use the model\'s PREDICTED lesion (no masks are needed); confidence is the mean over pixels of |2p - 1|.',
  ];
  return L.join('\n') + '\n';
}

function csvCell(v: string | number | boolean): string {
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'NaN') : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Write audit.json, audit.md and audit_images.csv (atomically). */
export async function writeAudit(out: string, site: DataProfile, ref: DataProfile, findings: readonly Finding[], images: readonly AuditImage[], failures: readonly { path: string; reason: string }[]): Promise<void> {
  await writeJsonAtomic(join(out, 'audit.json'), JSON.parse(JSON.stringify({ site, reference: ref, findings, failures }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))));
  await writeFileAtomic(join(out, 'audit.md'), auditMarkdown(site, ref, findings));
  const cols = ['path', 'width', 'height', 'aspect', 'ita', 'itaGroup', 'lesionSharePercent', 'sizeGroup', 'resolution', 'darkCorners', 'sticker', 'confidence'] as const;
  await writeFileAtomic(join(out, 'audit_images.csv'), [cols.join(','), ...images.map((i) => cols.map((c) => csvCell(i[c])).join(','))].join('\n') + '\n');
}
