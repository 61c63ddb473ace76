import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nonInferiority, selectNonInferior, type SelectionCandidate } from '../../src/runtime/noninferiority.js';

const ref = (n: number, base = 0.85): number[] => Array.from({ length: n }, (_, i) => base + 0.001 * (i % 7));

test('a constant loss within the margin is non-inferior (its interval is the constant itself)', () => {
  const r = ref(20);
  const c = r.map((v) => v - 0.005);
  const d = nonInferiority({ candidate: c, reference: r, margin: 0.01 });
  assert.equal(d.verdict, 'non-inferior');
  assert.ok(d.accepted);
  assert.equal(d.overall.n, 20);
  assert.ok(Math.abs(d.overall.meanLoss - 0.005) < 1e-12);
  assert.ok(Math.abs(d.overall.ci95[0] - 0.005) < 1e-12 && Math.abs(d.overall.ci95[1] - 0.005) < 1e-12);
  assert.match(d.reason, /^non-inferior: Dice loss \+0\.0050 \[\+0\.0050, \+0\.0050\] overall/);
});

test('fine overall but a subgroup with enough images losing more than the margin: refused, naming the group', () => {
  // 20 images of group A lose 0, 20 of group B lose 0.02 (constant, so B's interval is [0.02, 0.02]).
  const r = ref(40);
  const groups = r.map((_, i) => ({ 'skin tone (ITA)': i < 20 ? 'very light' : 'tan' }));
  const c = r.map((v, i) => (i < 20 ? v : v - 0.02));
  const d = nonInferiority({ candidate: c, reference: r, margin: 0.015, groups });
  // Overall mean loss 0.01 with an upper bound below 0.015 (half the images at 0, half at 0.02).
  assert.ok(Math.abs(d.overall.meanLoss - 0.01) < 1e-12);
  assert.ok(d.overall.ci95[1] < 0.015, String(d.overall.ci95));
  assert.equal(d.worstGroup!.group, 'tan');
  assert.ok(Math.abs(d.worstGroup!.ci95[0] - 0.02) < 1e-12);
  assert.equal(d.verdict, 'inferior');
  assert.equal(d.accepted, false);
  assert.match(d.reason, /skin tone \(ITA\): tan \(n=20\)/);
  // With a 0.025 margin both pass.
  assert.equal(nonInferiority({ candidate: c, reference: r, margin: 0.025, groups }).verdict, 'non-inferior');
});

test('groups under the minimum are listed, not decided on', () => {
  const r = ref(23);
  const c = r.map((v) => v - 0.004);
  const groups = r.map((_, i) => ({ source: i < 3 ? 'ph2' : 'isic2018' }));
  const d = nonInferiority({ candidate: c, reference: r, margin: 0.01, groups });
  assert.deepEqual(d.tooSmall, ['source: ph2 (3)']);
  assert.deepEqual(d.groups.map((g) => g.group), ['isic2018']);
  assert.equal(d.verdict, 'non-inferior');
});

test('six images: the evidence is too thin, whatever the means', () => {
  const r = ref(6);
  const c = r.map((v) => v + 0.003); // the candidate even looks better
  const d = nonInferiority({ candidate: c, reference: r, margin: 0.01 });
  assert.equal(d.verdict, 'too-few-images');
  assert.equal(d.accepted, false);
  assert.match(d.reason, /too thin: 6 paired image\(s\), fewer than the 10/);
});

test('an interval straddling the margin is "not shown", not "inferior"', () => {
  // Losses alternate -0.05 and +0.07: mean 0.01, a wide interval around it.
  const r = ref(30);
  const c = r.map((v, i) => (i % 2 ? v + 0.05 : v - 0.07));
  const d = nonInferiority({ candidate: c, reference: r, margin: 0.01 });
  assert.ok(Math.abs(d.overall.meanLoss - 0.01) < 1e-12);
  assert.ok(d.overall.ci95[0] < 0.01 && d.overall.ci95[1] > 0.01);
  assert.equal(d.verdict, 'not-shown');
});

test('NaN pairs are left out and bad inputs throw', () => {
  const r = [...ref(12), NaN];
  const c = [...ref(12), 0.5];
  assert.equal(nonInferiority({ candidate: c, reference: r, margin: 0.01 }).overall.n, 12);
  assert.throws(() => nonInferiority({ candidate: [1], reference: [1, 2], margin: 0.01 }), /1 scores, the reference 2/);
  assert.throws(() => nonInferiority({ candidate: [1], reference: [1], margin: -1 }), /margin/);
});

function cand(id: string, loss: number, latencyMs: number, sizeBytes: number, spread = 0, n = 20): SelectionCandidate {
  const r = ref(n);
  return { id, latencyMs, latencySpreadMs: spread, sizeBytes, decision: nonInferiority({ candidate: r.map((v) => v - loss), reference: r, margin: 0.01 }) };
}

test('selection: the fastest non-inferior candidate; an inferior faster one is passed over', () => {
  const s = selectNonInferior([cand('int8', 0.05, 5, 1e6), cand('student', 0.004, 10, 2e6), cand('teacher-rewritten', 0, 120, 1e8)], 'teacher');
  assert.equal(s.chosen, 'student');
  assert.match(s.reason, /^student is non-inferior to teacher .* fastest such candidate at 10\.0 ms, ahead of teacher-rewritten \(120\.0 ms\)/);
});

test('selection: latencies within the spread are a tie, and the smaller file wins', () => {
  const s = selectNonInferior([cand('student', 0.004, 6.1, 1e6, 1.5), cand('student-int8', 0.004, 7.0, 0.4e6, 2)], 'teacher');
  assert.equal(s.chosen, 'student-int8');
  assert.match(s.reason, /cannot be told apart from student \(6\.1 ms\).*smallest file \(0\.40 MB\)/);
  // Outside the spread the faster wins.
  assert.equal(selectNonInferior([cand('student', 0.004, 6.1, 1e6, 0.2), cand('student-int8', 0.004, 9.3, 0.4e6, 0.3)], 'teacher').chosen, 'student');
});

test('selection on six images picks nothing and says the evidence is too thin', () => {
  const s = selectNonInferior([cand('student', -0.003, 6.1, 1e6, 0, 6), cand('student-int8', 0, 9.3, 0.4e6, 0, 6)], 'teacher');
  assert.equal(s.chosen, null);
  assert.match(s.reason, /too thin, 6 paired image\(s\) against the 10 a decision needs, so none of student, student-int8 can be preferred to teacher/);
  assert.equal(selectNonInferior([cand('x', 0.2, 1, 1)], 'teacher').chosen, null);
});
