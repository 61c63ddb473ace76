import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from './util/paths.js';
import { LesionFuseError } from './util/errors.js';

/** A model that ships inside the package, addressed as `default:<alias>`. */
export interface BundledModel {
  alias: string;
  /** Path relative to the package root. */
  relativePath: string;
  description: string;
}

export const BUNDLED_MODELS: readonly BundledModel[] = [
  { alias: 'teacher', relativePath: 'models/teacher/teacher.onnx', description: 'fused ResNet-34 + DeiT-Small teacher (fp16 storage)' },
  { alias: 'student', relativePath: 'models/student/student.onnx', description: 'distilled student (default)' },
];

/**
 * Turn what a user typed where a model is expected into a file path:
 * `default:teacher` / `default:student` name the bundled models, anything else is a path.
 */
export function resolveModelPath(spec: string): string {
  if (spec.startsWith('default:')) {
    const alias = spec.slice('default:'.length);
    const entry = BUNDLED_MODELS.find((m) => m.alias === alias);
    if (!entry) {
      throw new LesionFuseError(
        `unknown bundled model; available: ${BUNDLED_MODELS.map((m) => 'default:' + m.alias).join(', ')}`,
        { subject: spec },
      );
    }
    const p = join(packageRoot(), entry.relativePath);
    if (!existsSync(p)) throw new LesionFuseError('this bundled model is not shipped in this build yet', { subject: spec });
    return p;
  }
  return resolve(spec);
}

export interface BundledModelInfo {
  alias: string;
  path: string;
  present: boolean;
  sizeBytes: number | null;
  description: string;
}

/** The bundled models and whether each is present in this install. */
export function listBundledModels(): BundledModelInfo[] {
  return BUNDLED_MODELS.map((m) => {
    const path = join(packageRoot(), m.relativePath);
    const present = existsSync(path);
    return { alias: 'default:' + m.alias, path, present, sizeBytes: present ? statSync(path).size : null, description: m.description };
  });
}
