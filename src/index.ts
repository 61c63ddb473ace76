/**
 * LesionFuse's public API: a few typed entry points, each taking a plain options object,
 * and one namespace per stage of a model's path (onnx -> export -> quantize -> distill ->
 * runtime -> report -> package). The CLI (`lesionfuse <command>`) is a thin layer over these.
 *
 * @example
 * ```ts
 * import { loadModel, rewrite, quantize, evaluate, benchmark, packageBundle } from 'lesionfuse';
 * const model = await loadModel('teacher.onnx');
 * const { model: lean } = await rewrite(model, ['remove-identity', 'fold-batchnorm', 'remove-dead']);
 * const metrics = await evaluate({ model: 'teacher.onnx', data: '../shared/data', split: 'test' });
 * ```
 */
export { VERSION } from './version.js';
export { LesionFuseError } from './util/errors.js';
export { resolveModelPath, listBundledModels } from './models.js';

// The entry points named in the architecture.
export { readModel as loadModel, writeModel } from './onnx/index.js';
export { rewrite, rewriteFile } from './export/index.js';
export { quantize } from './quantize/index.js';
export { distill } from './distill/distill.js';
export { evaluate, benchmark, Segmenter } from './runtime/index.js';
export { writeReport as report } from './report/index.js';
export { packageBundle, verifyBundle } from './package/index.js';
export { runPipeline, loadPipelineConfig, runDemo } from './pipeline/index.js';

// Each stage in full.
export * as onnx from './onnx/index.js';
export * as exporter from './export/index.js';
export * as quantization from './quantize/index.js';
export * as runtime from './runtime/index.js';
export * as reports from './report/index.js';
export * as bundles from './package/index.js';
export * as pipeline from './pipeline/index.js';
