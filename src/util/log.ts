/**
 * The one logger. Messages go to stderr so that stdout stays clean for `--json` output.
 * Levels: 'quiet' prints errors only, 'info' the default, 'debug' adds details and stacks.
 */
export type LogLevel = 'quiet' | 'info' | 'debug';

let level: LogLevel = 'info';

export function setLogLevel(l: LogLevel): void {
  level = l;
}
export function getLogLevel(): LogLevel {
  return level;
}

export const log = {
  info(msg: string): void {
    if (level !== 'quiet') process.stderr.write(msg + '\n');
  },
  warn(msg: string): void {
    if (level !== 'quiet') process.stderr.write(`warning: ${msg}\n`);
  },
  error(msg: string): void {
    process.stderr.write(`error: ${msg}\n`);
  },
  debug(msg: string): void {
    if (level === 'debug') process.stderr.write(`debug: ${msg}\n`);
  },
};
