import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nonInferiorChoice, type PerImageScores } from '../../src/pipeline/select.js';
import { renderMarkdown, renderHtml, currentEnvironment } from '../../src/report/render.js';
import type { CandidateSummary, ProfileSection, TradeoffReport } from '../../src/report/types.js';
import type { PipelineConfig } from '../../src/pipeline/config.js';

function cand(id: string, dice: number, size: number): CandidateSummary {
  return {
    id, label: id, family: id.split('-')[0]!, precision: id.endsWith('int8') ? 'int8' : 'fp32', derivation: [], modelPath: `/m/${id}.onnx`,
    fileSizeBytes: size, parameters: null, multiplyAdds: null, overlays: [],
    accuracy: { nImages: 0, dice, diceCi95: [dice - 0.05, dice + 0.05], iou: 0, thresholdedJaccard: 0, hd95: null, dataset: 'made-up' },
  };
}

const speed = (p50: number, p90: number) => ({ status: 'measured' as const, speed: { latencyMedianMs: p50, latencyP90Ms: p90, throughputImagesPerS: null, throughputBatch: 1, peakRssMb: null, warmup: 1, runs: 10 } });

/** n images: the teacher at 0.85 + small variation; each candidate at a fixed loss; skin tone 'very light' except `tan` images. */
function scores(n: number, loss: number, tanLoss = loss, tan = 0): PerImageScores[] {
  return Array.from({ length: n }, (_, i) => {
    const isTan = i < tan;
    return { id: `im${i}`, dice: 0.85 + 0.001 * (i % 5) - (isTan ? tanLoss : loss), hd95: 20, groups: { source: 'isic', 'skin tone (ITA)': isTan ? 'tan' : 'very light' } };
  });
}

const cfg = { select: { rule: 'non-inferior', margin: 0.01, minGroupN: 10, maxDiceDrop: 0.02, profile: 'cpu-2t' }, teacher: { id: 'teacher', model: 'x' } } as unknown as PipelineConfig;

function run(perImage: Map<string, PerImageScores[]>, section: ProfileSection) {
  const cands = [cand('teacher-fp32', 0.85, 100e6), cand('student-fp32', 0.845, 1e6), cand('student-int8', 0.846, 0.4e6), cand('teacher-int8', 0.7, 26e6)];
  const sel = nonInferiorChoice(cfg, cands, [section], ['cpu-2t'], perImage);
  return { sel, cands };
}

const section: ProfileSection = { profile: 'cpu-2t', outcomes: { 'teacher-fp32': speed(140, 150), 'student-fp32': speed(6.1, 6.5), 'student-int8': speed(9.3, 9.8), 'teacher-int8': speed(90, 95) }, pareto: [] };

