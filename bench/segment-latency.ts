/**
 * Issue 13's latency targets for `segment`, measured in one run with the cases interleaved (round by round,
 * the order rotating) so that load drift weighs on all alike:
 *
 * - a folder of full-field-like JPEGs (test images upscaled to 2048 x 1365, written to a temporary folder
 *   outside the repo): `segmentFiles` wall time per image vs the floor, decode-with-resize (libvips) +
 *   normalise + `session.run`, one image after the other, timed alone in the same run; and images/s vs
 *   0.8 / max(decode, run);
 * - one 6000 x 4000 JPEG: file -> mask on disk vs decode-with-resize + run;
 * - the bundled teacher: file -> mask on disk vs decode-with-resize + run;
 * - peak RSS of `segmentFiles` in a child process on a folder of `--big` images (links to the synthetic
 *   JPEGs), next to the same on the small folder, to show the bound does not grow with the folder.
 *
 * On a quiet machine (timings are meaningless on a loaded one):
 *
 *   npx tsc -p . && node dist/bench/segment-latency.js --data ../shared/data --images 40 --rounds 3 \
 *     --profile cpu-2t --big 2000 --out reports/runtime/segment-latency
 *
 * Check that it runs (numbers not to be quoted): `--images 3 --rounds 1 --big 20 --teacher-images 1`.
 */
