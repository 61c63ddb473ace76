/**
 * The non-inferiority decision (runtime/noninferiority.ts) of one evaluation against another, from the
 * metrics.json files `lesionfuse eval` wrote, paired by image id, with the subgroups recorded there.
 *
 *   node dist/bench/noninferiority-evals.js CANDIDATE/metrics.json REFERENCE/metrics.json OUT.json [margin ...]
 */
import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { nonInferiority } from '../src/runtime/noninferiority.js';

type Row = { id: string; dice: number | null; groups?: Record<string, string> };
const [candPath, refPath, outPath, ...marginArgs] = process.argv.slice(2);
if (!candPath || !refPath || !outPath) {
  console.error('usage: noninferiority-evals.js CANDIDATE/metrics.json REFERENCE/metrics.json OUT.json [margin ...]');
  process.exit(2);
}
const read = (p: string): Row[] => (JSON.parse(readFileSync(p, 'utf8')) as { per_image: Row[] }).per_image;
const cand = read(candPath);
const ref = new Map(read(refPath).map((r) => [r.id, r]));
const paired = cand.filter((r) => ref.has(r.id));
const margins = marginArgs.length ? marginArgs.map(Number) : [0.01, 0.02, 0.05];
const decisions = margins.map((margin) => {
  const d = nonInferiority({
    candidate: paired.map((r) => r.dice ?? NaN),
    reference: paired.map((r) => ref.get(r.id)!.dice ?? NaN),
    groups: paired.map((r) => r.groups ?? {}),
    margin,
  });
  return { margin, verdict: d.verdict, overall: d.overall, worstGroup: d.worstGroup, tooSmall: d.tooSmall, reason: d.reason };
});
for (const d of decisions) console.log(`margin ${d.margin}: ${d.reason}`);
await writeJsonAtomic(outPath, { candidate: candPath, reference: refPath, pairedImages: paired.length, decisions });
