/**
 * Edge bundles: one folder (and a .tar.gz of it) that a device needs to run a model, and a check
 * that a bundle is intact and still gives the answer recorded when it was made.
 *
 * Layout of a bundle folder:
 *   model.onnx               the model (self-contained: external data is inlined)
 *   manifest.json            inputs/outputs, pre- and post-processing, profile, measurements, SHA-256 of every file
 *   MODEL_CARD.md            what it is for, how it was made, data terms, limits
 *   sample/input.<ext>       a sample image (bundled sample, with attribution in the card)
 *   sample/expected_mask.png its mask as recorded at packaging time
 *   sample/expected.json     a summary of the recorded probability map and the tolerance verify uses
 *   CHECKSUMS.sha256         `sha256sum -c` compatible list of every file, manifest.json included
 */
import { promises as fs, existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DataType } from '../onnx/ir.js';
import { cpuKind, type CpuKind } from '../util/cpu.js';
import { bundleReadme } from './readme.js';
import { readModel, encodeModel } from '../onnx/io.js';
import { readSegmentationMetadata, type SegmentationMetadata } from '../onnx/metadata.js';
import { dataTypeName } from '../onnx/tensor.js';
import type { Model } from '../onnx/ir.js';
import { LesionFuseError, describeError } from '../util/errors.js';
import type { KeyObject } from 'node:crypto';
import { sha256, sha256File } from '../util/hash.js';
import { bundleFile, checkBundleFiles, foreignBundleFiles as foreignBundleFilesOf, listFiles, readJson, WEB_BUNDLE_SCHEMA } from './integrity.js';
import type { WebManifest } from './web.js';
import { trackTemp, writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { packageRoot } from '../util/paths.js';
import { claimOutputFolder, swapFolderIn } from '../util/outdir.js';
import { resolveModelPath } from '../models.js';
import { VERSION } from '../version.js';
import { findModelCard, renderModelCard } from './card.js';
import { checkSegmentationIO } from '../runtime/segmenter.js';
import { createTarGz, readTarGz } from './tar.js';
import { loadPrivateKey, loadPublicKey, signManifest, SIGNATURE_FILE } from './signing.js';
import { segmentSample, type SampleOutput } from './sample.js';
import { writeMaskPng, readMask } from '../runtime/image.js';
import { loadProfile, parseProfile, profileAvailability, type Profile } from '../runtime/profiles.js';

export { BUNDLE_SCHEMA } from './integrity.js';
import { BUNDLE_SCHEMA } from './integrity.js';

/** Measurements to record in the manifest and the card (all optional). */
export interface BundleMetrics {
  dice?: number;
  diceCi95?: [number, number];
  /** What the Dice was measured on, e.g. 'test split of ../shared/data (306 images)'. */
  dataset?: string;
  latencyMedianMs?: number;
  latencyP90Ms?: number;
  /** The profile the latency was measured on (default: the bundle's profile). */
  profile?: string;
}

/** Options of {@link packageBundle}. */
export interface PackageOptions {
  /** The model: a path or `default:teacher` / `default:student`. */
  model: string;
  /** The profile the model was tuned for (a name such as 'cpu-2t'); recorded, and used to run the sample. */
  profile: string;
  /** The bundle folder to create. An existing bundle there is replaced only once the new one is complete. */
  out: string;
  /** Also write `<out>.tar.gz`. Default false. */
  tar?: boolean;
  metrics?: BundleMetrics;
  /** A sample image to bundle with its recorded output. Default: the first image of the package's samples/images. */
  sample?: string;
  /** A name for the manifest and the card. Default: the model's lesionfuse.model_name, else the file stem. */
  name?: string;
  /** How the model was made, one step per entry (goes into the card and the manifest). */
  provenance?: string[];
  /** The source model's card. Default: MODEL_CARD.md found beside the model; null for none. */
  modelCard?: string | null;
  /**
   * Replace `out` even when it holds files that are not a LesionFuse bundle. Default false: such a folder is
   * refused. A folder that holds the model or the sample is refused always.
   */
  force?: boolean;
  /** Sign the manifest with this Ed25519 private key (a PEM file from `lesionfuse keygen`). */
  sign?: string;
  /** The profile of the data the model was validated on (`lesionfuse audit` compares sites with it). Default: data_profile.json beside the model; null for none. */
  dataProfile?: string | null;
}

/** One input or output of the model as the manifest lists it. */
export interface TensorSpec {
  name: string;
  type: string;
  shape: (number | string | null)[] | null;
}

/** Summary of the recorded probability map of the sample, and the tolerance of the comparison. */
export interface ExpectedSample {
  image: string;
  width: number;
  height: number;
  foregroundPixels: number;
  /** SHA-256 of the 0/1 mask bytes (row-major, original size): equal means bit-identical output. */
  maskSha256: string;
  probability: { mean: number; min: number; max: number; grid: { rows: number; cols: number; values: number[] } };
  tolerance: { probabilityGridAbs: number; maskAgreement: number; why: string };
  /** The profile the recorded output was made with (the bundle's own, or cpu-1t when that could not run where it was packaged). */
  recordedWith?: string;
  /** The CPU the recorded output was made on: fp32 outputs are bit-identical only on the same kind. */
  cpu?: CpuKind;
}

/** manifest.json */
export interface BundleManifest {
  schema: typeof BUNDLE_SCHEMA;
  name: string;
  sdkVersion: string;
  createdAt: string;
  model: {
    file: string; sha256: string; sizeBytes: number; irVersion: number; opsets: { domain: string; version: number }[]; parameters: number;
    /** What the model file computes in: read from the graph (Q/DQ or integer ops: int8; float16 weights: fp16), not from the profile. */
    precision: ModelPrecision;
  };
  /** Where the model came from, by hash: the teacher it was distilled from, the model it was derived from, its data, the SDK. */
  lineage: {
    modelSha256: string;
    teacherSha256: string | null;
    parentSha256: string | null;
    trainingData: string | null;
    sdk: { version: string; libSha256: string };
  };
  /** The runtime the recorded sample output was made with (the bundle's package.json pins the same versions). */
  runtime: { node: string; packages: Record<string, string>; cpu: CpuKind };
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  preprocessing: {
    size: { height: number; width: number };
    resize: string;
    scale: string;
    mean: [number, number, number];
    std: [number, number, number];
    channelOrder: 'RGB' | 'BGR';
    layout: 'NCHW';
  };
  postprocessing: { output: 'logits' | 'probabilities'; activation: 'sigmoid' | 'none'; threshold: number; resize: string };
  /** The profile's name (e.g. cpu-2t). */
  profile: string;
  /** The profile as it was when packaged (provider, threads, optimization level...), for a device without LesionFuse's profiles. */
  profileDetails: Profile;
  measured: BundleMetrics | null;
  provenance: string[];
  sample: { input: string; mask: string; expected: string };
  /** SHA-256 of every file except manifest.json itself (CHECKSUMS.sha256 covers it). */
  files: Record<string, string>;
}

export type ModelPrecision = 'fp32' | 'fp16' | 'int8';

/** The precision of a model, from its graph: integer/QDQ ops mean int8, float16 initializers fp16, else fp32. */
export function modelPrecision(model: Model): ModelPrecision {
  const intOps = new Set(['QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'QLinearConv', 'QLinearMatMul', 'MatMulInteger', 'ConvInteger']);
  const walk = (g: Model['graph']): boolean =>
    g.nodes.some((n) => intOps.has(n.opType) || Object.values(n.attributes).some((a) => (a.type === 'graph' ? walk(a.value) : false)));
  if (walk(model.graph)) return 'int8';
  if (model.graph.initializers.some((i) => i.dataType === DataType.FLOAT16)) return 'fp16';
  return 'fp32';
}

/** The runtime files a bundle's runner needs, as modules of the compiled SDK (dist/src) with their imports. */
const RUNNER_ENTRIES = ['runtime/segmenter.js', 'runtime/image.js', 'package/integrity.js', 'package/signing.js', 'util/cpu.js', 'util/errors.js'];
/** npm packages the runner imports, pinned in the bundle's package.json to the versions the sample was recorded with. */
const RUNNER_PACKAGES = ['onnxruntime-node', 'sharp', 'zod'];

/** The compiled modules reachable from the runner's entries by relative imports (paths relative to dist/src). */
function runnerModules(distSrc: string): string[] {
  const seen = new Set<string>();
  const visit = (rel: string): void => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const text = readFileSync(join(distSrc, rel), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      visit(relative(distSrc, resolve(dirname(join(distSrc, rel)), m[1]!)).split(sep).join('/'));
    }
  };
  for (const e of RUNNER_ENTRIES) visit(e);
  return [...seen].sort();
}

function installedVersion(pkg: string): string {
  for (const base of [join(packageRoot(), 'node_modules'), join(dirname(packageRoot()))]) {
    const p = join(base, pkg, 'package.json');
    if (existsSync(p)) return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
  }
  throw new LesionFuseError(`cannot find the installed version of ${pkg} (needed to pin the bundle's runtime)`);
}

/** Write the runner (run.mjs, test.mjs, lib/, package.json, README.md) into the bundle folder being made. */
async function writeRunner(tmp: string, name: string): Promise<{ packages: Record<string, string>; libSha256: string }> {
  const distSrc = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const modules = runnerModules(distSrc);
  const libHash = createHash('sha256');
  for (const rel of modules) {
    const bytes = await fs.readFile(join(distSrc, rel));
    libHash.update(`${rel}\0`).update(bytes);
    await fs.mkdir(dirname(join(tmp, 'lib', rel)), { recursive: true });
    await fs.writeFile(join(tmp, 'lib', rel), bytes);
  }
  for (const f of ['run.mjs', 'test.mjs']) await fs.copyFile(join(packageRoot(), 'bundle-runner', f), join(tmp, f));
  const packages = Object.fromEntries(RUNNER_PACKAGES.map((p) => [p, installedVersion(p)]));
  const safe = name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+/, '').slice(0, 200) || 'model';
  await writeJsonAtomic(join(tmp, 'package.json'), {
    name: `lesionfuse-bundle-${safe}`,
    version: '1.0.0',
    private: true,
    type: 'module',
    description: `LesionFuse edge bundle ${name}: run with \`node run.mjs IMAGES --out DIR\`; \`npm test\` checks the sample.`,
    license: 'SEE MODEL_CARD.md',
    engines: { node: '>=20' },
    scripts: { test: 'node test.mjs', segment: 'node run.mjs' },
    dependencies: packages,
    // npm 11 runs no dependency install scripts unless allowed; say so explicitly: onnxruntime-node's would
    // download CUDA libraries, which a CPU device does not need and an offline one cannot fetch.
    allowScripts: Object.fromEntries(RUNNER_PACKAGES.map((p) => [p, false])),
  });
  return { packages, libSha256: libHash.digest('hex') };
}

/**
 * The pre- and post-processing a bundle's manifest states (node and web bundles alike): what the Segmenter does
 * with this model's metadata, in words and numbers a device-side implementation can follow.
 */
export function processingOf(
  meta: Pick<SegmentationMetadata, 'mean' | 'std' | 'channelOrder' | 'output' | 'threshold'>,
  size: { height: number; width: number },
): Pick<BundleManifest, 'preprocessing' | 'postprocessing'> {
  return {
    preprocessing: {
      size,
      resize: `to ${size.height} x ${size.width} (aspect ratio not kept) after EXIF orientation, bilinear (triangle filter widened when downscaling, half-pixel centres: Pillow's BILINEAR)`,
      scale: 'pixel / 255',
      mean: meta.mean,
      std: meta.std,
      channelOrder: meta.channelOrder,
      layout: 'NCHW',
    },
    postprocessing: {
      output: meta.output,
      activation: meta.output === 'logits' ? 'sigmoid' : 'none',
      threshold: meta.threshold,
      resize: 'probability map resized bilinearly (half-pixel centres) to the original image size, then lesion = probability > threshold',
    },
  };
}

/** What {@link packageBundle} made. */
export interface PackageResult {
  dir: string;
  tarball: string | null;
  manifest: BundleManifest;
}

// Grid of the probability summary: coarse enough to be small, fine enough that a wrong model shows.
const GRID = 16;
// Stated tolerance. Same machine and build: outputs are bit-identical. Another CPU or onnxruntime build
// may pick other kernels (e.g. INT8 with or without VNNI), which moves probabilities slightly and may flip
// pixels right at the threshold; a wrong or damaged model moves far more than this.
const TOLERANCE = { probabilityGridAbs: 0.01, maskAgreement: 0.99, why: 'other CPUs/builds may pick other kernels; a wrong model differs far more' };

function summarise(s: SampleOutput, image: string): ExpectedSample {
  const { width: w, height: h, probability: p, mask } = s;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let fg = 0;
  const cells = new Float64Array(GRID * GRID);
  const counts = new Float64Array(GRID * GRID);
  for (let y = 0; y < h; y++) {
    const gy = Math.min(GRID - 1, Math.floor((y * GRID) / h));
    for (let x = 0; x < w; x++) {
      const v = p[y * w + x]!;
      const gx = Math.min(GRID - 1, Math.floor((x * GRID) / w));
      cells[gy * GRID + gx] += v;
      counts[gy * GRID + gx]! += 1;
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
      if (mask[y * w + x]) fg++;
    }
  }
  const round = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    image,
    width: w,
    height: h,
    foregroundPixels: fg,
    maskSha256: sha256(mask),
    probability: {
      mean: round(sum / (w * h)),
      min: round(min),
      max: round(max),
      grid: { rows: GRID, cols: GRID, values: Array.from(cells, (c, i) => round(counts[i]! > 0 ? c / counts[i]! : 0)) },
    },
    tolerance: TOLERANCE,
  };
}