test('non-inferior selection: the fastest candidate whose loss is shown within the margin; the report says it plainly', () => {
  const per = new Map([
    ['teacher-fp32', scores(40, 0)],
    ['student-fp32', scores(40, 0.004)],
    ['student-int8', scores(40, 0.004)],
    ['teacher-int8', scores(40, 0.15)],
  ]);
  const { sel, cands } = run(per, section);
  assert.equal(sel.chosen, 'student-fp32');
  assert.equal(sel.packaged, 'student-fp32');
  assert.match(sel.reason, /^student-fp32 is non-inferior to teacher-fp32 .* fastest such candidate at 6\.1 ms, ahead of student-int8 \(9\.3 ms\)/);
  assert.equal(cands.find((c) => c.id === 'teacher-int8')!.decision!.verdict, 'inferior');
  assert.equal(cands.find((c) => c.id === 'teacher-fp32')!.decision, undefined);
  const stu = cands.find((c) => c.id === 'student-fp32')!;
  assert.ok(Math.abs(stu.decision!.meanLoss - 0.004) < 1e-12);
  assert.ok(stu.subgroups!.some((g) => g.dimension === 'skin tone (ITA)' && g.vs_reference));
  const report: TradeoffReport = {
    schema: 'lesionfuse.tradeoff-report/1', title: 't', createdAt: 'now', command: 'lesionfuse run x.yaml', environment: currentEnvironment(),
    candidates: cands, profiles: [section], failures: [], notes: [],
    selection: { rule: sel.rule, chosen: sel.chosen, reason: sel.reason, profile: sel.profile, reference: 'teacher-fp32', packaged: sel.packaged },
  };
  const md = renderMarkdown(report);
  assert.match(md, /^# t\n\n## What to deploy\n\n\*\*Deploy student-fp32 on profile cpu-2t: 6\.10 ms per image \(p90 6\.50 ms\), Dice 0\.845 \(95% interval 0\.795-0\.895, 0 images\), within 0\.01 Dice of teacher-fp32 overall and in every group with at least 10 images\. Groups we could not check \(too few images\): none\.\*\*/);
  assert.match(md, /Who these numbers are for: by the skin around each lesion, the 40 test images are 40 very light\. 100% are light or very light skin, so results for darker skin rest on few images/);
  assert.match(md, /- \*\*skin tone \(ITA\)\*\*: /);
  assert.match(md, /## Decisions against teacher-fp32/);
  assert.match(md, /\| teacher-int8 \| inferior \| \+0\.1500 \[\+0\.1500, \+0\.1500\] \(n=40\)/);
  assert.match(md, /### student-fp32\n\n\*\*All images\*\*/);
  assert.ok(md.indexOf('## What to deploy') < md.indexOf('## Engineering details'));
  const html = renderHtml(report, {});
  assert.match(html, /<h2>What to deploy<\/h2>\n<p><b>Deploy student-fp32 on profile cpu-2t/);
  assert.match(html, /<h2>Subgroups<\/h2>/);
});

test('a subgroup with enough images that loses more than the margin blocks a candidate', () => {
  const per = new Map([
    ['teacher-fp32', scores(60, 0, 0, 12)],
    // Overall the loss is (48 x 0.002 + 12 x 0.02) / 60 = 0.0056, but the 12 tan images lose 0.02 each.
    ['student-fp32', scores(60, 0.002, 0.02, 12)],
    ['student-int8', scores(60, 0.002, 0.002, 12)],
    ['teacher-int8', scores(60, 0.15)],
  ]);
  const { sel, cands } = run(per, section);
  const d = cands.find((c) => c.id === 'student-fp32')!.decision!;
  assert.ok(Math.abs(d.meanLoss - 0.0056) < 1e-12);
  assert.ok(d.lossCi95[1] < 0.01, String(d.lossCi95));
  assert.equal(d.worstGroup!.group, 'tan');
  assert.ok(Math.abs(d.worstGroup!.lossCi95[0] - 0.02) < 1e-12);
  assert.equal(d.verdict, 'inferior');
  assert.match(d.reason, /skin tone \(ITA\): tan \(n=12\)/);
  assert.equal(sel.chosen, 'student-int8');
});

test('six images: no cheaper model is chosen, the reference is packaged, and the report says the evidence is too thin', () => {
  const per = new Map([
    ['teacher-fp32', scores(6, 0)],
    ['student-fp32', scores(6, -0.003)],
    ['student-int8', scores(6, 0)],
    ['teacher-int8', scores(6, 0)],
  ]);
  const { sel, cands } = run(per, section);
  assert.equal(sel.chosen, null);
  assert.equal(sel.packaged, 'teacher-fp32');
  assert.match(sel.reason, /too thin, 6 paired image/);
  const report: TradeoffReport = {
    schema: 'lesionfuse.tradeoff-report/1', title: 't', createdAt: 'now', command: 'c', environment: currentEnvironment(),
    candidates: cands, profiles: [section], failures: [], notes: [],
    selection: { rule: sel.rule, chosen: sel.chosen, reason: sel.reason, profile: sel.profile, reference: 'teacher-fp32', packaged: sel.packaged },
  };
  const md = renderMarkdown(report);
  assert.match(md, /\*\*Keep teacher-fp32 on profile cpu-2t: 140 ms per image .*The evidence is too thin to choose a cheaper model: the comparison rests on 6 image\(s\), fewer than the 10 a decision needs\.\*\*/);
  assert.match(md, /Why: No choice: the evidence is too thin, 6 paired image\(s\) against the 10 a decision needs, so none of student-fp32, student-int8, teacher-int8 can be preferred to teacher-fp32/);
  assert.match(md, /Groups with too few images to report on: source: isic \(6\)/);
});
