// Paired per-image differences between models evaluated on the same 306 test images (95% bootstrap
// intervals of the mean, 2000 resamples, seed 0). HD95: lower is better; images where it is undefined are left out.
//   node reports/distill/zoo/paired.mjs > reports/distill/zoo/paired.txt   (from the repository root)
import { readFileSync } from 'node:fs';
import { pairedDifference } from '../../../dist/src/runtime/metrics.js';
const load = (n) => new Map(JSON.parse(readFileSync(`reports/distill/zoo/eval/${n}/metrics.json`, 'utf8')).per_image.map((r) => [r.id, r]));
const pairs = [['ul16-kd-int8', 'ul16-kd'], ['ul16-kd', 'teacher'], ['ul16-kd', 'ul-kd'], ['ul16-kd', 'mobile-kd'], ['mobile-kd', 'teacher'], ['unet-kd', 'teacher']];
for (const [a, b] of pairs) {
  const A = load(a), B = load(b);
  const ids = [...A.keys()].filter((id) => B.has(id));
  for (const k of ['dice', 'hd95']) {
    const p = pairedDifference(ids.map((id) => A.get(id)[k]), ids.map((id) => B.get(id)[k]), { lowerIsBetter: k === 'hd95' });
    console.log(`${a} - ${b} ${k}: n=${p.n} mean ${p.mean.toFixed(4)} [${p.ci95[0].toFixed(4)}, ${p.ci95[1].toFixed(4)}] better ${p.better} worse ${p.worse}`);
  }
}
