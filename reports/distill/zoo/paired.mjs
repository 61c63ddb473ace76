// Paired per-image differences between models evaluated on the same 306 test images (95% bootstrap
// intervals of the mean, 2000 resamples, seed 0). HD95: lower is better; images where it is undefined are left out.
//   node reports/distill/zoo/paired.mjs > reports/distill/zoo/paired.txt   (from the repository root)
import { readFileSync } from 'node:fs';
import { bootstrapCI } from '../../../dist/src/runtime/metrics.js';
const load = (n) => new Map(JSON.parse(readFileSync(`reports/distill/zoo/eval/${n}/metrics.json`, 'utf8')).per_image.map((r) => [r.id, r]));
const pairs = [['ul16-kd-int8', 'ul16-kd'], ['ul16-kd', 'teacher'], ['ul16-kd', 'ul-kd'], ['ul16-kd', 'mobile-kd'], ['mobile-kd', 'teacher'], ['unet-kd', 'teacher']];
for (const [a, b] of pairs) {
  const A = load(a), B = load(b);
  for (const k of ['dice', 'hd95']) {
    const d = [...A.entries()].filter(([id, r]) => B.has(id) && Number.isFinite(r[k]) && Number.isFinite(B.get(id)[k])).map(([id, r]) => r[k] - B.get(id)[k]);
    const m = d.reduce((x, y) => x + y, 0) / d.length;
    const ci = bootstrapCI(d);
    console.log(`${a} - ${b} ${k}: n=${d.length} mean ${m.toFixed(4)} [${ci[0].toFixed(4)}, ${ci[1].toFixed(4)}] better ${d.filter((x) => (k === 'dice' ? x > 0 : x < 0)).length} worse ${d.filter((x) => (k === 'dice' ? x < 0 : x > 0)).length}`);
  }
}
