/**
 * The cost of LesionFuse's pre/post-processing around the model (docs/benchmarks.md, "The peers"):
 * raw `InferenceSession.run` on a pre-made tensor versus the full path from an image file to a mask
 * (decode + resize + normalise + run + sigmoid + resize back + threshold), and to a mask PNG on disk.
 * Also the parts of the full path, timed alone.
 *
 *   npx tsc -p . && nice -n 5 node dist/bench/wrapper-overhead.js [--model M.onnx] [--runs 20] [--out reports/runtime]
 *
 * Without --model it builds the `mobile-unet` student (src/distill/zoo, random initial weights: the cost
 * does not depend on the values) at 192 x 256. Images: samples/images (512-600 px wide) and one large
 * 6000 x 4000 JPEG made from a sample (the size of a full dermoscopy frame). Threads: 1 (cpu-1t).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as ort from '../src/util/ort.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { writeModel } from '../src/onnx/io.js';
import { segmentationMetadataProps } from '../src/onnx/metadata.js';
import { inferenceStudent } from '../src/distill/zoo/index.js';
import { packageRoot } from '../src/util/paths.js';
import { Segmenter } from '../src/runtime/segmenter.js';
import { decodeImage, resizeProbability, toModelInput, writeMaskPng } from '../src/runtime/image.js';
import { loadProfile, sessionOptionsFor } from '../src/runtime/profiles.js';
import { percentile } from '../src/runtime/metrics.js';
import { machineInfo } from '../src/runtime/benchmark.js';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const runs = Number(arg('--runs', '20'));
const warmup = Number(arg('--warmup', '3'));
const outDir = arg('--out', join(packageRoot(), 'reports', 'runtime'))!;
const tmp = mkdtempSync(join(tmpdir(), 'lf-overhead-'));

type Timing = { median: number; p90: number };

/**
 * Time several functions interleaved (one run of each in turn, the order rotating), so that the load of
 * a shared machine, which drifts over seconds, weighs on all of them alike and their ratio holds.
 */
async function interleaved(n: number, fns: Record<string, () => Promise<unknown>>): Promise<Record<string, Timing>> {
  const names = Object.keys(fns);
  for (let i = 0; i < warmup; i++) for (const k of names) await fns[k]!();
  const t: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(i + j) % names.length]!;
      const s = process.hrtime.bigint();
      await fns[k]!();
      t[k]!.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }
  return Object.fromEntries(names.map((k) => [k, { median: percentile(t[k]!, 50), p90: percentile(t[k]!, 90) }]));
}

