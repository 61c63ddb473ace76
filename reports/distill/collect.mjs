// Collects the distillation evidence into reports/distill/results.json:
// training summaries (distill.json of each run), test-split evaluations (lesionfuse eval -> metrics.json)
// and cpu-2t latency (lesionfuse bench -> bench.json), and checks the targets.
//
//   node reports/distill/collect.mjs [--dir reports/distill/<folder>] RUNS_DIR TEACHER.onnx run1 run2 ...
//
// RUNS_DIR/<run>/distill.json come from `lesionfuse distill --out RUNS_DIR/<run>`; a run given as
// `name=FOLDER` is read from FOLDER instead (a run kept elsewhere, e.g. an earlier session's);
// reports/distill/eval/<name>/metrics.json from `lesionfuse eval ... --out reports/distill/eval/<name>`
// (name = 'teacher' or the run name); reports/distill/bench/bench.json from `lesionfuse bench`.
import { readFileSync, writeFileSync, renameSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { bootstrapCI, pairedDifference } from '../../dist/src/runtime/metrics.js';

const argv = process.argv.slice(2);
let here = resolve('reports/distill');
if (argv[0] === '--dir') {
  here = resolve(argv[1]);
  argv.splice(0, 2);
}
const [runsDir, teacherPath, ...runs] = argv;
if (!runsDir || !teacherPath || runs.length === 0) {
  console.error('usage: node reports/distill/collect.mjs [--dir DIR] RUNS_DIR TEACHER.onnx run1 [run2 ...]');
  process.exit(2);
}
const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));
// Every reports/distill/bench*/bench.json (one `lesionfuse bench` call each), merged.
const benchFiles = readdirSync(here).filter((d) => d.startsWith('bench') && existsSync(join(here, d, 'bench.json'))).map((d) => readJson(join(here, d, 'bench.json')));
const bench = benchFiles.length ? { machine: benchFiles[0].machine, results: benchFiles.flatMap((b) => b.results), commands: benchFiles.map((b) => b.command ?? null) } : null;

function latencyOf(modelPath, fileIndex) {
  if (!bench) return null;
  const pool = fileIndex === undefined ? bench.results : benchFiles[fileIndex].results;
  const r = pool.find((x) => resolve(x.model.path) === resolve(modelPath) && x.profile.name === 'cpu-2t');
  if (!r || r.skipped) return null;
  return { medianMs: r.latencyMs.median, p90Ms: r.latencyMs.p90, throughputImagesPerSecond: r.throughput?.imagesPerSecond ?? null, fileSizeBytes: r.model.fileSizeBytes, parameters: r.model.parameters, macsPerImage: r.model.macsPerImage };
}

function evalOf(name) {
  const p = join(here, 'eval', name, 'metrics.json');
  if (!existsSync(p)) return null;
  const m = readJson(p);
  const perSource = {};
  for (const [k, v] of Object.entries(m.per_source ?? {})) perSource[k] = { n: v.n_images, dice: v.mean.dice, dice_ci95: v.ci95.dice };
  const perImageDice = new Map(m.per_image.map((r) => [r.id, r.dice]));
  const perImage = new Map(m.per_image.map((r) => [r.id, r]));
  return { perImageDice, perImage, n_images: m.n_images, dice: m.mean.dice, dice_ci95: m.ci95.dice, iou: m.mean.iou, thresholded_jaccard: m.mean.thresholded_jaccard, hd95: m.mean.hd95, boundary_f: m.mean.boundary_f, per_source: perSource, failures: m.failures.length };
}

