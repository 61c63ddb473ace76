/**
 * The pipeline's 'non-inferior' selection rule: every candidate is compared image by image with a
 * reference (the teacher as given, by default) with {@link nonInferiority}, overall and in every subgroup
 * with enough images; among the non-inferior candidates the fastest on the selection profile wins
 * ({@link selectNonInferior}: a latency lead inside the measured spread is a tie, and the smaller file
 * wins). When no decision can be made (too few images) or nothing is non-inferior, the reference itself
 * is what gets packaged, and the reason says so.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { CandidateSummary, ProfileSection, SpeedSummary } from '../report/types.js';
import { nonInferiority, selectNonInferior, type NonInferiorityResult, type SelectionCandidate } from '../runtime/noninferiority.js';
import { subgroupTable } from '../runtime/subgroup-table.js';
import type { PipelineConfig } from './config.js';

/** What an evaluation step wrote, per image: Dice, HD95 and the subgroup labels. */
export interface PerImageScores {
  id: string;
  dice: number;
  hd95: number;
  groups: Record<string, string>;
}

/** Per-image scores from an evaluation step folder's metrics.json; [] when it cannot be read. */
export async function readPerImage(dir: string): Promise<PerImageScores[]> {
  try {
    const j = JSON.parse(await fs.readFile(join(dir, 'metrics.json'), 'utf8')) as { per_image?: { id: string; source: string; dice: number | null; hd95: number | null; groups?: Record<string, string> }[] };
    return (j.per_image ?? []).map((r) => ({ id: r.id, dice: r.dice ?? NaN, hd95: r.hd95 ?? NaN, groups: r.groups ?? { source: r.source } }));
  } catch {
    return [];
  }
}

/** The reference candidate: `select.reference`, else the teacher's fp32 candidate, else the best Dice. */
export function referenceId(cfg: Pick<PipelineConfig, 'select' | 'teacher'>, candidates: readonly CandidateSummary[]): string | null {
  if (cfg.select.reference) return cfg.select.reference;
  const t = cfg.teacher ? candidates.find((c) => c.id === `${cfg.teacher!.id}-fp32` && c.accuracy) : undefined;
  if (t) return t.id;
  const withAcc = candidates.filter((c) => c.accuracy);
  return withAcc.length ? withAcc.reduce((a, b) => (b.accuracy!.dice > a.accuracy!.dice ? b : a)).id : null;
}

/** Candidate -> reference per-image pairing (by id), with the candidate's groups. */
function pairUp(cand: readonly PerImageScores[], ref: ReadonlyMap<string, PerImageScores>): { c: number[]; r: number[]; groups: Record<string, string>[] } {
  const c: number[] = [];
  const r: number[] = [];
  const groups: Record<string, string>[] = [];
  for (const x of cand) {
    const y = ref.get(x.id);
    if (!y) continue;
    c.push(x.dice);
    r.push(y.dice);
    groups.push(x.groups);
  }
  return { c, r, groups };
}

/**
 * Decide every candidate against the reference, attach each one's decision and subgroup table to its
 * summary (mutates `candidates`), and choose. `perImage` maps candidate id -> its per-image scores.
 */
export function nonInferiorChoice(
  cfg: Pick<PipelineConfig, 'select' | 'teacher'>,
  candidates: CandidateSummary[],
  sections: readonly ProfileSection[],
  runnableProfiles: readonly string[],
  perImage: ReadonlyMap<string, PerImageScores[]>,
): { rule: string; chosen: string | null; reason: string; profile: string | null; packaged: string | null } {
  const s = cfg.select;
  let profile = s.profile ?? runnableProfiles[0] ?? null;
  let fallback = '';
  if (profile && !runnableProfiles.includes(profile)) {
    fallback = ` (profile ${profile} cannot run here; used ${runnableProfiles[0] ?? 'none'} instead)`;
    profile = runnableProfiles[0] ?? null;
  }
  const refId = referenceId(cfg, candidates);
  const rule = `non-inferior: the fastest candidate on ${profile ?? '(no profile)'} whose Dice loss against ${refId ?? 'the reference'} has a 95% upper bound within ${s.margin}, overall and in the worst group with at least ${s.minGroupN} images`;
  const none = (reason: string) => ({ rule, chosen: null, reason: reason + fallback, profile, packaged: null });
  if (!refId) return none('no candidate has a Dice to compare with');
  const refScores = perImage.get(refId);
  if (!refScores?.length) return none(`the reference ${refId} has no per-image scores`);
  const refMap = new Map(refScores.map((x) => [x.id, x]));
  for (const c of candidates) {
    const scores = perImage.get(c.id);
    if (!scores?.length) continue;
    c.subgroups = subgroupTable(scores, { reference: c.id === refId ? undefined : refMap, minN: s.minGroupN });
    if (c.id === refId) continue;
    const p = pairUp(scores, refMap);
    c.decision = summariseDecision(refId, nonInferiority({ candidate: p.c, reference: p.r, groups: p.groups, margin: s.margin, minGroupN: s.minGroupN }));
  }
  const section = sections.find((x) => x.profile === profile);
  if (!profile || !section) return { ...none(`no profile can run here`), packaged: refId };
  const speed = (id: string): SpeedSummary | null => {
    const o = section.outcomes[id];
    return o?.status === 'measured' ? o.speed : null;
  };
  const pool: SelectionCandidate[] = [];
  for (const c of candidates) {
    const sp = speed(c.id);
    const scores = perImage.get(c.id);
    if (c.id === refId || !sp || !scores?.length) continue;
    const p = pairUp(scores, refMap);
    pool.push({
      id: c.id, latencyMs: sp.latencyMedianMs, latencySpreadMs: Math.max(0, sp.latencyP90Ms - sp.latencyMedianMs), sizeBytes: c.fileSizeBytes ?? Infinity,
      decision: nonInferiority({ candidate: p.c, reference: p.r, groups: p.groups, margin: s.margin, minGroupN: s.minGroupN }),
    });
  }
  if (!pool.length) return { rule, chosen: null, reason: `no candidate besides ${refId} has both per-image scores and a latency on ${profile}; keeping ${refId}${fallback}.`, profile, packaged: refId };
  const sel = selectNonInferior(pool, refId);
  return { rule, chosen: sel.chosen, reason: sel.reason + fallback, profile, packaged: sel.chosen ?? refId };
}

/** The report's short form of a decision. */
export function summariseDecision(referenceId: string, d: NonInferiorityResult): NonNullable<CandidateSummary['decision']> {
  return {
    reference: referenceId,
    verdict: d.verdict,
    margin: d.margin,
    minGroupN: d.minGroupN,
    n: d.overall.n,
    meanLoss: d.overall.meanLoss,
    lossCi95: d.overall.ci95,
    worstGroup: d.worstGroup ? { dimension: d.worstGroup.dimension, group: d.worstGroup.group, n: d.worstGroup.n, meanLoss: d.worstGroup.meanLoss, lossCi95: d.worstGroup.ci95 } : null,
    tooSmall: d.tooSmall,
    reason: d.reason,
  };
}
