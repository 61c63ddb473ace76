/**
 * `runPipeline(config)`: distill -> rewrite -> quantize -> evaluate and benchmark every candidate on every
 * profile -> report -> package the chosen candidate. Every step is cached (see cache.ts); a failed step is
 * recorded with its reason and the other candidates are still measured; the result says what failed.
 */
import { promises as fs, existsSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../util/log.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { describeError } from '../util/errors.js';
import { loadProfile, profileAvailability, threadsFor } from '../runtime/profiles.js';
import { openDataset, type Split } from '../runtime/dataset.js';
import { calibrationImages } from '../quantize/quantize.js';
import { currentEnvironment, writeReport, paretoIds, type WrittenReport } from '../report/render.js';
import type { AccuracySummary, CandidateSummary, ProfileOutcome, ProfileSection, SpeedSummary, TradeoffReport } from '../report/types.js';
import { packageBundle, type PackageResult } from '../package/bundle.js';
import { findModelCard } from '../package/card.js';
import { listFiles } from '../package/integrity.js';
import { runStep, FileHasher, type StepOutcome } from './cache.js';
import { studentIds, type PipelineConfig } from './config.js';
import { benchmarkStage, distillStage, evaluateStage, modelFacts, overlaysStage, quantizeStage, rewriteStage } from './stages.js';
import { nonInferiorChoice, readPerImage, referenceId, type PerImageScores } from './select.js';

/** Options of {@link runPipeline}. */
export interface RunOptions {
  /** The command line, recorded in the report. Default: process.argv. */
  command?: string;
  /** Report title. Default: config.report.title or 'LesionFuse trade-off: <name>'. */
  title?: string;
}

/** One step of the run as the summary shows it. */
export interface StepRecord {
  id: string;
  status: 'ran' | 'reused' | 'failed' | 'skipped';
  seconds: number;
  reason?: string;
}

/** What a run did. */
export interface PipelineResult {
  steps: StepRecord[];
  /** Steps that failed (the run's exit status is non-zero when any did). */
  failed: StepRecord[];
  report: WrittenReport | null;
  reportJson: TradeoffReport | null;
  bundle: PackageResult | null;
  chosen: string | null;
  outDir: string;
}

interface Candidate {
  id: string;
  base: string;
  label: string;
  family: string;
  precision: CandidateSummary['precision'];
  derivation: string[];
  /** Model file, or null when the step that makes it failed (then `missingReason`). */
  path: string | null;
  missingReason?: string;
  /** The card of the model it derives from. */
  sourceCard: string | null;
}

function safe(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Run a validated config. Never throws for a failed step: see `failed` in the result. */
export async function runPipeline(cfg: PipelineConfig, opts: RunOptions = {}): Promise<PipelineResult> {
  const hasher = new FileHasher();
  const steps: StepRecord[] = [];
  const out = cfg.outDir;
  const stepsDir = join(out, 'steps');
  await fs.mkdir(stepsDir, { recursive: true });
  const t0 = performance.now();

  // Profiles first: a profile that cannot run here is reported as skipped, and the rest runs.
  const profiles: { name: string; ref: string; description?: string; skipped?: string; cpuThreads: number }[] = [];
  for (const ref of cfg.profiles) {
    const p = loadProfile(ref);
    const a = await profileAvailability(p);
    profiles.push({ name: p.name, ref, description: p.description, skipped: a.available ? undefined : a.reason, cpuThreads: p.executionProvider === 'cpu' ? threadsFor(p) : 0 });
    if (!a.available) log.info(`profile ${p.name}: skipped (${a.reason})`);
  }
  const runnable = profiles.filter((p) => !p.skipped);
  // Accuracy does not depend on the CPU profile (threads change rounding at most); evaluate once, with the
  // runnable CPU profile that has the most threads (fastest), else the first runnable one.
  const cpuProfiles = runnable.filter((p) => p.cpuThreads > 0).sort((a, b) => b.cpuThreads - a.cpuThreads);
  const evalProfile = cpuProfiles[0]?.ref ?? runnable[0]?.ref ?? 'cpu-all';

  let counter = 0;
  const record = (o: StepOutcome<unknown>): void => {
    counter++;
    const rec: StepRecord = { id: o.id, status: o.status, seconds: o.seconds };
    if (o.status === 'failed') rec.reason = o.reason;
    steps.push(rec);
    const what = o.status === 'failed' ? `FAILED: ${o.reason}` : o.status === 'reused' ? 'reused (same inputs, settings and SDK version)' : `done in ${o.seconds.toFixed(1)} s`;
    (o.status === 'failed' ? log.error : log.info)(`[${counter}] ${o.id}: ${what}`);
  };
  const skip = (id: string, reason: string): void => {
    counter++;
    steps.push({ id, status: 'skipped', seconds: 0, reason });
    log.info(`[${counter}] ${id}: skipped (${reason})`);
  };

  // The data files whose bytes a step depends on: a changed image or mask re-runs what used it.
  const evalDataFiles = await datasetFiles(cfg.dataset.path, cfg.dataset.split, cfg.dataset.sources, cfg.dataset.limit);
  const trainRoot = cfg.trainData?.path ?? cfg.dataset.path;
  // Quantization reads its calibration images (and validation images for the gate): their bytes count too.
  const quantDataFiles = cfg.quantize?.enabled ? await quantizationFiles(cfg) : [];
  const trainDataFiles = cfg.students.some((s) => !('model' in s)) ? [join(trainRoot, 'MANIFEST.csv'), join(trainRoot, 'splits', 'train.txt'), join(trainRoot, 'splits', 'val.txt')].filter((f) => existsSync(f)) : [];

  // 1. Base models: the teacher, given students, distilled students.
  const bases: { id: string; family: string; path: string | null; missing?: string; derivation: string[]; card: string | null }[] = [];
  if (cfg.teacher && cfg.teacherPath) {
    bases.push({ id: cfg.teacher.id, family: 'teacher', path: cfg.teacherPath, derivation: [`teacher ${cfg.teacher.model}`], card: findModelCard(cfg.teacherPath) });
  }
  const ids = studentIds(cfg.students);
  for (const [i, s] of cfg.students.entries()) {
    const id = ids[i]!;
    if ('model' in s) {
      bases.push({ id, family: 'student', path: s.model, derivation: [`student ${s.model}`], card: findModelCard(s.model) });
      continue;
    }
    const o = await runStep({ id: `distill/${id}`, dir: join(stepsDir, 'distill', safe(id)), inputs: [...(s.kd && cfg.teacherPath ? [cfg.teacherPath] : []), ...trainDataFiles], settings: { ...s, inputSize: cfg.inputSize, data: cfg.trainData?.path ?? cfg.dataset.path } }, hasher, (dir) => distillStage(cfg, s, dir));
    record(o);
    bases.push({
      id, family: `student ${s.name}`, path: o.status === 'failed' ? null : o.result.studentPath, missing: o.status === 'failed' ? `distill failed: ${o.reason}` : undefined,
      derivation: [o.status === 'failed' ? `distill ${s.name}` : o.result.summary], card: cfg.teacherPath ? findModelCard(cfg.teacherPath) : null,
    });
  }

  // 2. Variants: fp32 as given, rewritten, INT8 (from the rewritten model when there is one).
  const candidates: Candidate[] = [];
  for (const b of bases) {
    const mk = (suffix: string, precision: Candidate['precision'], derivation: string[], path: string | null, missingReason?: string): Candidate => ({
      id: `${b.id}-${suffix}`, base: b.id, label: `${b.id} ${suffix === 'fp32' ? 'fp32' : suffix === 'int8' ? 'INT8' : suffix}`, family: b.family, precision, derivation, path, missingReason, sourceCard: b.card,
    });
    candidates.push(mk('fp32', 'fp32', b.derivation, b.path, b.missing));
    let floatPath = b.path;
    let floatDerivation = b.derivation;
    let floatMissing = b.missing;
    if ((cfg.rewrite?.passes.length ?? 0) > 0) {
      const stepId = `rewrite/${b.id}`;
      if (!b.path) {
        skip(stepId, b.missing ?? 'no input model');
        candidates.push(mk('rewritten', 'fp32', b.derivation, null, b.missing));
      } else {
        const o = await runStep({ id: stepId, dir: join(stepsDir, 'rewrite', safe(b.id)), inputs: [b.path], settings: cfg.rewrite }, hasher, (dir) => rewriteStage(cfg, b.path!, dir));
        record(o);
        const c = mk('rewritten', 'fp32', [...b.derivation, o.status === 'failed' ? 'rewrite' : o.result.summary], o.status === 'failed' ? null : o.result.modelPath, o.status === 'failed' ? `rewrite failed: ${o.reason}` : undefined);
        candidates.push(c);
        if (c.path) {
          floatPath = c.path;
          floatDerivation = c.derivation;
          floatMissing = undefined;
        }
      }
    }
    if (cfg.quantize?.enabled) {
      const stepId = `quantize/${b.id}`;
      if (!floatPath) {
        skip(stepId, floatMissing ?? 'no input model');
        candidates.push(mk('int8', 'int8', floatDerivation, null, floatMissing));
      } else {
        const input = floatPath;
        const o = await runStep({ id: stepId, dir: join(stepsDir, 'quantize', safe(b.id)), inputs: [input, ...quantDataFiles], settings: cfg.quantize }, hasher, (dir) => quantizeStage(cfg, input, dir));
        record(o);
        candidates.push(mk('int8', 'int8', [...floatDerivation, o.status === 'failed' ? 'quantize' : o.result.summary], o.status === 'failed' ? null : o.result.modelPath, o.status === 'failed' ? `quantize failed: ${o.reason}` : undefined));
      }
    }
  }

  // 3. Evaluate, overlays and benchmark every candidate that exists.
  const evalSettings = { dataset: cfg.dataset, profile: evalProfile };
  const accuracy = new Map<string, AccuracySummary>();
  const accuracyError = new Map<string, string>();
  const evalDirs = new Map<string, string>();
  const overlays = new Map<string, { image: string; file: string; abs: string }[]>();
  const outcomes = new Map<string, Record<string, ProfileOutcome>>(profiles.map((p) => [p.name, {}]));
  for (const c of candidates) {
    if (!c.path) {
      accuracyError.set(c.id, c.missingReason ?? 'model not made');
      for (const p of profiles) outcomes.get(p.name)![c.id] = { status: 'failed', reason: c.missingReason ?? 'model not made' };
      continue;
    }
    const model = c.path;
    const ev = await runStep({ id: `evaluate/${c.id}`, dir: join(stepsDir, 'evaluate', safe(c.id)), inputs: [model, ...evalDataFiles], settings: evalSettings }, hasher, (dir) => evaluateStage(cfg, model, evalProfile, dir));
    record(ev);
    if (ev.status === 'failed') accuracyError.set(c.id, `evaluation failed: ${ev.reason}`);
    else {
      accuracy.set(c.id, ev.result);
      evalDirs.set(c.id, ev.dir);
    }
    if (cfg.report.overlays > 0) {
      const ov = await runStep({ id: `overlays/${c.id}`, dir: join(stepsDir, 'overlays', safe(c.id)), inputs: [model, ...evalDataFiles.slice(0, 2 * cfg.report.overlays)], settings: { ...evalSettings, n: cfg.report.overlays } }, hasher, (dir) => overlaysStage(cfg, model, evalProfile, cfg.report.overlays, dir));
      record(ov);
      if (ov.status !== 'failed') overlays.set(c.id, ov.result.map((o) => ({ ...o, abs: join(ov.dir, o.file) })));
    }
  }

  // 3b. Speed: one step per profile benchmarks every candidate that has a model, interleaved in one run, so a
  // ranking is never decided by load drift between one candidate's turn and the next.
  const measurable = candidates.filter((c) => c.path);
  for (const p of profiles) {
    if (p.skipped) {
      for (const c of measurable) outcomes.get(p.name)![c.id] = { status: 'skipped', reason: p.skipped };
      continue;
    }
    if (!measurable.length) continue;
    const env = currentEnvironment();
    const models = measurable.map((c) => c.path!);
    const bs = await runStep(
      { id: `benchmark/${p.name}`, dir: join(stepsDir, 'benchmark', safe(p.name)), inputs: models, settings: { benchmark: cfg.benchmark, profile: p.ref, cpu: env.cpu, cores: env.cores, candidates: measurable.map((c) => c.id) } },
      hasher,
      (dir) => benchmarkStage(cfg, models, p.ref, dir),
    );
    record(bs);
    measurable.forEach((c, k) => {
      const r = bs.status === 'failed' ? null : bs.result[k];
      outcomes.get(p.name)![c.id] = bs.status === 'failed' ? { status: 'failed', reason: bs.reason } : r ? { status: 'measured', speed: r } : { status: 'failed', reason: 'no benchmark result' };
    });
  }

  // 4. The report.
  const reportDir = join(out, 'report');
  const summaries: CandidateSummary[] = [];
  for (const c of candidates) {
    const facts = c.path && existsSync(c.path) ? await modelFacts(c.path) : { fileSizeBytes: null, parameters: null, multiplyAdds: null };
    const ovs: CandidateSummary['overlays'] = [];
    for (const o of overlays.get(c.id) ?? []) {
      const rel = `overlays/${safe(c.id)}/${o.file}`;
      await fs.mkdir(join(reportDir, 'overlays', safe(c.id)), { recursive: true });
      await fs.copyFile(o.abs, join(reportDir, rel));
      ovs.push({ image: o.image, file: rel });
    }
    summaries.push({
      id: c.id, label: c.label, family: c.family, precision: c.precision, derivation: c.derivation, modelPath: c.path ?? `(not made: ${c.missingReason ?? 'unknown'})`,
      fileSizeBytes: facts.fileSizeBytes, parameters: facts.parameters, multiplyAdds: facts.multiplyAdds,
      accuracy: accuracy.get(c.id) ?? null, ...(accuracyError.has(c.id) ? { accuracyError: accuracyError.get(c.id) } : {}), overlays: ovs,
    });
  }
  const sections: ProfileSection[] = profiles.map((p) => ({
    profile: p.name, description: p.description, ...(p.skipped ? { skippedReason: p.skipped } : {}), outcomes: outcomes.get(p.name)!, pareto: [],
  }));
  const notes = [...cfg.notes];
  if (cfg.benchmark.runs < 30) notes.push(`Latency is the median of ${cfg.benchmark.runs} runs after ${cfg.benchmark.warmup} warm-up runs: fewer than the 30 a real benchmark uses (docs/benchmarks.md), so treat it as a hint.`);
  notes.push('On each profile every candidate was timed in one interleaved run (the candidates in turn, the first rotating each round), so load changes during the run hit all of them alike; the p10-p90 column shows each one\'s spread. Absolute times depend on the machine and its load: compare within this report, not with other reports.');

  // 5. Choose the candidate to package.
  const perImage = new Map<string, PerImageScores[]>();
  for (const [id, dir] of evalDirs) perImage.set(id, await readPerImage(dir));
  const selection = cfg.select.rule === 'non-inferior'
    ? nonInferiorChoice(cfg, summaries, sections, runnable.map((p) => p.name), perImage)
    : { ...choose(cfg, summaries, sections, runnable.map((p) => p.name)), packaged: undefined };
  const packagedId = selection.packaged ?? selection.chosen;
  if (cfg.select.rule === 'non-inferior') {
    notes.push(`Candidates are compared with ${referenceId(cfg, summaries) ?? 'the reference'} image by image: a candidate is accepted only when the upper bound of the 95% interval of its Dice loss is within ${cfg.select.margin}, overall and in the worst group with at least ${cfg.select.minGroupN} images.`);
  }
  const report: TradeoffReport = {
    schema: 'lesionfuse.tradeoff-report/1',
    title: opts.title ?? cfg.report.title ?? `LesionFuse trade-off: ${cfg.name}`,
    createdAt: new Date().toISOString(),
    command: opts.command ?? process.argv.slice(1).join(' '),
    environment: currentEnvironment(),
    candidates: summaries,
    profiles: sections,
    selection: { rule: selection.rule, chosen: selection.chosen, reason: selection.reason, profile: selection.profile, reference: cfg.select.rule === 'non-inferior' ? referenceId(cfg, summaries) : null, packaged: packagedId },
    failures: [],
    notes,
  };

  // 6. Package it.
  let bundle: PackageResult | null = null;
  if (cfg.package.enabled) {
    const chosen = candidates.find((c) => c.id === packagedId);
    if (!chosen || !chosen.path) {
      skip('package', packagedId ? `candidate ${packagedId} has no model` : `no candidate chosen: ${selection.reason}`);
    } else {
      const profile = cfg.package.profile ?? selection.profile ?? runnable[0]?.name ?? 'cpu-2t';
      const acc = accuracy.get(chosen.id);
      const o = outcomes.get(profile)?.[chosen.id];
      const metrics = {
        ...(acc ? { dice: acc.dice, diceCi95: acc.diceCi95, dataset: acc.dataset } : {}),
        ...(o?.status === 'measured' ? { latencyMedianMs: o.speed.latencyMedianMs, latencyP90Ms: o.speed.latencyP90Ms, profile } : {}),
      };
      const model = chosen.path;
      const bundleDir = join(out, 'bundle', safe(chosen.id));
      const pkDir = join(stepsDir, 'package', safe(chosen.id));
      // The bundle lives outside the step folder (where users look for it): a previous package step is only
      // valid while that bundle is still there.
      // valid while that bundle is still there, byte for byte (every file re-hashed against the step's record).
      if (!(await bundleUnchanged(join(pkDir, 'bundle.json'), bundleDir, cfg.package.tar ? `${bundleDir}.tar.gz` : null, hasher))) {
        await fs.rm(join(pkDir, 'step.json'), { force: true });
      }
      const pk = await runStep(
        { id: `package/${chosen.id}`, dir: pkDir, inputs: [model, ...(cfg.package.sample ? [cfg.package.sample] : [])], settings: { profile, metrics, tar: cfg.package.tar, provenance: chosen.derivation, bundleDir } },
        hasher,
        async (dir) => {
          const r = await packageBundle({ model, profile, out: bundleDir, tar: cfg.package.tar, metrics, provenance: chosen.derivation, modelCard: chosen.sourceCard, sample: cfg.package.sample, name: `${cfg.name}-${chosen.id}` });
          // The step's own record of what it made (the bundle lives outside the step folder, where users look for it).
          await writeJsonAtomic(join(dir, 'bundle.json'), { dir: r.dir, tarball: r.tarball, modelSha256: r.manifest.model.sha256, files: await hashFolder(r.dir, hasher), tarballSha256: r.tarball ? await hasher.hash(r.tarball) : null });
          return { files: ['bundle.json'], result: { dir: r.dir, tarball: r.tarball } };
        },
      );
      record(pk);
      if (pk.status !== 'failed') {
        const manifest = JSON.parse(await fs.readFile(join(pk.result.dir, 'manifest.json'), 'utf8'));
        bundle = { dir: pk.result.dir, tarball: pk.result.tarball, manifest };
        report.notes.push(`Bundle of ${chosen.id}: ${pk.result.dir}${pk.result.tarball ? ` (and ${pk.result.tarball})` : ''}; check it with \`lesionfuse package verify ${pk.result.tarball ?? pk.result.dir}\`.`);
      }
    }
  }
  report.failures = steps.filter((s) => s.status === 'failed').map((s) => ({ step: s.id, reason: s.reason ?? 'unknown' }));
  let written: WrittenReport | null = null;
  try {
    written = await writeReport(report, reportDir);
    steps.push({ id: 'report', status: 'ran', seconds: 0 });
  } catch (err) {
    steps.push({ id: 'report', status: 'failed', seconds: 0, reason: describeError(err) });
    log.error(`report: FAILED: ${describeError(err)}`);
  }
  const failed = steps.filter((s) => s.status === 'failed');
  log.info(`pipeline ${cfg.name}: ${steps.filter((s) => s.status === 'ran').length} steps ran, ${steps.filter((s) => s.status === 'reused').length} reused, ` +
    `${steps.filter((s) => s.status === 'skipped').length} skipped, ${failed.length} failed, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { steps, failed, report: written, reportJson: report, bundle, chosen: packagedId, outDir: out };
}

/** The image and mask files an evaluation reads (for the cache key); [] when the dataset cannot be opened (the step then fails with the reason). */
async function datasetFiles(path: string, split: string | undefined, sources: string[] | undefined, limit: number | undefined): Promise<string[]> {
  try {
    const ds = await openDataset(path, { split: split as Split | undefined, sources });
    const items = limit ? ds.items.slice(0, limit) : ds.items;
    return items.flatMap((i) => [i.imagePath, i.maskPath]);
  } catch {
    return [];
  }
}

/** Calibration images (as the quantizer picks them) and validation pairs; [] when unreadable (the step then fails with the reason). */
async function quantizationFiles(cfg: PipelineConfig): Promise<string[]> {
  const q = cfg.quantize!;
  const files: string[] = [];
  try {
    files.push(...(await calibrationImages(q.calibration.path, q.calibration.limit ?? 64)));
  } catch {
    // The quantize step itself reports why.
  }
  if (q.validation) files.push(...(await datasetFiles(q.validation.path, 'val', q.validation.sources, q.validation.limit)));
  return files;
}

/** The selection rule: which candidate to package, and why (in words for the report). */
export function choose(
  cfg: Pick<PipelineConfig, 'select'>,
  candidates: readonly CandidateSummary[],
  sections: readonly ProfileSection[],
  runnableProfiles: readonly string[],
): { rule: string; chosen: string | null; reason: string; profile: string | null } {
  const s = cfg.select;
  if (s.rule === 'named') {
    const c = candidates.find((x) => x.id === s.candidate);
    const made = c && !c.modelPath.startsWith('(not made');
    return { rule: `named (${s.candidate})`, chosen: made ? c.id : null, reason: made ? 'named in the config' : `${s.candidate} was not made`, profile: s.profile ?? runnableProfiles[0] ?? null };
  }
  if (s.rule === 'best-dice') {
    const withAcc = candidates.filter((c) => c.accuracy);
    if (!withAcc.length) return { rule: 'best-dice', chosen: null, reason: 'no candidate has a Dice', profile: s.profile ?? runnableProfiles[0] ?? null };
    const best = withAcc.reduce((a, b) => (b.accuracy!.dice > a.accuracy!.dice ? b : a));
    return { rule: 'best-dice', chosen: best.id, reason: `highest Dice (${best.accuracy!.dice.toFixed(4)})`, profile: s.profile ?? runnableProfiles[0] ?? null };
  }
  let profile = s.profile ?? runnableProfiles[0] ?? null;
  let fallback = '';
  if (profile && !runnableProfiles.includes(profile)) {
    fallback = ` (profile ${profile} cannot run here; used ${runnableProfiles[0] ?? 'none'} instead)`;
    profile = runnableProfiles[0] ?? null;
  }
  const rule = `fastest-within: the fastest candidate on ${profile ?? '(no profile)'} whose Dice is within ${s.maxDiceDrop} of the best`;
  const section = sections.find((x) => x.profile === profile);
  if (!profile || !section) return { rule, chosen: null, reason: `no profile can run here${fallback}`, profile };
  const measured = candidates.filter((c) => c.accuracy && section.outcomes[c.id]?.status === 'measured');
  if (!measured.length) return { rule, chosen: null, reason: `no candidate has both a Dice and a latency on ${profile}${fallback}`, profile };
  const lat = (c: CandidateSummary) => (section.outcomes[c.id] as { speed: SpeedSummary }).speed.latencyMedianMs;
  const best = measured.reduce((a, b) => (b.accuracy!.dice > a.accuracy!.dice ? b : a));
  const eligible = measured.filter((c) => c.accuracy!.dice >= best.accuracy!.dice - s.maxDiceDrop);
  const chosen = eligible.reduce((a, b) => (lat(b) < lat(a) ? b : a));
  const onFront = paretoIds(candidates, section.outcomes).includes(chosen.id);
  return {
    rule,
    chosen: chosen.id,
    reason: `${chosen.id}: ${lat(chosen).toFixed(2)} ms median on ${profile}, Dice ${chosen.accuracy!.dice.toFixed(4)}; the best Dice is ${best.id}'s ${best.accuracy!.dice.toFixed(4)}; ` +
      `${eligible.length} of ${measured.length} measured candidates were within ${s.maxDiceDrop}${onFront ? '; it is on the Pareto front' : ''}${fallback}.`,
    profile,
  };
}

/** SHA-256 of every file of the bundle folder `dir`, by '/'-separated relative path. */
async function hashFolder(dir: string, hasher: FileHasher): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of listFiles(dir)) out[f] = await hasher.hash(join(dir, f));
  return out;
}

/**
 * True when the bundle a previous package step recorded in `record` is still there with the same files and
 * bytes (and the tarball too, when one is wanted): only then may the step be reused.
 */
async function bundleUnchanged(record: string, bundleDir: string, tarball: string | null, hasher: FileHasher): Promise<boolean> {
  try {
    const r = JSON.parse(await fs.readFile(record, 'utf8')) as { files?: Record<string, string>; tarballSha256?: string | null };
    if (!r.files || !existsSync(bundleDir)) return false;
    const now = await hashFolder(bundleDir, hasher);
    const keys = Object.keys(r.files);
    if (keys.length !== Object.keys(now).length || keys.some((k) => now[k] !== r.files![k])) return false;
    if (tarball) return existsSync(tarball) && r.tarballSha256 === (await hasher.hash(tarball));
    return true;
  } catch {
    return false;
  }
}
