/** Reverse-mode differentiation of ONNX graphs (see backward.ts and registry.ts). */
export { buildTrainingModel, gradientName, TRAINING_OPSET, type TrainingModel, type TrainingModelOptions, type ShapeMap } from './backward.js';
export { registerGradient, supportedGradientOps, type GradientRule, type GradContext, type ForwardPrep } from './registry.js';
export { GradEmitter, A, type GradOptions } from './emit.js';
export { probeShapes, inferDataTypes } from './shapes.js';
export { resizeMatrix } from './rules/resize.js';
