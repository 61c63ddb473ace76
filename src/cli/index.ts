#!/usr/bin/env node
/**
 * `lesionfuse <command>`: a thin layer over the SDK's API. Each command lives in
 * ./commands/<name>.ts and exports a yargs CommandModule.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { VERSION } from '../version.js';
import { log, setLogLevel } from '../util/log.js';
import { describeError, LesionFuseError } from '../util/errors.js';
import { commands } from './commands/index.js';
import { removePendingTemps } from '../util/atomic.js';

/** Ctrl-C or a polite kill: remove half-written temporary files, then exit as the signal asks (128 + its number). */
function exitCleanlyOn(signal: 'SIGINT' | 'SIGTERM', code: number): void {
  process.once(signal, () => {
    removePendingTemps();
    process.stderr.write(`\ninterrupted (${signal}): nothing half-written was left behind\n`);
    process.exit(code);
  });
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<number> {
  const debug = argv.includes('--debug');
  let exitCode = 0;
  const parser = yargs(argv)
    .scriptName('lesionfuse')
    .version(VERSION)
    .option('debug', { type: 'boolean', default: false, describe: 'print stack traces and details' })
    .option('quiet', { type: 'boolean', default: false, describe: 'print errors only' })
    .middleware((a) => setLogLevel(a.debug ? 'debug' : a.quiet ? 'quiet' : 'info'))
    .demandCommand(1, 'name a command; `lesionfuse --help` lists them')
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err ?? new LesionFuseError(msg);
    });
  for (const c of commands) parser.command(c);
  try {
    await parser.parseAsync();
    exitCode = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    log.error(describeError(err));
    if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    exitCode = err instanceof LesionFuseError ? 2 : 1;
  }
  return exitCode;
}

function invokedDirectly(): boolean {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]!) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  exitCleanlyOn('SIGINT', 130);
  exitCleanlyOn('SIGTERM', 143);
  main().then((code) => {
    process.exitCode = code;
  });
}
