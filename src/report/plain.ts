/**
 * The plain-language top of the trade-off report: what to deploy, on which profile, how fast, how
 * accurate, how sure, for whom it was checked and for whom it could not be; then a short glossary. The
 * engineering tables follow it in report.md / index.html. Every number here is taken from the report's
 * data (evaluations, benchmarks, the selection), never computed anew.
 */
import type { CandidateSummary, TradeoffReport } from './types.js';
import type { GroupRow } from '../runtime/subgroup-table.js';

export interface PlainSummary {
  /** One or two sentences: the decision. */
  headline: string;
  /** Further sentences: why, who the data covers, what could not be checked. */
  details: string[];
  glossary: [string, string][];
}

const GLOSSARY: [string, string][] = [
  ['Dice', 'overlap between the predicted lesion and the one drawn by a dermatologist: 1 is a perfect outline, 0 no overlap. Averaged over images.'],
  ['95% interval', 'the range the average would likely fall in if the same kind of images were measured again (bootstrap over images). Wide intervals mean few or varied images.'],
  ['within M of the teacher (non-inferior)', "the candidate's Dice, image by image, is at most M below the reference model's, even at the pessimistic end of the 95% interval; checked over all images and in every group with enough images."],
  ['groups', 'images sorted by source collection, skin tone, lesion size, image resolution and lesion-skin contrast, so that a loss in one kind of image is not hidden by the average.'],
  ['skin tone (ITA)', 'Individual Typology Angle of the skin around the lesion, measured from the image colours: very light > 55, light 41-55, intermediate 28-41, tan 10-28, brown -30 to 10, dark < -30 degrees. An estimate from the picture, not a Fitzpatrick type.'],
  ['lesion size', 'share of the picture the lesion covers (from the drawn outline).'],
  ['contrast', 'how different the lesion looks from the skin around it (CIEDE2000 colour difference), split in thirds; low-contrast lesions are the hardest to outline.'],
  ['HD95', 'how far, in pixels, the predicted outline strays from the drawn one (95th percentile of the distances); lower is better.'],
  ['profile', 'the computer and runtime settings the speed was measured on (e.g. cpu-2t: 2 CPU threads).'],
  ['ms per image', 'median time to segment one image on that profile; p90: 9 in 10 images were at least this fast.'],
  ['INT8', 'a model stored with 8-bit integers instead of 32-bit floats: smaller, often faster, sometimes slightly less accurate.'],
];

const f3 = (x: number): string => x.toFixed(3);

function find(report: TradeoffReport, id: string | null | undefined): CandidateSummary | undefined {
  return id ? report.candidates.find((c) => c.id === id) : undefined;
}

function latency(report: TradeoffReport, id: string, profile: string | null | undefined): { p50: number; p90: number } | null {
  const s = report.profiles.find((p) => p.profile === profile);
  const o = s?.outcomes[id];
  return o?.status === 'measured' ? { p50: o.speed.latencyMedianMs, p90: o.speed.latencyP90Ms } : null;
}

function ms(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** "188 very light, 47 light, ..." from a subgroup table's skin-tone rows. */
export function skinToneMix(rows: readonly GroupRow[] | undefined): { text: string; n: number; light: number } | null {
  const tone = (rows ?? []).filter((r) => r.dimension === 'skin tone (ITA)');
  if (!tone.length) return null;
  const n = tone.reduce((s, r) => s + r.n, 0);
  const light = tone.filter((r) => r.group === 'very light' || r.group === 'light').reduce((s, r) => s + r.n, 0);
  return { text: tone.map((r) => `${r.n} ${r.group}`).join(', '), n, light };
}

/** The plain-language summary of a report (see the module comment). */
export function plainSummary(report: TradeoffReport): PlainSummary | null {
  const sel = report.selection;
  if (!sel) return null;
  const details: string[] = [];
  const refId = sel.reference ?? null;
  const ref = find(report, refId);
  const deployId = sel.chosen ?? sel.packaged ?? null;
  const deploy = find(report, deployId);
  const profile = sel.profile ?? report.profiles.find((p) => !p.skippedReason)?.profile ?? null;
  let headline: string;
  if (!deploy) {
    headline = `Nothing can be recommended from this run: ${sel.reason}`;
  } else {
    const lat = latency(report, deploy.id, profile);
    const acc = deploy.accuracy;
    const speed = lat ? `${ms(lat.p50)} ms per image (p90 ${ms(lat.p90)} ms)` : 'speed not measured';
    const dice = acc ? `Dice ${f3(acc.dice)} (95% interval ${f3(acc.diceCi95[0])}-${f3(acc.diceCi95[1])}, ${acc.nImages} images)` : 'Dice not measured';
    const d = deploy.decision;
    if (sel.chosen && d && d.verdict === 'non-inferior') {
      const tooSmall = d.tooSmall.length ? d.tooSmall.join('; ') : 'none';
      headline = `Deploy ${deploy.label} on profile ${profile}: ${speed}, ${dice}, within ${d.margin} Dice of ${ref?.label ?? d.reference} overall and in every group with at least ${d.minGroupN} images. Groups we could not check (too few images): ${tooSmall}.`;
    } else if (sel.chosen) {
      headline = `Deploy ${deploy.label} on profile ${profile}: ${speed}, ${dice}.`;
    } else {
      const decided = report.candidates.filter((c) => c.decision);
      const thin = decided.length > 0 && decided.every((c) => c.decision!.verdict === 'too-few-images');
      const margin = decided[0]?.decision?.margin ?? 'the margin';
      headline = thin
        ? `Keep ${deploy.label} on profile ${profile}: ${speed}, ${dice}. The evidence is too thin to choose a cheaper model: the comparison rests on ${decided[0]!.decision!.n} image(s), fewer than the ${decided[0]!.decision!.minGroupN} a decision needs.`
        : `Keep ${deploy.label} on profile ${profile}: ${speed}, ${dice}. No cheaper candidate was shown to be within ${margin} Dice of it.`;
    }
  }
  details.push(`Why: ${sel.reason}`);
  const mix = skinToneMix((deploy ?? ref)?.subgroups);
  if (mix && mix.n > 0) {
    const share = Math.round((100 * mix.light) / mix.n);
    details.push(`Who these numbers are for: by the skin around each lesion, the ${mix.n} test images are ${mix.text}. ${share}% are light or very light skin${share >= 70 ? ', so results for darker skin rest on few images and may not hold' : ''}.`);
  }
  const notChecked = (deploy ?? ref)?.subgroups?.filter((r) => r.dimension !== 'all' && !r.enough).map((r) => `${r.dimension}: ${r.group} (${r.n})`) ?? [];
  if (notChecked.length && !(deploy?.decision?.verdict === 'non-inferior')) details.push(`Groups with too few images to report on: ${notChecked.join('; ')}.`);
  return { headline, details, glossary: GLOSSARY };
}
