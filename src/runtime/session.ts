/**
 * Inference sessions for a profile: onnxruntime-node for cpu/cuda/tensorrt/webgpu, onnxruntime-web for
 * wasm. A profile whose provider is not available here is refused with the reason (benchmarks report it
 * as skipped); a session never silently runs somewhere else: after the first run, the nodes' providers
 * are read from onnxruntime's own profiler output and a GPU profile whose nodes ran on the CPU is marked
 * as having fallen back.
 */
import { promises as fs, readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from '../util/ort.js';
import { LesionFuseError, describeError } from '../util/errors.js';
import { loadProfile, profileAvailability, sessionOptionsFor, threadsFor, type Profile } from './profiles.js';

export type OrtSession = ort.InferenceSession;
export type OrtTensor = ort.Tensor;
export type Backend = 'onnxruntime-node' | 'onnxruntime-web';

/** onnxruntime's name for the provider that should run the nodes of a profile. */
const EXPECTED_PROVIDER: Record<Profile['executionProvider'], string> = {
  cpu: 'CPUExecutionProvider',
  cuda: 'CUDAExecutionProvider',
  tensorrt: 'TensorrtExecutionProvider',
  webgpu: 'WebGpuExecutionProvider',
  wasm: 'wasm',
};

/** How many nodes each provider ran in the first run, as onnxruntime's profiler recorded it. */
export interface ProviderCheck {
  /** e.g. { CPUExecutionProvider: 12 }. Empty when the backend has no profiler (onnxruntime-web). */
  nodesByProvider: Record<string, number>;
  /** What the profile asked for. */
  expected: string;
  /** True when a non-CPU profile had some or all nodes run by the CPU provider. */
  fellBackToCpu: boolean;
  /** One line for reports, e.g. 'all 12 nodes on CUDAExecutionProvider' or '3 of 12 nodes fell back to CPU'. */
  summary: string;
}

export interface OpenSessionOptions {
  /** Record which provider runs the nodes during the first run (default true for onnxruntime-node). */
  verifyProvider?: boolean;
  /** Extra onnxruntime session options (override the profile's). */
  sessionOptions?: Partial<ort.InferenceSession.SessionOptions>;
}

/** A session bound to its profile, with the check of where its nodes really run. */
export class RuntimeSession {
  private firstRunDone = false;
  private check: ProviderCheck | null = null;
  /** The model file (or 'model bytes'), named in run-time errors. */
  private subject = 'model bytes';

  private constructor(
    readonly session: OrtSession,
    readonly profile: Profile,
    readonly backend: Backend,
    private readonly tensorCtor: typeof ort.Tensor,
    private readonly profileDir: string | null,
  ) {}

  /** Create a session for a model file or bytes under a profile (name, path or object). */
  static async open(model: string | Uint8Array, profileSpec: string | Profile, opts: OpenSessionOptions = {}): Promise<RuntimeSession> {
    const profile = loadProfile(profileSpec);
    const avail = await profileAvailability(profile);
    if (!avail.available) throw new ProfileUnavailableError(profile, avail.reason);
    const subject = typeof model === 'string' ? model : 'model bytes';
    if (profile.executionProvider === 'wasm') {
      const web = await import('onnxruntime-web');
      // numThreads is global to onnxruntime-web and fixed once its wasm module starts.
      web.env.wasm.numThreads = threadsFor(profile);
      const bytes = typeof model === 'string' ? await readModelBytes(model) : model;
      try {
        const s = await web.InferenceSession.create(bytes, {
          executionProviders: ['wasm'],
          graphOptimizationLevel: profile.graphOptimizationLevel,
          ...(opts.sessionOptions as object),
        });
        return new RuntimeSession(s as unknown as OrtSession, profile, 'onnxruntime-web', web.Tensor as unknown as typeof ort.Tensor, null).named(subject);
      } catch (e) {
        throw new LesionFuseError(`onnxruntime-web could not load the model: ${describeError(e)}`, { subject, cause: e });
      }
    }
    const verify = opts.verifyProvider ?? true;
    const profileDir = verify ? mkdtempSync(join(tmpdir(), 'lf-ortprof-')) : null;
    const options = sessionOptionsFor(profile, {
      ...(profileDir ? { enableProfiling: true, profileFilePrefix: join(profileDir, 'run') } : {}),
      ...opts.sessionOptions,
    });
    try {
      const s = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      return new RuntimeSession(s, profile, 'onnxruntime-node', ort.Tensor, profileDir).named(subject);
    } catch (e) {
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
      throw new LesionFuseError(`onnxruntime could not load the model under profile ${profile.name}: ${describeError(e)}`, { subject, cause: e });
    }
  }

  private named(subject: string): this {
    this.subject = subject;
    return this;
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** A float32 tensor of this session's backend. */
  floatTensor(data: Float32Array, dims: readonly number[]): OrtTensor {
    return new this.tensorCtor('float32', data, dims);
  }

  /** A tensor of any type onnxruntime takes, of this session's backend (e.g. 'int64' with a BigInt64Array). */
  tensor(type: ort.Tensor.Type, data: ort.Tensor.DataType, dims: readonly number[]): OrtTensor {
    return new this.tensorCtor(type as 'float32', data as Float32Array, dims);
  }

  /** Run the model; the first run also records which provider ran each node. */
  async run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>> {
    let out;
    try {
      out = fetches ? await this.session.run(feeds, fetches) : await this.session.run(feeds);
    } catch (e) {
      // onnxruntime's own messages are multi-line and name no file: one line, naming the model.
      throw new LesionFuseError(`onnxruntime failed to run the model under profile ${this.profile.name}: ${describeError(e).replace(/\s+/g, ' ').slice(0, 300)}`, { subject: this.subject, cause: e });
    }
    if (!this.firstRunDone) {
      this.firstRunDone = true;
      this.check = await this.readProviderCheck();
    }
    return out as Record<string, OrtTensor>;
  }

  /** Where the nodes ran in the first run (null before it, or when not verified). */
  get providerCheck(): ProviderCheck | null {
    return this.check;
  }

  private async readProviderCheck(): Promise<ProviderCheck | null> {
    const expected = EXPECTED_PROVIDER[this.profile.executionProvider];
    if (this.backend === 'onnxruntime-web') {
      return { nodesByProvider: {}, expected, fellBackToCpu: false, summary: 'onnxruntime-web wasm (single provider, nothing to fall back to)' };
    }
    if (!this.profileDir) return null;
    try {
      await this.session.endProfiling();
      const files = (await fs.readdir(this.profileDir)).filter((f) => f.endsWith('.json'));
      const counts: Record<string, number> = {};
      for (const f of files) {
        const events = JSON.parse(readFileSync(join(this.profileDir, f), 'utf8')) as { cat?: string; name?: string; args?: { provider?: string } }[];
        const seen = new Set<string>();
        for (const ev of events) {
          if (ev.cat !== 'Node' || !ev.args?.provider || !ev.name) continue;
          const node = ev.name.replace(/_(kernel_time|fence_before|fence_after)$/, '');
          if (seen.has(node)) continue;
          seen.add(node);
          counts[ev.args.provider] = (counts[ev.args.provider] ?? 0) + 1;
        }
      }
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const onCpu = counts.CPUExecutionProvider ?? 0;
      const fellBackToCpu = this.profile.executionProvider !== 'cpu' && onCpu > 0;
      const summary =
        total === 0
          ? 'no node events recorded'
          : fellBackToCpu
            ? `fell back to CPU: ${onCpu} of ${total} nodes ran on CPUExecutionProvider instead of ${expected}`
            : Object.keys(counts).length === 1
              ? `all ${total} nodes on ${Object.keys(counts)[0]}`
              : Object.entries(counts).map(([k, v]) => `${v} on ${k}`).join(', ');
      return { nodesByProvider: counts, expected, fellBackToCpu, summary };
    } finally {
      rmSync(this.profileDir, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    await this.session.release();
    if (this.profileDir) rmSync(this.profileDir, { recursive: true, force: true });
  }
}

/** The profile's provider cannot run here; `reason` says what was checked. */
export class ProfileUnavailableError extends LesionFuseError {
  constructor(
    readonly profile: Profile,
    readonly reason: string,
  ) {
    super(`profile ${profile.name} (${profile.executionProvider}) is not available here: ${reason}`);
    this.name = 'ProfileUnavailableError';
  }
}

async function readModelBytes(path: string): Promise<Uint8Array> {
  try {
    return await fs.readFile(path);
  } catch (e) {
    throw new LesionFuseError(`cannot read model: ${describeError(e)}`, { subject: path, cause: e });
  }
}

/**
 * Create a plain onnxruntime session for a profile. Refuses (ProfileUnavailableError) a profile whose
 * provider is not available here instead of running it elsewhere. Use {@link RuntimeSession.open} to
 * also learn where the nodes ran.
 */
export async function createSession(model: string | Uint8Array, profile: string | Profile): Promise<OrtSession> {
  const rs = await RuntimeSession.open(model, profile, { verifyProvider: false });
  return rs.session;
}
