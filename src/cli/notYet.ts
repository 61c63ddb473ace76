import type { CommandModule } from 'yargs';
import { LesionFuseError } from '../util/errors.js';

/** A command whose stage has not landed yet: it says so and exits non-zero, never fakes output. */
export function notYetAvailable(command: string, describe: string, issue: string): CommandModule {
  return {
    command,
    describe: `${describe} (not yet available)`,
    builder: (y) => y.strict(false),
    handler: () => {
      throw new LesionFuseError(`'${command.split(' ')[0]}' is not yet available in this version (tracked in ${issue})`);
    },
  };
}