async function main(): Promise<void> {
  let modelPath = arg('--model');
  let modelNote = modelPath ?? '';
  if (!modelPath) {
    const s = inferenceStudent('mobile-unet', { inputSize: { height: 192, width: 256 } }, new Map());
    Object.assign(s.model.metadata, segmentationMetadataProps({ inputSize: { height: 192, width: 256 }, output: 'logits', modelName: 'mobile-unet (random init)' }));
    modelPath = join(tmp, 'mobile-unet.onnx');
    await writeModel(s.model, modelPath);
    modelNote = `mobile-unet student built by src/distill/zoo at 192x256, random initial weights (${s.paramCount} parameters, ${(s.macs / 1e6).toFixed(1)} M MACs)`;
  }
  const profile = loadProfile('cpu-1t');
  const seg = await Segmenter.create(modelPath, { profile });
  const { height: H, width: W } = seg.inputSize;
  const raw = await ort.InferenceSession.create(modelPath, sessionOptionsFor(profile));
  const x = new Float32Array(3 * H * W).map((_, i) => Math.sin(i));
  const feeds = { [raw.inputNames[0]!]: new ort.Tensor('float32', x, [1, 3, H, W]) };

  const samples = readdirSync(join(packageRoot(), 'samples', 'images')).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(packageRoot(), 'samples', 'images', f));
  const large = join(tmp, 'large-6000x4000.jpg');
  await sharp(samples[0]!).resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(large);
  const cases: { name: string; files: string[]; runs: number }[] = [
    { name: `samples/images (${samples.length} images, 512-600 px wide)`, files: samples, runs },
    { name: 'one 6000 x 4000 JPEG', files: [large], runs: Math.max(3, Math.floor(runs / 4)) },
  ];

  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    let k = 0;
    const next = (): string => c.files[k++ % c.files.length]!;
    const nRuns = c.runs * c.files.length;
    const img0 = await decodeImage(c.files[0]!);
    const logits = await seg.runTensor(toModelInput([img0], { ...seg.metadata, height: H, width: W }), 1);
    const t = await interleaved(nRuns, {
      raw: () => raw.run(feeds),
      full: () => seg.segment(next()),
      toFile: async () => {
        const r = await seg.segment(next());
        await writeMaskPng(join(tmp, 'mask.png'), { width: r.width, height: r.height, data: r.mask });
      },
      decode: () => decodeImage(next()),
      pre: async () => toModelInput([img0], { ...seg.metadata, height: H, width: W }),
      post: async () => {
        const p = new Float32Array(logits.length);
        for (let i = 0; i < p.length; i++) p[i] = 1 / (1 + Math.exp(-logits[i]!));
        const up = resizeProbability(p, H, W, img0.height, img0.width);
        const m = new Uint8Array(up.length);
        for (let i = 0; i < m.length; i++) m[i] = up[i]! > 0.5 ? 1 : 0;
      },
    });
    const row = {
      images: c.name,
      raw_run_ms: t.raw!,
      full_path_ms: t.full!,
      full_path_with_png_ms: t.toFile!,
      overhead_ms: t.full!.median - t.raw!.median,
      full_over_raw: t.full!.median / t.raw!.median,
      parts_ms: { decode: t.decode!, preprocess: t.pre!, postprocess: t.post! },
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  await seg.close();
  await raw.release();
  const command = `nice -n 5 node dist/bench/wrapper-overhead.js ${process.argv.slice(2).join(' ')}`.trim();
  const report = { what: 'raw InferenceSession.run on a pre-made tensor vs image file -> mask', model: modelNote, profile: profile.name, input: `${H}x${W}`, runs, warmup, machine: machineInfo(), rows, command, created_at: new Date().toISOString() };
  await writeJsonAtomic(join(outDir, 'wrapper-overhead.json'), report);
  const f = (t: { median: number; p90: number }): string => `${t.median.toFixed(1)} (p90 ${t.p90.toFixed(1)})`;
  const md = [
    '# Inference wrapper overhead',
    '',
    `Model: ${modelNote}; profile ${profile.name} (1 thread); input ${H} x ${W}. Median (p90) ms over ${runs} runs per image after ${warmup} warm-up runs (the large image: fewer runs), all measurements of a row interleaved so that load drift hits them alike; resize + normalise and the post-processing are timed on the first image of the row.`,
    `Machine: ${report.machine.cpuModel}, ${report.machine.logicalCores} logical cores, shared with other work (absolute times are hints; the ratio is the figure). Node.js ${report.machine.node}, onnxruntime-node ${report.machine.onnxruntimeNode}, LesionFuse ${report.machine.sdk}.`,
    '',
    `Command: \`${command}\``,
    '',
    '| images | raw run | file -> mask | file -> mask PNG | overhead (ms) | full / raw | decode | resize + normalise | sigmoid + resize back + threshold |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const x = r as { images: string; raw_run_ms: { median: number; p90: number }; full_path_ms: { median: number; p90: number }; full_path_with_png_ms: { median: number; p90: number }; overhead_ms: number; full_over_raw: number; parts_ms: Record<string, { median: number; p90: number }> };
      return `| ${x.images} | ${f(x.raw_run_ms)} | ${f(x.full_path_ms)} | ${f(x.full_path_with_png_ms)} | ${x.overhead_ms.toFixed(1)} | ${x.full_over_raw.toFixed(2)} | ${f(x.parts_ms.decode!)} | ${f(x.parts_ms.preprocess!)} | ${f(x.parts_ms.postprocess!)} |`;
    }),
    '',
  ].join('\n');
  await writeFileAtomic(join(outDir, 'wrapper-overhead.md'), md);
  console.log(md);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(tmp, { recursive: true, force: true }));
