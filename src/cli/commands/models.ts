import type { CommandModule } from 'yargs';
import { listBundledModels } from '../../models.js';
import { readModelMetadata } from '../../onnx/io.js';
import { METADATA_KEYS } from '../../onnx/metadata.js';
import { describeError } from '../../util/errors.js';

interface Args {
  json: boolean;
}

/** `lesionfuse models [--json]`: the bundled models, whether they ship in this build, and their input size. */
export const command: CommandModule<object, Args> = {
  command: 'models',
  describe: 'list the bundled models',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print the list as JSON on stdout' })
      .example('$0 models', 'which bundled models this install has')
      .example('$0 models --json', 'alias, path, size and input size of each'),
  handler: async (args) => {
    const rows = await Promise.all(
      listBundledModels().map(async (m) => {
        let inputSize: string | null = null;
        let error: string | undefined;
        if (m.present) {
          try {
            inputSize = (await readModelMetadata(m.path)).metadata[METADATA_KEYS.inputSize] ?? null;
          } catch (err) {
            error = describeError(err);
          }
        }
        return { ...m, inputSize, ...(error ? { error } : {}) };
      }),
    );
    if (args.json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    const mb = (b: number | null) => (b === null ? '-' : `${(b / 2 ** 20).toFixed(1)} MiB`);
    const header = ['alias', 'present', 'size', 'input', 'description'];
    const table = rows.map((r) => [r.alias, r.present ? 'yes' : 'no', mb(r.sizeBytes), r.inputSize ?? '-', r.error ? `${r.description} (unreadable: ${r.error})` : r.description]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    process.stdout.write([line(header), ...table.map(line)].join('\n') + '\n');
  },
};
