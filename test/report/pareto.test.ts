import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paretoFront, dominates, type TradeoffPoint } from '../../src/report/pareto.js';

const p = (id: string, latencyMs: number, dice: number): TradeoffPoint => ({ id, latencyMs, dice });

/** Brute force O(n^2) definition, the independent reference. */
function bruteFront(points: TradeoffPoint[]): string[] {
  return points
    .filter((a) => Number.isFinite(a.latencyMs) && Number.isFinite(a.dice))
    .filter((a) => !points.some((b) => b !== a && Number.isFinite(b.latencyMs) && Number.isFinite(b.dice) && dominates(b, a)))
    .map((a) => a.id)
    .sort();
}

test('made-up set: dominated points are dropped, the front is sorted by latency', () => {
  const pts = [
    p('teacher-fp32', 400, 0.9),
    p('teacher-int8', 150, 0.89),
    p('student-fp32', 12, 0.86),
    p('student-int8', 8, 0.85),
    p('slow-and-bad', 500, 0.8), // dominated by everything
    p('student-rewritten', 12, 0.84), // same latency as student-fp32, lower Dice
    p('teacher-rewritten', 160, 0.88), // slower and worse than teacher-int8
  ];
  const front = paretoFront(pts).map((x) => x.id);
  assert.deepEqual(front, ['student-int8', 'student-fp32', 'teacher-int8', 'teacher-fp32']);
  assert.deepEqual([...front].sort(), bruteFront(pts));
});

test('ties: identical points both stay; same Dice but slower is dominated; same latency lower Dice is dominated', () => {
  const pts = [p('a', 10, 0.8), p('b', 10, 0.8), p('c', 20, 0.8), p('d', 10, 0.7), p('e', 30, 0.9)];
  const front = paretoFront(pts).map((x) => x.id);
  assert.deepEqual(front, ['a', 'b', 'e']);
  assert.deepEqual([...front].sort(), bruteFront(pts));
});

test('a single point is its own front; an empty set has an empty front', () => {
  assert.deepEqual(paretoFront([p('only', 5, 0.5)]).map((x) => x.id), ['only']);
  assert.deepEqual(paretoFront([]), []);
});

test('points without a number are never on the front and do not dominate', () => {
  const pts = [p('nan-dice', 1, NaN), p('inf-lat', Infinity, 0.99), p('ok', 50, 0.7)];
  assert.deepEqual(paretoFront(pts).map((x) => x.id), ['ok']);
});

test('agrees with the brute-force definition on random sets with many ties', () => {
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rnd() * 12);
    const pts = Array.from({ length: n }, (_, i) => p(`p${i}`, 1 + Math.floor(rnd() * 5), Math.floor(rnd() * 5) / 5));
    assert.deepEqual(paretoFront(pts).map((x) => x.id).sort(), bruteFront(pts), JSON.stringify(pts));
  }
});