function tensorSpecs(model: Model, which: 'inputs' | 'outputs'): TensorSpec[] {
  const inits = new Set(model.graph.initializers.map((i) => i.name));
  return model.graph[which]
    .filter((v) => which === 'outputs' || !inits.has(v.name))
    .map((v) => ({ name: v.name, type: dataTypeName(v.dataType), shape: v.shape ? [...v.shape] : null }));
}

function inputSizeOf(meta: SegmentationMetadata, inputs: TensorSpec[], modelPath: string): { height: number; width: number } {
  if (meta.inputSize) return meta.inputSize;
  const s = inputs[0]?.shape;
  if (s && s.length === 4 && typeof s[2] === 'number' && typeof s[3] === 'number' && s[2] > 0 && s[3] > 0) return { height: s[2], width: s[3] };
  throw new LesionFuseError(`the model has no fixed input size (metadata lesionfuse.input_size or a static [N,3,H,W] input); fix it first with \`lesionfuse rewrite --input-size HxW\``, { subject: modelPath });
}

/** The default sample: the first bundled sample image (samples/images, sorted by name). */
export function defaultSampleImage(): string {
  const dir = join(packageRoot(), 'samples', 'images');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => /\.(jpe?g|png|bmp|tiff?|webp)$/i.test(f)).sort() : [];
  if (!files.length) throw new LesionFuseError('no bundled sample image to put in the bundle; give one with `sample` (--sample)', { subject: dir });
  return join(dir, files[0]!);
}

