/**
 * Non-inferiority decisions on paired per-image scores, so that a cheaper model is accepted (by the INT8
 * gate, the pipeline's selection, the report) only when the data show it loses at most `margin` Dice,
 * and never on the noise of a handful of images.
 *
 * Rule ({@link nonInferiority}): with loss[i] = reference Dice[i] - candidate Dice[i] on the images both
 * scored, the candidate is non-inferior when the upper bound of the 95% percentile-bootstrap interval of
 * the mean loss is <= margin, over all images AND in the worst subgroup that has at least `minGroupN`
 * images (worst = the highest upper bound). Fewer than `minGroupN` paired images overall: the evidence is
 * too thin and no decision is made. When the lower bound of the loss is above the margin the candidate is
 * inferior; otherwise (interval straddles the margin) it is not shown non-inferior.
 *
 * Selection ({@link selectNonInferior}): among the non-inferior candidates the fastest wins, unless the
 * latency difference is within the measured spread, in which case the smaller file wins.
 */
import { pairedDifference, type PairedDifference } from './metrics.js';
import { MIN_GROUP_N } from './subgroup-table.js';

export type Verdict = 'non-inferior' | 'not-shown' | 'inferior' | 'too-few-images';

export interface LossSummary {
  /** Paired images. */
  n: number;
  /** Mean Dice loss (reference - candidate); negative = the candidate is better. */
  meanLoss: number;
  /** 95% bootstrap interval of the mean loss. */
  ci95: [number, number];
}

export interface GroupLoss extends LossSummary {
  dimension: string;
  group: string;
}

export interface NonInferiorityResult {
  verdict: Verdict;
  accepted: boolean;
  margin: number;
  minGroupN: number;
  overall: LossSummary;
  /** The subgroup with the highest upper bound of loss among those with enough images (null: none). */
  worstGroup: GroupLoss | null;
  /** Every subgroup with enough images. */
  groups: GroupLoss[];
  /** Groups left out of the decision for having fewer than minGroupN images: "dimension: group (n)". */
  tooSmall: string[];
  /** One sentence. */
  reason: string;
}

export interface NonInferiorityInput {
  /** Per-image Dice of the candidate and the reference, same order (non-finite pairs are left out). */
  candidate: readonly number[];
  reference: readonly number[];
  /** Largest acceptable mean Dice loss (e.g. 0.01). */
  margin: number;
  /** Per image: dimension -> group label (same order as the scores). */
  groups?: readonly Record<string, string>[];
  /** Default {@link MIN_GROUP_N}. */
  minGroupN?: number;
  /** Bootstrap seed (default 0). */
  seed?: number;
}

function toLoss(d: PairedDifference): LossSummary {
  // d is candidate - reference; the loss is its negation.
  return { n: d.n, meanLoss: -d.mean, ci95: [-d.ci95[1], -d.ci95[0]] };
}

const f = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(4);

/** The non-inferiority decision for one candidate against the reference (see the module comment). */
export function nonInferiority(input: NonInferiorityInput): NonInferiorityResult {
  const minGroupN = input.minGroupN ?? MIN_GROUP_N;
  const { candidate, reference, margin } = input;
  if (!(margin >= 0)) throw new RangeError(`margin must be >= 0, got ${margin}`);
  if (candidate.length !== reference.length) throw new RangeError(`candidate has ${candidate.length} scores, the reference ${reference.length}`);
  if (input.groups && input.groups.length !== candidate.length) throw new RangeError(`groups has ${input.groups.length} rows for ${candidate.length} images`);
  const seed = input.seed ?? 0;
  const overall = toLoss(pairedDifference(candidate, reference, { seed }));
  const groups: GroupLoss[] = [];
  const tooSmall: string[] = [];
  if (input.groups) {
    const dims = [...new Set(input.groups.flatMap((g) => Object.keys(g)))];
    for (const dim of dims) {
      const labels = [...new Set(input.groups.map((g) => g[dim]).filter((x): x is string => x !== undefined))].sort();
      for (const label of labels) {
        const idx = input.groups.map((g, i) => (g[dim] === label ? i : -1)).filter((i) => i >= 0 && Number.isFinite(candidate[i]) && Number.isFinite(reference[i]));
        if (idx.length < minGroupN) {
          tooSmall.push(`${dim}: ${label} (${idx.length})`);
          continue;
        }
        groups.push({ dimension: dim, group: label, ...toLoss(pairedDifference(idx.map((i) => candidate[i]!), idx.map((i) => reference[i]!), { seed })) });
      }
    }
  }
  const worstGroup = groups.length ? groups.reduce((a, b) => (b.ci95[1] > a.ci95[1] ? b : a)) : null;
  const base = { margin, minGroupN, overall, worstGroup, groups, tooSmall };
  const ci = (l: LossSummary): string => `${f(l.meanLoss)} [${f(l.ci95[0])}, ${f(l.ci95[1])}]`;
  if (overall.n < minGroupN) {
    return {
      ...base, verdict: 'too-few-images', accepted: false,
      reason: `the evidence is too thin: ${overall.n} paired image(s), fewer than the ${minGroupN} a decision needs (Dice loss ${ci(overall)}), so no candidate is preferred on these numbers.`,
    };
  }
  const worstText = worstGroup ? ` and ${ci(worstGroup)} in the worst group with enough images (${worstGroup.dimension}: ${worstGroup.group}, n=${worstGroup.n})` : '';
  if (overall.ci95[1] <= margin && (!worstGroup || worstGroup.ci95[1] <= margin)) {
    return { ...base, verdict: 'non-inferior', accepted: true, reason: `non-inferior: Dice loss ${ci(overall)} overall${worstText}, upper bounds within the margin ${margin}.` };
  }
  const failing = overall.ci95[1] > margin ? overall : worstGroup!;
  const where = failing === overall ? 'overall' : `in ${worstGroup!.dimension}: ${worstGroup!.group} (n=${worstGroup!.n})`;
  if (failing.ci95[0] > margin) {
    return { ...base, verdict: 'inferior', accepted: false, reason: `inferior: Dice loss ${ci(failing)} ${where}, above the margin ${margin} even at its lower bound.` };
  }
  return { ...base, verdict: 'not-shown', accepted: false, reason: `not shown non-inferior: Dice loss ${ci(failing)} ${where}; the upper bound exceeds the margin ${margin}.` };
}

