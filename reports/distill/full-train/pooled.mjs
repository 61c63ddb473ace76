// Distilled minus masks-only, both seeds pooled: per test image, the mean of the two distilled runs minus the
// mean of the two masks-only runs, then the 95% bootstrap interval of the mean over the 306 images (2000
// resamples, seed 0). The interval covers the choice of test images, not the choice of seed.
//   node reports/distill/full-train/pooled.mjs > reports/distill/full-train/pooled.txt   (from the repository root)
import { readFileSync } from 'node:fs';
import { pairedDifference } from '../../../dist/src/runtime/metrics.js';
const load = (n) => new Map(JSON.parse(readFileSync(`reports/distill/full-train/eval/${n}/metrics.json`, 'utf8')).per_image.map((r) => [r.id, r]));
const [k0, m0, k1, m1] = ['ul-kd', 'ul-masks', 'ul-kd-s1', 'ul-masks-s1'].map(load);
const ids = [...k0.keys()];
for (const key of ['dice', 'iou', 'thresholded_jaccard']) {
  const both = (x, y) => ids.map((id) => (x.get(id)[key] + y.get(id)[key]) / 2);
  const p = pairedDifference(both(k0, k1), both(m0, m1));
  console.log(`${key}: n=${p.n} mean ${p.mean.toFixed(4)} [${p.ci95[0].toFixed(4)}, ${p.ci95[1].toFixed(4)}] better ${p.better} worse ${p.worse}`);
}
