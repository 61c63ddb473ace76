/**
 * Target profiles: what a deployment target runs (execution provider, threads, graph optimization level,
 * batch, precision). Profiles are data (JSON in `profiles/` at the package root, or any file a user
 * writes), validated with one zod schema so a typo is refused with the field and the allowed values.
 */
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve, extname } from 'node:path';
import { z } from 'zod';
import * as ort from '../util/ort.js';
import type { InferenceSession } from '../util/ort.js';
import { LesionFuseError, describeError } from '../util/errors.js';
import { encodeModel } from '../onnx/io.js';
import { DataType } from '../onnx/ir.js';
import { packageRoot } from '../util/paths.js';

export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'wasm', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
export const OPTIMIZATION_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type GraphOptimizationLevel = (typeof OPTIMIZATION_LEVELS)[number];

/** The schema of a profile file. Unknown keys are refused (they are usually typos). */
export const ProfileSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore'),
    executionProvider: z.enum(EXECUTION_PROVIDERS),
    /**
     * Where the model runs: 'node' (onnxruntime in this Node.js process; the default) or 'browser' (a web
     * bundle's page, measured in headless Chromium by bench/browser-wasm.ts; not runnable from Node.js).
     */
    host: z.enum(['node', 'browser']).optional(),
    /** Intra-op threads, or 'all' for one per available core. */
    threads: z.union([z.number().int().min(1).max(1024), z.literal('all')]),
    graphOptimizationLevel: z.enum(OPTIMIZATION_LEVELS),
    /** Batch size the target runs (benchmarks measure latency at 1 and throughput at their own batch). */
    batch: z.number().int().min(1).max(4096),
    /** The precision the target is meant for (a label for reports: the model file decides what runs). */
    precision: z.enum(['fp32', 'fp16', 'int8']).optional(),
    /** Fixed model input size for models with dynamic H/W. */
    inputSize: z.object({ height: z.number().int().min(1), width: z.number().int().min(1) }).strict().optional(),
    description: z.string(),
  })
  .strict();

export type Profile = z.infer<typeof ProfileSchema>;

/** Folder of the profiles shipped with the package. */
export function profilesDir(): string {
  return join(packageRoot(), 'profiles');
}

/** Validate a parsed profile object; `source` names the file in errors. */
export function parseProfile(value: unknown, source = 'profile'): Profile {
  const r = ProfileSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new LesionFuseError(`invalid profile: ${issues}`, { subject: source });
  }
  return r.data;
}

function readProfileFile(path: string): Profile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new LesionFuseError(`cannot read profile: ${(e as Error).message}`, { subject: path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LesionFuseError(`profile is not valid JSON (${(e as Error).message})`, { subject: path });
  }
  return parseProfile(json, path);
}

/** Every shipped profile, sorted by name. */
export function listProfiles(): Profile[] {
  const dir = profilesDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readProfileFile(join(dir, f)));
}

/**
 * A shipped profile by name (`cpu-2t`), or a profile file by path (anything ending in `.json` or that
 * exists as a file). Unknown names are refused with the list of shipped ones.
 */
export function loadProfile(nameOrPath: string | Profile): Profile {
  if (typeof nameOrPath !== 'string') return parseProfile(nameOrPath);
  const asPath = resolve(nameOrPath);
  if (extname(nameOrPath) === '.json' || (existsSync(asPath) && statSync(asPath).isFile())) {
    if (!existsSync(asPath)) throw new LesionFuseError('no such profile file', { subject: nameOrPath });
    return readProfileFile(asPath);
  }
  const file = join(profilesDir(), `${nameOrPath}.json`);
  if (!/^[A-Za-z0-9._-]+$/.test(nameOrPath) || !existsSync(file)) {
    const names = listProfiles().map((p) => p.name);
    throw new LesionFuseError(`unknown profile; shipped profiles: ${names.join(', ')} (or give a path to a .json profile)`, { subject: nameOrPath });
  }
  const p = readProfileFile(file);
  if (p.name !== nameOrPath) throw new LesionFuseError(`profile file ${file} names itself '${p.name}'`, { subject: nameOrPath });
  return p;
}

/** The number of intra-op threads a profile asks for on this machine. */
export function threadsFor(p: Profile): number {
  return p.threads === 'all' ? availableParallelism() : p.threads;
}

const EP_NAMES: Record<ExecutionProvider, string> = {
  cpu: 'cpu',
  cuda: 'cuda',
  tensorrt: 'tensorrt',
  wasm: 'wasm',
  webgpu: 'webgpu',
};

/**
 * onnxruntime session options for a profile: its provider, intra-op threads (inter-op 1, sequential
 * execution, so thread counts mean what they say), graph optimization level.
 */