async function checksumsText(dir: string, files: string[]): Promise<string> {
  const lines: string[] = [];
  for (const f of files) lines.push(`${await sha256File(join(dir, f))}  ${f}`);
  return lines.join('\n') + '\n';
}

/** The files in `dir` that are not part of the bundle there (see integrity.ts foreignBundleFiles). */
export function foreignBundleFiles(dir: string): string[] | null {
  return foreignBundleFilesOf(dir, BUNDLE_SCHEMA);
}


/**
 * Make an edge bundle from a model: the folder `out` (and `<out>.tar.gz` when `tar`). The sample image is
 * segmented on the spot (with the bundle's profile) and its output recorded, so `verifyBundle` can later
 * prove the copied bundle still gives the same answer. The folder is assembled next to `out` and renamed
 * into place only when complete.
 */
export async function packageBundle(opts: PackageOptions): Promise<PackageResult> {
  const modelPath = resolveModelPath(opts.model);
  const model = await readModel(modelPath);
  const meta = readSegmentationMetadata(model.metadata);
  const inputs = tensorSpecs(model, 'inputs');
  const outputs = tensorSpecs(model, 'outputs');
  if (inputs.length !== 1) throw new LesionFuseError(`a bundle needs a model with one image input; found ${inputs.length}: ${inputs.map((i) => i.name).join(', ')}`, { subject: modelPath });
  if (outputs.length !== 1) throw new LesionFuseError(`a bundle needs a model with one segmentation output; found ${outputs.length}: ${outputs.map((o) => o.name).join(', ')}`, { subject: modelPath });
  // A model that is not a segmenter is refused here, naming the user's file (not the bundle's temporary copy).
  checkSegmentationIO(model, modelPath);
  const size = inputSizeOf(meta, inputs, modelPath);
  const samplePath = resolve(opts.sample ?? defaultSampleImage());
  const dest = resolve(opts.out);
  const createdAt = new Date().toISOString();
  const name = opts.name ?? meta.modelName ?? basename(modelPath).replace(/\.onnx$/i, '');
  const provenance = opts.provenance ?? [];
  const sourceCard = opts.modelCard === undefined ? findModelCard(modelPath) : opts.modelCard;
  const profile = loadProfile(opts.profile);
  // A bundle for a target this machine lacks (e.g. cuda) records its sample output from the CPU; verify on
  // the target compares within the stated tolerance.
  const avail = await profileAvailability(profile);
  const sampleProfile: Profile | string = avail.available ? profile : 'cpu-1t';

  // Never replace a folder the user owns, nor the folder the model or the sample come from.
  const claim = { foreign: foreignBundleFiles, force: opts.force, what: 'a bundle', inputs: [modelPath, samplePath] };
  claimOutputFolder(dest, claim);
  const signingKey = opts.sign ? loadPrivateKey(opts.sign) : null;
  await fs.mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const forgetTmp = trackTemp(tmp);
  try {
    await fs.mkdir(join(tmp, 'sample'), { recursive: true });
    // A model with external data is written self-contained, so the bundle is one model file.
    const hasExternal = model.graph.initializers.some((i) => i.external);
    if (hasExternal) {
      for (const i of model.graph.initializers) delete i.external;
      await writeFileAtomic(join(tmp, 'model.onnx'), encodeModel(model));
    } else {
      await fs.copyFile(modelPath, join(tmp, 'model.onnx'));
    }
    const dataProfile = opts.dataProfile === undefined ? join(dirname(modelPath), 'data_profile.json') : opts.dataProfile;
    if (dataProfile && existsSync(dataProfile)) await fs.copyFile(dataProfile, join(tmp, 'data_profile.json'));
    const modelSha = await sha256File(join(tmp, 'model.onnx'));
    const modelSize = (await fs.stat(join(tmp, 'model.onnx'))).size;

    const inputName = `sample/input${extname(samplePath).toLowerCase() || '.img'}`;
    await fs.copyFile(samplePath, join(tmp, inputName));
    // Bundled samples are public data with terms: their attribution travels with them.
    const attribution = join(dirname(dirname(samplePath)), 'ATTRIBUTION.md');
    if (existsSync(attribution)) await fs.copyFile(attribution, join(tmp, 'sample/ATTRIBUTION.md'));
    const out = await segmentSample(join(tmp, 'model.onnx'), join(tmp, inputName), sampleProfile);
    await writeMaskPng(join(tmp, 'sample/expected_mask.png'), { width: out.width, height: out.height, data: out.mask });
    await writeJsonAtomic(join(tmp, 'sample/expected.json'), { ...summarise(out, basename(samplePath)), recordedWith: typeof sampleProfile === 'string' ? sampleProfile : sampleProfile.name, cpu: cpuKind() });

    const parameters = model.graph.initializers.reduce((n, i) => n + i.dims.reduce((a, b) => a * b, 1), 0);
    const precision = modelPrecision(model);
    await writeFileAtomic(join(tmp, 'MODEL_CARD.md'), renderModelCard({
      precision,
      name, modelFile: 'model.onnx', sha256: modelSha, sizeBytes: modelSize, inputSize: size, threshold: meta.threshold,
      output: meta.output, profile: profile.name, metadata: model.metadata,
      provenance: [...provenance, `sample image: ${basename(samplePath)} (bundled sample of public data; see samples/ATTRIBUTION.md of LesionFuse)`],
      metrics: opts.metrics, sourceCard, sdkVersion: VERSION, createdAt,
    }));

    const runner = await writeRunner(tmp, name);
    await writeFileAtomic(join(tmp, 'README.md'), bundleReadme({ name, precision, profile: profile.name, packages: runner.packages, signed: Boolean(signingKey), expectedTolerance: TOLERANCE }));
    const files: Record<string, string> = {};
    for (const f of listFiles(tmp)) files[f] = await sha256File(join(tmp, f));
    const manifest: BundleManifest = {
      schema: BUNDLE_SCHEMA,
      name,
      sdkVersion: VERSION,
      createdAt,
      model: { file: 'model.onnx', sha256: modelSha, sizeBytes: modelSize, irVersion: model.irVersion, opsets: model.opsetImports.map((o) => ({ ...o })), parameters, precision },
      lineage: {
        modelSha256: modelSha,
        teacherSha256: model.metadata['lesionfuse.teacher_sha256'] ?? null,
        parentSha256: model.metadata['lesionfuse.parent_sha256'] ?? null,
        trainingData: model.metadata['lesionfuse.training_data'] ?? null,
        sdk: { version: VERSION, libSha256: runner.libSha256 },
      },
      runtime: { node: process.version, packages: runner.packages, cpu: cpuKind() },
      inputs,
      outputs,
      ...processingOf(meta, size),
      profile: profile.name,
      profileDetails: profile,
      measured: opts.metrics ? { ...opts.metrics, profile: opts.metrics.profile ?? profile.name } : null,
      provenance,
      sample: { input: inputName, mask: 'sample/expected_mask.png', expected: 'sample/expected.json' },
      files,
    };
    await writeJsonAtomic(join(tmp, 'manifest.json'), manifest);
    if (signingKey) await writeJsonAtomic(join(tmp, SIGNATURE_FILE), signManifest(await fs.readFile(join(tmp, 'manifest.json')), signingKey));
    await writeFileAtomic(join(tmp, 'CHECKSUMS.sha256'), await checksumsText(tmp, listFiles(tmp).filter((f) => f !== 'CHECKSUMS.sha256')));
    claimOutputFolder(dest, claim); // again: the folder may have changed while the bundle was made
    await swapFolderIn(tmp, dest);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    forgetTmp();
  }
  let tarball: string | null = null;
  if (opts.tar) {
    tarball = `${dest}.tar.gz`;
    await writeTarball(dest, tarball);
  }
  const manifest = JSON.parse(await fs.readFile(join(dest, 'manifest.json'), 'utf8')) as BundleManifest;
  return { dir: dest, tarball, manifest };
}

