/**
 * The kind of CPU a result was recorded on: onnxruntime picks kernels by instruction set (INT8 with or without
 * VNNI, AVX2 vs AVX-512), so the same model and input give bit-identical outputs only on the same kind of CPU.
 * Node built-ins only: bundles carry this module (lib/) for their own test.
 */
import { readFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';

/** Instruction-set flags that change which onnxruntime kernels run. */
const KERNEL_FLAGS = ['sse4_1', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8', 'asimd', 'asimddp', 'sve', 'i8mm'];

export interface CpuKind {
  arch: string;
  model: string;
  /** The kernel-relevant flags this CPU has (Linux /proc/cpuinfo; empty elsewhere). */
  flags: string[];
}

export function cpuKind(): CpuKind {
  let flags: string[] = [];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(info)?.[1] ?? '';
    const have = new Set(line.split(/\s+/));
    flags = KERNEL_FLAGS.filter((f) => have.has(f));
  } catch {
    flags = [];
  }
  return { arch: arch(), model: cpus()[0]?.model ?? 'unknown', flags };
}

/** True when two CPUs would pick the same onnxruntime kernels (same architecture and kernel-relevant flags). */
export function sameCpuKind(a: CpuKind, b: CpuKind): boolean {
  return a.arch === b.arch && a.flags.length > 0 && a.flags.join(' ') === b.flags.join(' ');
}
