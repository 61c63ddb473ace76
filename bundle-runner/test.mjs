#!/usr/bin/env node
// `npm test` of this bundle: runs the bundled sample through run.mjs and compares the mask with the one
// recorded when the bundle was made (sample/expected_mask.png), within the tolerance in sample/expected.json:
// - fp32 on the same kind of CPU (same architecture and kernel-relevant instruction sets): bit-identical;
// - otherwise (INT8 or fp16 models, or another kind of CPU): onnxruntime may pick other kernels (e.g. INT8 with or
//   without VNNI), which moves probabilities slightly and can flip pixels right at the threshold, so the masks
//   must agree on at least the recorded share of pixels; a wrong or damaged model differs far more.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const manifest = JSON.parse(readFileSync(join(here, 'manifest.json'), 'utf8'));
const expected = JSON.parse(readFileSync(join(here, manifest.sample.expected), 'utf8'));
const { cpuKind, sameCpuKind } = await import(new URL('./lib/util/cpu.js', import.meta.url).href);
const { readMask } = await import(new URL('./lib/runtime/image.js', import.meta.url).href);

const out = mkdtempSync(join(tmpdir(), 'bundle-test-'));
try {
  const input = join(here, manifest.sample.input);
  execFileSync(process.execPath, [join(here, 'run.mjs'), input, '--out', out, ...process.argv.slice(2)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const got = await readMask(join(out, `${basename(input, extname(input))}_mask.png`));
  const want = await readMask(join(here, manifest.sample.mask));
  if (got.width !== want.width || got.height !== want.height) throw new Error(`mask is ${got.width} x ${got.height}, recorded ${want.width} x ${want.height}`);
  let same = 0;
  for (let i = 0; i < got.data.length; i++) if (got.data[i] === want.data[i]) same++;
  const agreement = same / got.data.length;
  const exact = manifest.model.precision === 'fp32' && expected.cpu && sameCpuKind(cpuKind(), expected.cpu);
  const need = exact ? 1 : expected.tolerance.maskAgreement;
  const why = exact ? 'fp32 on the same kind of CPU as at packaging: must be bit-identical' : `${manifest.model.precision} model or another kind of CPU: ${expected.tolerance.why}`;
  const line = `sample ${expected.image}: mask agreement ${(agreement * 100).toFixed(3)}% (${got.data.length - same} of ${got.data.length} pixels differ); need >= ${(need * 100).toFixed(1)}% (${why})`;
  if (agreement >= need) console.log(`ok  ${line}`);
  else {
    console.error(`FAIL  ${line}`);
    process.exitCode = 1;
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
