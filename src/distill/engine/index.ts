/** The training engine: trainer, optimizer, schedules, seeded init, checkpoints. */
export { Trainer, type TrainerOptions, type HostTensor, type StepResult } from './trainer.js';
export { AdamW, clipGradNorm, defaultDecay, type AdamWOptions } from './optim.js';
export { learningRateAt, type LrSchedule } from './schedule.js';
export { Rng, type RngState } from './rng.js';
export { kaimingNormal, kaimingUniform, type KaimingOptions } from './init.js';
export { saveCheckpoint, loadCheckpoint, encodeCheckpoint, decodeCheckpoint, type Checkpoint, type CheckpointTensor } from './checkpoint.js';
