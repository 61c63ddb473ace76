/** INT8 quantization: the public surface (see docs/quantization.md). */
export {
  quantize, quantizeFile, quantizationRecord, calibrationImages, loadMaskedImages, diceAtModelResolution, diceAtModelResolutionPerImage, modelIO, cpuInt8Features,
  type QuantizeOptions, type QuantizeResult, type LayerSensitivity, type MaskedImageSet, type ModelIO,
} from './quantize.js';
export {
  planQuantization, insertQdq, transformerFloatAdds, nodeKey, WEIGHT_OPS, SHARED_PARAM_OPS, OWN_RANGE_OPS,
  type QdqOptions, type QuantizationPlan, type PlannedNode, type FloatNode, type TensorRange, type QdqInsertionRecord,
} from './qdq.js';
export { quantizeDynamicMatMuls, type DynamicOptions, type DynamicResult } from './dynamic.js';
export {
  MinMaxCalibrator, PercentileCalibrator, EntropyCalibrator, BoundedHistogram, createCalibrator, collectRanges, withTensorOutputs,
  CALIBRATION_METHODS, type Calibrator, type CalibrationMethod, type CalibratorOptions, type CalibrationBatch, type CalibrationRun,
} from './calibrate.js';
export { profileKernels, type KernelProfile } from './kernels.js';
export * from './arith.js';