/** Write `dir` as a .tar.gz whose entries sit under `<basename(dir)>/`, atomically. */
export async function writeTarball(dir: string, tarball: string): Promise<void> {
  const root = basename(dir);
  const entries = [{ name: `${root}/`, data: new Uint8Array(0) }];
  const dirs = new Set<string>();
  for (const f of listFiles(dir)) {
    const parts = f.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = `${root}/${parts.slice(0, i).join('/')}/`;
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ name: d, data: new Uint8Array(0) });
      }
    }
    entries.push({ name: `${root}/${f}`, data: new Uint8Array(await fs.readFile(join(dir, f))) });
  }
  await writeFileAtomic(tarball, createTarGz(entries));
}

/** What {@link verifyBundle} checked. */
export interface VerifyResult {
  bundle: string;
  name: string;
  /** One line per check that passed. */
  checks: string[];
  sample: { maskAgreement: number; maxGridDiff: number; identical: boolean };
}

/** Options of {@link verifyBundle}. */
export interface VerifyOptions {
  /** Profile to run the sample with. Default: the one in the manifest. */
  profile?: string;
  /** The public key (a PEM file or a KeyObject) the bundle must be signed with; unsigned or otherwise signed bundles are refused. */
  pubkey?: string | KeyObject;
}

/**
 * Check a bundle end to end: every file against CHECKSUMS.sha256 and the manifest (a changed, missing or
 * extra file is refused by name), the model loads, the bundled sample gives the recorded output within
 * the tolerance stated in sample/expected.json. Accepts the folder or its .tar.gz (extracted to a temporary
 * folder). Throws LesionFuseError naming the offending file; returns what was checked.
 */
