/**
 * Which kernels onnxruntime really ran for a model, read back from its profiler: a QDQ
 * model only pays off when onnxruntime fuses DQ -> Conv -> Q into QLinearConv (or
 * ConvInteger/MatMulInteger paths); when it cannot, it runs DequantizeLinear + float Conv
 * + QuantizeLinear, slower than float. Reporting the kernels says which case happened.
 */
import * as ort from '../util/ort.js';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LesionFuseError } from '../util/errors.js';

/** Time and calls per op kernel, summed over the profiled runs. */
export interface KernelProfile {
  /** op type as onnxruntime ran it (after its graph fusions), e.g. QLinearConv, Conv, DequantizeLinear. */
  ops: { op: string; provider: string; calls: number; microseconds: number }[];
  runs: number;
  threads: number;
}

interface TraceEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; provider?: string };
}

/**
 * Run `model` (bytes or a path) `runs` times on `feeds` with onnxruntime's profiler on and
 * sum kernel time per op type. The profile file is written in a temporary folder and removed.
 */
export async function profileKernels(
  model: Uint8Array | string,
  feeds: Record<string, ort.Tensor>,
  opts: { runs?: number; threads?: number } = {},
): Promise<KernelProfile> {
  const runs = opts.runs ?? 3;
  const threads = opts.threads ?? 1;
  const dir = await mkdtemp(join(tmpdir(), 'lf-profile-'));
  try {
    const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      enableProfiling: true,
      profileFilePrefix: join(dir, 'ort'),
    };
    const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
    for (let i = 0; i < runs; i++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    if (!files.length) throw new LesionFuseError('onnxruntime wrote no profile');
    const events = JSON.parse(await readFile(join(dir, files[0]!), 'utf8')) as TraceEvent[];
    const acc = new Map<string, { op: string; provider: string; calls: number; microseconds: number }>();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
      const key = `${e.args.op_name}|${e.args.provider ?? ''}`;
      const a = acc.get(key) ?? { op: e.args.op_name, provider: e.args.provider ?? '', calls: 0, microseconds: 0 };
      a.calls++;
      a.microseconds += e.dur ?? 0;
      acc.set(key, a);
    }
    return { ops: [...acc.values()].sort((a, b) => b.microseconds - a.microseconds), runs, threads };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