import { mkdtempSync, rmSync, symlinkSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { openDataset } from '../src/runtime/dataset.js';
import { decodeResized, maskPngBytes, normaliseInto, type ResizeMode } from '../src/runtime/image.js';
import { Segmenter } from '../src/runtime/segmenter.js';
import { segmentFiles } from '../src/runtime/segment.js';
import { percentile } from '../src/runtime/metrics.js';
import { machineInfo } from '../src/runtime/benchmark.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}
const data = arg('--data', '../shared/data');
const nImages = Number(arg('--images', '40'));
const rounds = Number(arg('--rounds', '3'));
const profile = arg('--profile', 'cpu-2t');
const nBig = Number(arg('--big', '2000'));
const nTeacher = Number(arg('--teacher-images', '4'));
const modes = arg('--resize', 'exact,fast').split(',') as ResizeMode[];
const outDir = arg('--out', 'reports/runtime/segment-latency');
const tmp = mkdtempSync(join(tmpdir(), 'lf-seglat-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const med = (xs: number[]): number => percentile(xs, 50);

/** The floor: decode with resize in libvips, normalise, run; one image after the other. */
async function floorPass(seg: Segmenter, files: string[]): Promise<{ total: number; decode: number[]; run: number[] }> {
  const { height: H, width: W } = seg.inputSize;
  const decode: number[] = [];
  const run: number[] = [];
  const t0 = now();
  for (const f of files) {
    const a = now();
    const img = await decodeResized(f, { width: W, height: H });
    const x = new Float32Array(3 * H * W);
    normaliseInto(img.data, { ...seg.metadata, height: H, width: W }, x, 0);
    const b = now();
    await seg.runTensor(x, 1);
    run.push(now() - b);
    decode.push(b - a);
  }
  return { total: now() - t0, decode, run };
}

/** File -> mask PNG on disk, one image at a time, through the Segmenter. */
async function fileToMask(seg: Segmenter, files: string[], dir: string): Promise<number> {
  const t0 = now();
  for (const [k, f] of files.entries()) {
    const r = await seg.segment(f);
    await writeFileAtomic(join(dir, `m${k}.png`), await maskPngBytes(r));
  }
  return now() - t0;
}

async function main(): Promise<void> {
  const ds = await openDataset(data, { split: 'test' });
  const ff = join(tmp, 'full-field');
  mkdirSync(ff);
  const files: string[] = [];
  for (const item of ds.items.slice(0, nImages)) {
    const p = join(ff, `${item.id}.jpg`);
    await sharp(item.imagePath).resize(2048, 1365, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(p);
    files.push(p);
  }
  const big = join(tmp, 'big-6000x4000.jpg');
  await sharp(ds.items[0]!.imagePath).resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(big);

  const rows: Record<string, unknown>[] = [];
  for (const resize of modes) {
    const seg = await Segmenter.create('default:student', { profile, resize });
    const teacher = nTeacher > 0 ? await Segmenter.create('default:teacher', { profile, resize }) : null;
    const t: Record<string, number[]> = { floor: [], decode: [], run: [], segment: [], create: [], big: [], bigFloor: [], teacher: [], teacherFloor: [] };
    // warm-up
    await floorPass(seg, files.slice(0, 2));
    await fileToMask(seg, files.slice(0, 2), tmp);
    for (let r = 0; r < rounds; r++) {
      const steps: [string, () => Promise<void>][] = [
        ['floor', async () => {
          const f = await floorPass(seg, files);
          t.floor!.push(f.total / files.length);
          t.decode!.push(med(f.decode));
          t.run!.push(med(f.run));
        }],
        ['segment', async () => {
          const c0 = now();
          const s = await Segmenter.create('default:student', { profile, resize });
          await s.close();
          t.create!.push(now() - c0);
          const a = now();
          const res = await segmentFiles({ model: 'default:student', inputs: [ff], out: join(tmp, `out-${resize}-${r}`), profile, resize, progress: false });
          if (res.failures.length) throw new Error(`segment failed on ${res.failures.length} images: ${res.failures[0]!.reason}`);
          t.segment!.push((now() - a) / files.length);
        }],
        ['big', async () => {
          t.big!.push(await fileToMask(seg, [big], tmp));
          t.bigFloor!.push((await floorPass(seg, [big])).total);
        }],
      ];
      if (teacher) {
        steps.push(['teacher', async () => {
          const some = files.slice(0, nTeacher);
          t.teacher!.push((await fileToMask(teacher, some, tmp)) / some.length);
          t.teacherFloor!.push((await floorPass(teacher, some)).total / some.length);
        }]);
      }
      for (let j = 0; j < steps.length; j++) await steps[(r + j) % steps.length]![1]();
    }
    await seg.close();
    await teacher?.close();
    const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.length ? med(v) : NaN]));
    const segmentNoCreate = m.segment! - m.create! / files.length;
    const row = {
      resize,
      folder_images: files.length,
      floor_ms_per_image: m.floor,
      decode_ms: m.decode,
      run_ms: m.run,
      segment_ms_per_image: m.segment,
      session_create_ms: m.create,
      segment_over_floor: segmentNoCreate / m.floor!,
      images_per_s: 1000 / m.segment!,
      images_per_s_target: (0.8 * 1000) / Math.max(m.decode!, m.run!),
      big_file_to_mask_ms: m.big,
      big_floor_ms: m.bigFloor,
      big_over_floor: m.big! / m.bigFloor!,
      teacher_file_to_mask_ms: m.teacher,
      teacher_floor_ms: m.teacherFloor,
      teacher_over_floor: m.teacher! / m.teacherFloor!,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }

  // Peak RSS in a child process: the small folder and a folder of nBig links to the same JPEGs.
  const rss: Record<string, number> = {};
  const many = join(tmp, 'many');
  mkdirSync(many);
  for (let k = 0; k < nBig; k++) symlinkSync(files[k % files.length]!, join(many, `img${String(k).padStart(5, '0')}.jpg`));
  const segmentJs = fileURLToPath(new URL('../src/runtime/segment.js', import.meta.url));
  for (const [name, dir] of [[`${files.length} images`, ff], [`${nBig} images`, many]] as const) {
    const code = `import { segmentFiles } from ${JSON.stringify(segmentJs)};
      const r = await segmentFiles({ model: 'default:student', inputs: [${JSON.stringify(dir)}], out: ${JSON.stringify(join(tmp, 'rss-' + readdirSync(tmp).length))}, profile: ${JSON.stringify(profile)}, progress: false });
      process.stdout.write(JSON.stringify({ n: r.segmented.length, maxRssMB: process.resourceUsage().maxRSS / 1024 }));`;
    const c = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
    if (c.status !== 0) throw new Error(`RSS child failed: ${c.stderr}`);
    const o = JSON.parse(c.stdout) as { n: number; maxRssMB: number };
    rss[name] = o.maxRssMB;
    console.log(JSON.stringify({ rss: name, ...o }));
  }

  const command = `node dist/bench/segment-latency.js ${process.argv.slice(2).join(' ')}`.trim();
  const machine = machineInfo();
  await writeJsonAtomic(join(outDir, 'segment-latency.json'), { command, profile, rounds, rows, peak_rss_mb: rss, machine, created_at: new Date().toISOString() });
  const f1 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(1) : '-');
  const f2 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(2) : '-');
  const md = [
    '# segment latency vs the decode + run floor',
    '',
    `Command: \`${command}\`; profile ${profile}; medians over ${rounds} interleaved rounds. Machine: ${machine.cpuModel}, ${machine.logicalCores} logical cores.`,
    'Folder: test images upscaled to 2048 x 1365 JPEG (q90). Floor: libvips decode-with-resize + normalise + session.run, one image after the other, in the same run.',
    'segment / floor excludes the session creation (timed alone, spread over the folder). Targets: segment / floor <= 1.3; images/s >= 0.8 / max(decode, run); 6000 x 4000 <= 1.5; teacher <= 1.1.',
    '',
    '| resize | floor ms/img | decode ms | run ms | segment ms/img | segment / floor | images/s (target) | 6000x4000 ms (floor) | / floor | teacher ms/img (floor) | / floor |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const x = r as Record<string, number | string>;
      return `| ${x.resize} | ${f1(x.floor_ms_per_image)} | ${f1(x.decode_ms)} | ${f1(x.run_ms)} | ${f1(x.segment_ms_per_image)} | ${f2(x.segment_over_floor)} | ${f1(x.images_per_s)} (${f1(x.images_per_s_target)}) | ${f1(x.big_file_to_mask_ms)} (${f1(x.big_floor_ms)}) | ${f2(x.big_over_floor)} | ${f1(x.teacher_file_to_mask_ms)} (${f1(x.teacher_floor_ms)}) | ${f2(x.teacher_over_floor)} |`;
    }),
    '',
    `Peak RSS of segmentFiles in a child process (default resize): ${Object.entries(rss).map(([k, v]) => `${k}: ${v.toFixed(0)} MB`).join('; ')}.`,
    '',
  ].join('\n');
  await writeFileAtomic(join(outDir, 'segment-latency.md'), md);
  process.stdout.write(md);
}

await main();