const teacher = { name: 'teacher', path: resolve(teacherPath), test: evalOf('teacher'), cpu2t: latencyOf(teacherPath) };
/** Mean Dice (and 95% bootstrap interval, 2000 resamples, seed 0) over the images the teacher was evaluated on. */
function onTeacherImages(test) {
  if (!test || !teacher.test) return null;
  const ids = [...teacher.test.perImageDice.keys()];
  const v = ids.map((id) => test.perImageDice.get(id)).filter((x) => typeof x === 'number');
  if (v.length !== ids.length) return null;
  return { n_images: v.length, dice: v.reduce((a, b) => a + b, 0) / v.length, dice_ci95: bootstrapCI(v) };
}
const students = runs.map((spec) => {
  const eq = spec.indexOf('=');
  const run = eq > 0 ? spec.slice(0, eq) : spec;
  const d = readJson(join(eq > 0 ? spec.slice(eq + 1) : join(runsDir, run), 'distill.json'));
  const test = evalOf(run);
  const cpu2t = latencyOf(d.studentPath);
  // The latency ratio uses the teacher measured in the same bench call as the student when there is one
  // (the shared machine's load changes between calls), else the first teacher measurement.
  const sameCall = benchFiles.findIndex((b) => b.results.some((x) => resolve(x.model.path) === resolve(d.studentPath)) && b.results.some((x) => resolve(x.model.path) === resolve(teacherPath)));
  const teacherRef = sameCall >= 0 ? latencyOf(teacherPath, sameCall) : teacher.cpu2t;
  const studentRef = sameCall >= 0 ? latencyOf(d.studentPath, sameCall) : cpu2t;
  const latencyRatio = studentRef && teacherRef ? studentRef.medianMs / teacherRef.medianMs : null;
  const sameImages = onTeacherImages(test);
  const diceRatio = sameImages && teacher.test ? sameImages.dice / teacher.test.dice : null;
  return {
    name: run,
    student: d.student,
    width: d.width,
    depth: d.depth,
    kd: d.options.kd !== false,
    seed: d.options.seed ?? null,
    parameters: d.paramCount,
    macsPerImage: d.macs,
    trainImages: d.trainImages,
    valImages: d.valImages,
    steps: d.steps,
    epochs: d.history.length,
    trainSeconds: d.history.reduce((s, h) => s + h.seconds, 0),
    bestEpoch: d.bestEpoch,
    valDiceAtModelResolution: d.bestValDice,
    teacherValDiceAtModelResolution: d.teacherValDice,
    history: d.history,
    studentPath: d.studentPath,
    test,
    testOnTeacherImages: sameImages,
    cpu2t: studentRef,
    teacherCpu2tSameCall: sameCall >= 0 ? teacherRef : null,
    latencyVsTeacher: latencyRatio,
    diceVsTeacher: diceRatio,
    meetsTarget: latencyRatio !== null && diceRatio !== null ? latencyRatio <= 0.1 && diceRatio >= 0.97 : null,
  };
});

// Distillation vs masks-only at the same budget: pairs of runs that differ only in kd.
const pairs = [];
for (const s of students.filter((x) => x.kd)) {
  const base = students.find((x) => !x.kd && x.student === s.student && x.width === s.width && x.steps === s.steps && x.trainImages === s.trainImages && x.seed === s.seed);
  if (base && s.test && base.test) {
    // paired over the same test images (HD95: lower is better; images where it is undefined are left out)
    const ids = [...s.test.perImage.keys()].filter((id) => base.test.perImage.has(id));
    const pairedOf = (k, lowerIsBetter = false) =>
      pairedDifference(ids.map((id) => s.test.perImage.get(id)[k]), ids.map((id) => base.test.perImage.get(id)[k]), { lowerIsBetter });
    const dice = pairedOf('dice');
    pairs.push({
      student: s.student, seed: s.seed, kd: s.name, masksOnly: base.name, testDiceKd: s.test.dice, testDiceMasksOnly: base.test.dice, difference: s.test.dice - base.test.dice,
      kdCi95: s.test.dice_ci95, masksOnlyCi95: base.test.dice_ci95,
      paired: { n_images: dice.n, mean: dice.mean, ci95: dice.ci95, kdBetter: dice.better, kdWorse: dice.worse },
      pairedOther: Object.fromEntries(['iou', 'thresholded_jaccard', 'hd95', 'boundary_f'].map((k) => {
        const p = pairedOf(k, k === 'hd95');
        return [k, { n_images: p.n, mean: p.mean, ci95: p.ci95 }];
      })),
      note: 'same student, seed, images and steps',
    });
  }
}
for (const s of students) if (s.test) s.test = { ...s.test, perImageDice: undefined, perImage: undefined };

if (teacher.test) teacher.test = { ...teacher.test, perImageDice: undefined, perImage: undefined };
const out = { created_at: new Date().toISOString(), machine: bench?.machine ?? null, teacher, students, kdVsMasksOnly: pairs, command: `node reports/distill/collect.mjs ${process.argv.slice(2).join(' ')}` };
mkdirSync(here, { recursive: true });
const tmp = join(here, `.results.json.${process.pid}.tmp`);
writeFileSync(tmp, JSON.stringify(out, null, 2) + '\n');
renameSync(tmp, join(here, 'results.json'));
console.log(`wrote ${join(here, 'results.json')} (${students.length} students; teacher ${basename(teacherPath)})`);
