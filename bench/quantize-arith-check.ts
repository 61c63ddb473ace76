/**
 * Bit-for-bit check of src/quantize/arith.ts against onnxruntime's Python quantizer.
 *
 *   teacher/.venv/bin/python bench/peer_quantize.py arith /tmp/arith_peer.json
 *   npx tsc -p . && node dist/bench/quantize-arith-check.js /tmp/arith_peer.json
 *
 * Prints the number of cases and every mismatch (scale, zero point, quantized values, int32 bias).
 */
import { readFileSync } from 'node:fs';
import {
  computeScaleZeroPoint, quantRange, quantizeValue, quantizeWeightsPerChannel, quantizeBias, type QuantType,
} from '../src/quantize/arith.js';

interface ScaleCase { kind: 'scale_zp'; type: QuantType; symmetric: boolean; reduce: boolean; rmin: number; rmax: number; scale: number; zp: number; values: number[]; q: number[] }
interface WeightCase { kind: 'weight'; reduce: boolean; w: number[]; scale: number; zp: number; q: number[]; inputScale: number; bias: number; biasScale: number; qBias: number }

const cases = JSON.parse(readFileSync(process.argv[2] ?? '/tmp/arith_peer.json', 'utf8')) as (ScaleCase | WeightCase)[];
let bad = 0;
for (const c of cases) {
  if (c.kind === 'scale_zp') {
    const p = computeScaleZeroPoint(c.rmin, c.rmax, quantRange(c.type, { symmetric: c.symmetric, reduceRange: c.reduce }), { symmetric: c.symmetric });
    const q = c.values.map((v) => quantizeValue(v, p, c.type));
    if (p.scale !== c.scale || p.zeroPoint !== c.zp || q.some((v, i) => v !== c.q[i])) {
      bad++;
      if (bad < 10) console.log('mismatch', JSON.stringify(c), p, q);
    }
  } else {
    const w = quantizeWeightsPerChannel(new Float32Array(c.w), [1, c.w.length], 0, { reduceRange: c.reduce });
    const b = quantizeBias(new Float32Array([c.bias]), c.inputScale, w.scales);
    const ok = w.scales[0] === c.scale && c.zp === 0 && [...w.values].every((v, i) => v === c.q[i]) && b.scales[0] === c.biasScale && b.values[0] === c.qBias;
    if (!ok) {
      bad++;
      if (bad < 10) console.log('mismatch', JSON.stringify(c), w, b);
    }
  }
}
console.log(`${cases.length} cases, ${bad} mismatches`);
process.exitCode = bad ? 1 : 0;