export function sessionOptionsFor(p: Profile, overrides: Partial<InferenceSession.SessionOptions> = {}): InferenceSession.SessionOptions {
  return {
    executionProviders: [EP_NAMES[p.executionProvider]],
    intraOpNumThreads: threadsFor(p),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: p.graphOptimizationLevel,
    ...overrides,
  };
}

export type Availability = { available: true } | { available: false; reason: string };

const availabilityCache = new Map<ExecutionProvider, Promise<Availability>>();

/** A one-node float model (Identity) that a provider must be able to run to count as available. */
function probeModelBytes(): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImports: [{ domain: '', version: 17 }],
    producerName: 'lesionfuse',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    graph: {
      name: 'probe',
      nodes: [{ name: 'probe', opType: 'Identity', domain: '', inputs: ['x'], outputs: ['y'], attributes: {} }],
      inputs: [{ name: 'x', dataType: DataType.FLOAT, shape: [1] }],
      outputs: [{ name: 'y', dataType: DataType.FLOAT, shape: [1] }],
      initializers: [],
      valueInfo: [],
    },
    metadata: {},
  });
}

/** Where onnxruntime-node keeps its native libraries (the provider libraries would sit beside them). */
export function ortNativeDir(): string | null {
  try {
    const req = createRequire(import.meta.url);
    const pkg = dirname(req.resolve('onnxruntime-node/package.json'));
    const binDir = join(pkg, 'bin');
    const napi = existsSync(binDir) ? readdirSync(binDir).filter((d) => d.startsWith('napi-v')) : [];
    for (const n of napi) {
      const d = join(binDir, n, process.platform, process.arch);
      if (existsSync(d)) return d;
    }
    return null;
  } catch {
    return null;
  }
}

async function checkProvider(ep: ExecutionProvider): Promise<Availability> {
  const version = ort.env.versions?.common ?? 'unknown';
  if (ep === 'cpu') return { available: true };
  if (ep === 'wasm') {
    try {
      const web = await import('onnxruntime-web');
      web.env.wasm.numThreads = 1;
      const s = await web.InferenceSession.create(probeModelBytes(), { executionProviders: ['wasm'] });
      await s.release();
      return { available: true };
    } catch (e) {
      return { available: false, reason: `onnxruntime-web could not be loaded or run a probe model in Node.js (${describeError(e)})` };
    }
  }
  const supported = ort.listSupportedBackends();
  const entry = supported.find((b) => b.name === ep);
  const listed = supported.map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`).join(', ');
  if (!entry) return { available: false, reason: `onnxruntime-node ${version} on ${process.platform}-${process.arch} does not support '${ep}' (listSupportedBackends: ${listed})` };
  if (!entry.bundled) {
    const dir = ortNativeDir();
    const lib = process.platform === 'win32' ? `onnxruntime_providers_${ep}.dll` : `libonnxruntime_providers_${ep}.so`;
    if (!dir || !existsSync(join(dir, lib))) {
      return {
        available: false,
        reason:
          `onnxruntime-node ${version} lists '${ep}' as not bundled (listSupportedBackends: ${listed}) and ${lib} is not in ${dir ?? 'its bin folder'} ` +
          `(installed with onnxruntime-node-install=skip: only the CPU provider); install onnxruntime-node with its ${ep === 'tensorrt' ? 'CUDA/TensorRT' : 'CUDA'} libraries to use this profile`,
      };
    }
  }
  try {
    const s = await ort.InferenceSession.create(probeModelBytes(), { executionProviders: [ep] });
    await s.run({ x: new ort.Tensor('float32', new Float32Array([1]), [1]) });
    await s.release();
    return { available: true };
  } catch (e) {
    return { available: false, reason: `onnxruntime-node could not start the '${ep}' provider on a probe model: ${describeError(e)}` };
  }
}

/**
 * Whether a profile can run here, and if not, why (what was checked). CPU always can; CUDA and
 * TensorRT need their provider libraries beside onnxruntime-node (checked on disk, then with a probe
 * model); wasm needs onnxruntime-web to load in Node.js; WebGPU needs an adapter. Cached per provider.
 */
export function profileAvailability(p: Profile): Promise<Availability> {
  if (p.host === 'browser') {
    return Promise.resolve({
      available: false,
      reason: `profile ${p.name} runs inside a browser page (a web bundle: lesionfuse package MODEL --target web), not in Node.js; measure it with \`node dist/bench/browser-wasm.js\` (headless Chromium)`,
    });
  }
  let r = availabilityCache.get(p.executionProvider);
  if (!r) {
    r = checkProvider(p.executionProvider);
    availabilityCache.set(p.executionProvider, r);
  }
  return r;
}
