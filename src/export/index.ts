/** Graph rewrites as passes, each checked for output parity: the public surface of `src/export`. */
export type { ChangeKind, ChangeRecord, Pass, PassContext, PassOptions, PassResult } from './pass.js';
export { PASSES, DEFAULT_PASSES, resolvePasses, rewrite, type RewriteOptions, type RewriteResult } from './rewrite.js';
export { checkParity, defaultParityImageDir, type ParityMode, type ParityOptions, type ParityReport, type ParityImageResult } from './parity.js';
export { rewriteFile, type RewriteFileOptions, type RewriteFileResult } from './file.js';
export { foldBatchNormIntoConv, type FoldBatchNormResult } from './batchnorm.js';
export { fuseBiasAdd } from './bias.js';
export { removeDead, removeIdentities } from './cleanup.js';
export { NON_DETERMINISTIC_OPS } from './constants.js';
export { FLOAT16_DEFAULT_BLOCK_LIST } from './float16.js';
export { inferElemTypes } from './types.js';
export { OP_HISTORY, OPSET_RANGE } from './opset.js';
