// Distilled minus masks-only, both seeds pooled: per test image, the mean of the two distilled runs minus the
// mean of the two masks-only runs, then the 95% bootstrap interval of the mean over the 306 images (2000
// resamples, seed 0). The interval covers the choice of test images, not the choice of seed.
//   node reports/distill/full-train/pooled.mjs > reports/distill/full-train/pooled.txt   (from the repository root)
import { readFileSync } from 'node:fs';
import { bootstrapCI } from '../../../dist/src/runtime/metrics.js';
const load = (n) => new Map(JSON.parse(readFileSync(`reports/distill/full-train/eval/${n}/metrics.json`, 'utf8')).per_image.map((r) => [r.id, r]));
const [k0, m0, k1, m1] = ['ul-kd', 'ul-masks', 'ul-kd-s1', 'ul-masks-s1'].map(load);
for (const key of ['dice', 'iou', 'thresholded_jaccard']) {
  const d = [...k0.keys()].map((id) => (k0.get(id)[key] + k1.get(id)[key]) / 2 - (m0.get(id)[key] + m1.get(id)[key]) / 2);
  const m = d.reduce((a, b) => a + b, 0) / d.length;
  const ci = bootstrapCI(d);
  console.log(`${key}: n=${d.length} mean ${m.toFixed(4)} [${ci[0].toFixed(4)}, ${ci[1].toFixed(4)}] better ${d.filter((x) => x > 0).length} worse ${d.filter((x) => x < 0).length}`);
}
