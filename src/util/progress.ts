import { getLogLevel } from './log.js';

/**
 * The one progress display for long work (calibration, evaluation, training, batches).
 * Draws a single updating line on a TTY; on a pipe or in CI prints a line every ~10%.
 * Silent under `--quiet` (log level 'quiet') and with LESIONFUSE_PROGRESS=0.
 */
export class Progress {
  private done = 0;
  private lastPrintedDecile = -1;
  private readonly start = Date.now();
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = process.env.LESIONFUSE_PROGRESS !== '0' && getLogLevel() !== 'quiet',
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  tick(n = 1, note = ''): void {
    this.done = Math.min(this.total, this.done + n);
    this.render(note);
  }

  private render(note: string): void {
    // --quiet means errors only: no progress either.
    if (!this.enabled || this.total <= 0 || getLogLevel() === 'quiet') return;
    const frac = this.done / this.total;
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = frac > 0 ? elapsed / frac - elapsed : 0;
    const text = `${this.label} ${this.done}/${this.total} ${(frac * 100).toFixed(0)}% ${elapsed.toFixed(0)}s elapsed, ~${eta.toFixed(0)}s left${note ? ' ' + note : ''}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(frac * width);
      this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
      if (this.done === this.total) this.stream.write('\n');
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== this.lastPrintedDecile) {
        this.lastPrintedDecile = decile;
        this.stream.write(text + '\n');
      }
    }
  }
}
