import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTradeoffSvg, linearTicks, logTicks, type PlotPoint } from '../../src/report/svg.js';
import { parseXml } from './xmlcheck.js';

const points: PlotPoint[] = [
  { id: 'teacher-fp32', label: 'teacher fp32', latencyMs: 420, dice: 0.9, diceCi95: [0.88, 0.92] },
  { id: 'teacher-int8', label: 'teacher INT8 <q&a>', latencyMs: 180, dice: 0.89, diceCi95: [0.87, 0.91] },
  { id: 'student-fp32', label: 'student fp32', latencyMs: 9, dice: 0.86, diceCi95: [0.83, 0.89] },
  { id: 'student-slow', label: 'student slow', latencyMs: 30, dice: 0.8, diceCi95: [0.77, 0.83] },
  { id: 'broken', label: 'broken', latencyMs: NaN, dice: 0.5 },
];

test('the SVG is well-formed XML with the Pareto points marked and connected', () => {
  const svg = renderTradeoffSvg(points, { title: 'cpu-2t' });
  const els = parseXml(svg);
  assert.equal(els[0]!.name, 'svg');
  const groups = els.filter((e) => e.name === 'g' && e.attrs['data-id']);
  const marked = groups.filter((g) => g.attrs.class === 'candidate pareto').map((g) => g.attrs['data-id']).sort();
  assert.deepEqual(marked, ['student-fp32', 'teacher-fp32', 'teacher-int8']);
  const plain = groups.filter((g) => g.attrs.class === 'candidate').map((g) => g.attrs['data-id']);
  assert.deepEqual(plain, ['student-slow']);
  // The front's line visits the three front points, fastest first.
  const line = els.find((e) => e.name === 'polyline' && e.attrs.class === 'pareto-front');
  assert.ok(line, 'front line present');
  const xs = line.attrs.points!.split(' ').map((pt) => Number(pt.split(',')[0]));
  assert.equal(xs.length, 3);
  assert.ok(xs[0]! < xs[1]! && xs[1]! < xs[2]!, 'front drawn in latency order');
  // The label with XML special characters survived escaping; the point without latency is listed, not plotted.
  assert.ok(els.some((e) => e.name === 'text' && e.text === 'teacher INT8 <q&a>'));
  assert.ok(els.some((e) => e.name === 'text' && e.text.includes('not plotted') && e.text.includes('broken')));
  // Axes carry tick labels and titles; log scale chosen for a 47x span.
  assert.ok(els.filter((e) => e.name === 'text' && e.attrs.class === 'tick x').length >= 2);
  assert.ok(els.filter((e) => e.name === 'text' && e.attrs.class === 'tick y').length >= 2);
  assert.ok(els.some((e) => e.name === 'text' && e.text.includes('log scale')));
  // Error bars: three lines per point with an interval.
  assert.equal(els.filter((e) => e.name === 'line' && e.attrs.class === 'err').length, 4 * 3);
});

test('a single point and an empty set still give well-formed SVG', () => {
  parseXml(renderTradeoffSvg([points[0]!]));
  const empty = renderTradeoffSvg([]);
  parseXml(empty);
  assert.match(empty, /no candidate has both/);
});

test('the checker used above does reject broken XML', () => {
  assert.throws(() => parseXml('<svg><g></svg>'));
  assert.throws(() => parseXml('<svg a="1" a="2"/>'));
  assert.throws(() => parseXml('<svg>a & b</svg>'));
});

test('ticks are round numbers covering the range', () => {
  assert.deepEqual(linearTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(linearTicks(0.83, 0.91, 4), [0.84, 0.86, 0.88, 0.9]);
  assert.deepEqual(logTicks(5, 600), [5, 10, 20, 50, 100, 200, 500]);
});
