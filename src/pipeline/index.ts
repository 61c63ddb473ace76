/** The one-command pipeline (`lesionfuse run`), its config, its step cache and the offline demo. */
export { loadPipelineConfig, validatePipelineConfig, candidateIds, PipelineConfigError, PipelineSchema, type PipelineConfig, type PipelineConfigInput } from './config.js';
export { runPipeline, choose, type PipelineResult, type RunOptions, type StepRecord } from './run.js';
export { runStep, FileHasher, canonicalJson, STEP_MANIFEST, type StepSpec, type StepOutcome, type StepManifest } from './cache.js';
export { runDemo, demoConfig, type DemoOptions, type DemoResult } from './demo.js';