export interface SelectionCandidate {
  id: string;
  /** Median latency (ms) on the profile, and its spread (e.g. p90 - p10, or the range over interleaved rounds). */
  latencyMs: number;
  latencySpreadMs?: number;
  sizeBytes: number;
  /** The candidate's decision against the reference. */
  decision: NonInferiorityResult;
}

export interface Selection {
  chosen: string | null;
  /** One sentence. */
  reason: string;
}

/**
 * Among non-inferior candidates, the fastest; when its lead over the next is within either one's latency
 * spread they are indistinguishable and the smaller file wins. No non-inferior candidate: null. Every
 * decision too thin: null, saying so.
 */
export function selectNonInferior(candidates: readonly SelectionCandidate[], referenceId: string): Selection {
  if (candidates.length && candidates.every((c) => c.decision.verdict === 'too-few-images')) {
    const d = candidates[0]!.decision;
    return { chosen: null, reason: `No choice: the evidence is too thin, ${d.overall.n} paired image(s) against the ${d.minGroupN} a decision needs, so none of ${candidates.map((c) => c.id).join(', ')} can be preferred to ${referenceId} on these numbers; measure on at least ${d.minGroupN} labelled images first.` };
  }
  const ok = candidates.filter((c) => c.decision.accepted);
  if (!ok.length) return { chosen: null, reason: `No candidate was shown non-inferior to ${referenceId} within the margin; keep ${referenceId}.` };
  const byLatency = [...ok].sort((a, b) => a.latencyMs - b.latencyMs);
  const fastest = byLatency[0]!;
  const tied = byLatency.filter((c) => c.latencyMs - fastest.latencyMs <= Math.max(c.latencySpreadMs ?? 0, fastest.latencySpreadMs ?? 0));
  const ms = (c: SelectionCandidate): string => `${c.latencyMs.toFixed(1)} ms`;
  if (tied.length > 1) {
    const smallest = tied.reduce((a, b) => (b.sizeBytes < a.sizeBytes ? b : a));
    const others = tied.filter((c) => c !== smallest).map((c) => `${c.id} (${ms(c)})`).join(', ');
    return {
      chosen: smallest.id,
      reason: `${smallest.id} is non-inferior to ${referenceId} (${smallest.decision.reason.replace(/^non-inferior: /, '').replace(/\.$/, '')}) and its latency (${ms(smallest)}) cannot be told apart from ${others} within the measured spread, so the smallest file (${(smallest.sizeBytes / 1e6).toFixed(2)} MB) wins.`,
    };
  }
  const next = byLatency[1];
  return {
    chosen: fastest.id,
    reason: `${fastest.id} is non-inferior to ${referenceId} (${fastest.decision.reason.replace(/^non-inferior: /, '').replace(/\.$/, '')}) and the fastest such candidate at ${ms(fastest)}${next ? `, ahead of ${next.id} (${ms(next)}) by more than the spread` : ''}.`,
  };
}
