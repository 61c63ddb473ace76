/** Learning-rate schedules: a pure function of the step, so a resumed run gets the same rates. */

export type LrSchedule =
  | { kind: 'constant' }
  /**
   * Linear warm-up over `warmupSteps` (from lr/warmupSteps up to lr), then a
   * cosine decay to `minLr` at `totalSteps`; constant `minLr` after that.
   */
  | { kind: 'cosine'; warmupSteps: number; totalSteps: number; minLr?: number };

/** The learning rate of update number `step` (0-based) for base rate `lr`. */
export function learningRateAt(schedule: LrSchedule, lr: number, step: number): number {
  if (schedule.kind === 'constant') return lr;
  const warm = Math.max(0, schedule.warmupSteps);
  const minLr = schedule.minLr ?? 0;
  if (step < warm) return (lr * (step + 1)) / warm;
  const span = Math.max(1, schedule.totalSteps - warm);
  const progress = Math.min(1, (step - warm) / span);
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