export async function verifyBundle(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const abs = resolve(path);
  let st;
  try {
    st = await fs.stat(abs);
  } catch {
    throw new LesionFuseError('no such bundle (folder or .tar.gz)', { subject: path });
  }
  if (st.isDirectory()) return verifyFolder(abs, abs, opts);
  const tmp = await fs.mkdtemp(join(tmpdir(), 'lesionfuse-verify-'));
  const forgetTmp = trackTemp(tmp);
  try {
    const entries = readTarGz(new Uint8Array(await fs.readFile(abs)), path);
    const roots = new Set(entries.map((e) => e.name.split('/')[0]!));
    if (roots.size !== 1) throw new LesionFuseError('a bundle tarball must hold exactly one top folder', { subject: path });
    // Each path once, and never both a file and a folder (a later entry would write through the earlier one).
    const files = new Set<string>();
    const folders = new Set<string>();
    for (const e of entries) {
      const n = e.name.replace(/\/+$/, '');
      if (files.has(n) || (!e.name.endsWith('/') && folders.has(n))) throw new LesionFuseError(`entry '${n}' appears twice or as both a file and a folder`, { subject: path });
      (e.name.endsWith('/') ? folders : files).add(n);
      const parts = n.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (files.has(parent)) throw new LesionFuseError(`entry '${n}' lies under '${parent}', which is a file in the archive`, { subject: path });
        folders.add(parent);
      }
    }
    for (const e of entries) {
      const target = join(tmp, e.name);
      if (!resolve(target).startsWith(tmp + sep)) throw new LesionFuseError(`entry '${e.name}' escapes the folder`, { subject: path });
      if (e.name.endsWith('/')) await fs.mkdir(target, { recursive: true });
      else {
        await fs.mkdir(dirname(target), { recursive: true });
        await fs.writeFile(target, e.data);
      }
    }
    return await verifyFolder(join(tmp, [...roots][0]!), `${path}:${[...roots][0]}`, opts);
  } finally {
    forgetTmp();
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

async function verifyFolder(dir: string, shown: string, opts: VerifyOptions): Promise<VerifyResult> {
  const name = (f: string) => `${shown}/${f}`;
  const pubkey = typeof opts.pubkey === 'string' ? loadPublicKey(opts.pubkey) : opts.pubkey;
  const { manifest, checks, modelFile } = await checkBundleFiles(dir, shown, pubkey ? { pubkey } : {});
  if ((manifest.schema as string) === WEB_BUNDLE_SCHEMA) return verifyWebSample(dir, shown, manifest as unknown as WebManifest, modelFile, checks);

  let model: Model;
  try {
    model = await readModel(modelFile);
  } catch (err) {
    throw new LesionFuseError(`model does not load: ${describeError(err)}`, { subject: name(manifest.model.file) });
  }
  const meta = readSegmentationMetadata(model.metadata);
  if (meta.threshold !== manifest.postprocessing.threshold || meta.channelOrder !== manifest.preprocessing.channelOrder) {
    throw new LesionFuseError('threshold or channel order differ from the model\'s own metadata', { subject: name('manifest.json') });
  }
  checks.push(`model loads (${model.graph.nodes.length} nodes, opset ${model.opsetImports.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')})`);

  const expected = await readJson<ExpectedSample>(bundleFile(dir, manifest.sample.expected, name, 'sample.expected'), name(manifest.sample.expected));
  // The bundle's own profile when it can run here; else the one-thread CPU profile (outputs of the CPU
  // provider do not depend on the thread count beyond rounding, which the tolerance covers).
  let profile: Profile | string = opts.profile ?? manifest.profile;
  let profileNote = '';
  if (!opts.profile) {
    let p: Profile | null = null;
    try {
      p = manifest.profileDetails ? parseProfile(manifest.profileDetails, name('manifest.json')) : loadProfile(manifest.profile);
    } catch {
      p = null;
    }
    const a = p ? await profileAvailability(p) : { available: false as const, reason: 'profile unknown here' };
    if (p && a.available) profile = p;
    else {
      profile = 'cpu-1t';
      profileNote = ` (bundle profile ${manifest.profile} cannot run here: ${a.available ? 'unknown' : a.reason}; used cpu-1t)`;
    }
  }
  const profileName = typeof profile === 'string' ? profile : profile.name;
  const out = await segmentSample(modelFile, bundleFile(dir, manifest.sample.input, name, 'sample.input'), profile);
  if (out.width !== expected.width || out.height !== expected.height) {
    throw new LesionFuseError(`sample output is ${out.width} x ${out.height}, recorded ${expected.width} x ${expected.height}`, { subject: name(manifest.sample.input) });
  }
  const recordedMask = await readMask(bundleFile(dir, manifest.sample.mask, name, 'sample.mask'));
  let agree = 0;
  for (let i = 0; i < out.mask.length; i++) if ((out.mask[i] ? 1 : 0) === recordedMask.data[i]) agree++;
  const agreement = agree / out.mask.length;
  const now = summarise(out, expected.image);
  let maxGridDiff = Math.abs(now.probability.mean - expected.probability.mean);
  now.probability.grid.values.forEach((v, i) => (maxGridDiff = Math.max(maxGridDiff, Math.abs(v - (expected.probability.grid.values[i] ?? NaN)))));
  if (!(maxGridDiff <= expected.tolerance.probabilityGridAbs) || !(agreement >= expected.tolerance.maskAgreement)) {
    throw new LesionFuseError(
      `the model's output on the bundled sample differs from the recorded one: mask agreement ${(agreement * 100).toFixed(3)}% ` +
      `(need >= ${(expected.tolerance.maskAgreement * 100).toFixed(1)}%), max probability difference ${maxGridDiff.toFixed(4)} (need <= ${expected.tolerance.probabilityGridAbs}) on profile ${profileName}${profileNote}`,
      { subject: name(manifest.model.file) },
    );
  }
  const identical = now.maskSha256 === expected.maskSha256;
  checks.push(`sample ${expected.image} on ${profileName}${profileNote}: mask agreement ${(agreement * 100).toFixed(3)}%${identical ? ' (bit-identical)' : ''}, max probability difference ${maxGridDiff.toExponential(2)} (tolerance ${expected.tolerance.probabilityGridAbs})`);
  return { bundle: shown, name: manifest.name, checks, sample: { maskAgreement: agreement, maxGridDiff, identical } };
}

/**
 * The sample check of a web bundle, in Node.js: the Segmenter (onnxruntime-node, CPU, one thread: what recorded
 * the sample) against the recorded mask, within the bundle's tolerance. The page itself is checked in a browser
 * by the bundle's `npm test`.
 */
async function verifyWebSample(dir: string, shown: string, manifest: WebManifest, modelFile: string, checks: string[]): Promise<VerifyResult> {
  const name = (f: string) => `${shown}/${f}`;
  const out = await segmentSample(modelFile, bundleFile(dir, manifest.sample.input, name, 'sample.input'), 'cpu-1t');
  const recorded = await readMask(bundleFile(dir, manifest.sample.mask, name, 'sample.mask'));
  if (out.width !== recorded.width || out.height !== recorded.height) {
    throw new LesionFuseError(`sample output is ${out.width} x ${out.height}, recorded ${recorded.width} x ${recorded.height}`, { subject: name(manifest.sample.input) });
  }
  let agree = 0;
  for (let i = 0; i < out.mask.length; i++) if ((out.mask[i] ? 1 : 0) === recorded.data[i]) agree++;
  const agreement = agree / out.mask.length;
  const need = manifest.tolerance?.maskAgreement ?? TOLERANCE.maskAgreement;
  if (!(agreement >= need)) {
    throw new LesionFuseError(`the model's output on the bundled sample differs from the recorded one: mask agreement ${(agreement * 100).toFixed(3)}% (need >= ${(need * 100).toFixed(1)}%) on cpu-1t`, { subject: name(manifest.model.file) });
  }
  checks.push(`sample on cpu-1t (onnxruntime-node): mask agreement ${(agreement * 100).toFixed(3)}%${agreement === 1 ? ' (bit-identical)' : ''}; the page itself is checked in a browser by the bundle's npm test`);
  return { bundle: shown, name: manifest.name, checks, sample: { maskAgreement: agreement, maxGridDiff: NaN, identical: agreement === 1 } };
}
