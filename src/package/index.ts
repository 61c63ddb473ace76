/** Edge bundles: packageBundle / verifyBundle, the model card, and the small ustar + gzip writer behind the tarball. */
export {
  packageBundle, verifyBundle, writeTarball, defaultSampleImage, BUNDLE_SCHEMA,
  type PackageOptions, type PackageResult, type BundleManifest, type BundleMetrics, type ExpectedSample, type TensorSpec, type VerifyOptions, type VerifyResult,
} from './bundle.js';
export { renderModelCard, findModelCard, LESIONFUSE_DATA_TERMS, type ModelCardInput } from './card.js';
export { createTar, createTarGz, readTar, readTarGz, type TarEntry } from './tar.js';
