import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subgroupMarkdown, subgroupTable, type ScoredImage } from '../../src/runtime/subgroup-table.js';

// A made-up dataset: 12 light-skin images at Dice 0.9, 10 tan at 0.7 (constant, so each interval is the value itself), 3 brown.
const images: ScoredImage[] = [
  ...Array.from({ length: 12 }, (_, i) => ({ id: `l${i}`, dice: 0.9, hd95: 10, groups: { 'skin tone (ITA)': 'light', source: 'a' } })),
  ...Array.from({ length: 10 }, (_, i) => ({ id: `t${i}`, dice: 0.7, hd95: i === 0 ? NaN : 30, groups: { 'skin tone (ITA)': 'tan', source: 'b' } })),
  ...Array.from({ length: 3 }, (_, i) => ({ id: `b${i}`, dice: 0.5, hd95: 50, groups: { 'skin tone (ITA)': 'brown', source: 'b' } })),
];

test('subgroup table on a made-up dataset with known groups', () => {
  const ref = new Map(images.map((im) => [im.id, { dice: im.groups['skin tone (ITA)'] === 'tan' ? 0.72 : im.dice, hd95: im.hd95 }]));
  const t = subgroupTable(images, { reference: ref });
  assert.deepEqual(t.map((r) => `${r.dimension}/${r.group}/${r.n}`), [
    'all/all images/25', 'source/a/12', 'source/b/13', 'skin tone (ITA)/light/12', 'skin tone (ITA)/tan/10', 'skin tone (ITA)/brown/3',
  ]);
  const all = t[0]!;
  assert.ok(Math.abs(all.dice!.mean - (12 * 0.9 + 10 * 0.7 + 3 * 0.5) / 25) < 1e-12);
  const tan = t.find((r) => r.group === 'tan')!;
  assert.deepEqual(tan.dice!.ci95.map((v) => Math.round(v * 1e12) / 1e12), [0.7, 0.7]);
  assert.equal(tan.hd95!.n, 9);
  assert.ok(Math.abs(tan.vs_reference!.dice.mean + 0.02) < 1e-12);
  assert.equal(tan.vs_reference!.dice.worse, 10);
  assert.equal(t.find((r) => r.group === 'light')!.vs_reference!.dice.mean, 0);
  const brown = t.find((r) => r.group === 'brown')!;
  assert.equal(brown.enough, false);
  assert.equal(brown.dice, undefined);
  const md = subgroupMarkdown(t, { referenceName: 'teacher' });
  assert.match(md, /\| brown \| 3 \| too few images \(n < 10\) to say \|/);
  assert.match(md, /\| tan \| 10 \| 0\.700 \[0\.700, 0\.700\] \| 30\.0 \[30\.0, 30\.0\] \(n=9\) \| -0\.020 \[-0\.020, -0\.020\]/);
  assert.match(md, /Dice minus teacher/);
});

test('minN is configurable and no reference means no paired column', () => {
  const t = subgroupTable(images, { minN: 3 });
  assert.ok(t.find((r) => r.group === 'brown')!.enough);
  assert.ok(t.every((r) => r.vs_reference === undefined));
  assert.doesNotMatch(subgroupMarkdown(t, { minN: 3 }), /minus/);
});
