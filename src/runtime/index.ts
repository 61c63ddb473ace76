/**
 * The runtime's public surface: images and masks, profiles and sessions, the Segmenter, datasets,
 * metrics, evaluation, benchmarks and batch segmentation. Other stages import from here.
 */
export * from './image.js';
export { decodeBmp, encodeBmp, readBmpHeader, isBmp, type BmpImage, type BmpHeader } from './bmp.js';
export * from './profiles.js';
export * from './session.js';
export * from './segmenter.js';
export * from './dataset.js';
export * from './metrics.js';
export * from './evaluate.js';
export * from './benchmark.js';
export * from './segment.js';
