/**
 * `lesionfuse rewrite IN OUT --passes ...`: a thin layer over `rewriteFile` (src/export). Options that
 * configure a pass also add that pass, so `--input-size 192x256` alone fixes the input size.
 */
import type { CommandModule } from 'yargs';
import { DEFAULT_PASSES, PASSES, rewriteFile, type RewriteFileResult } from '../../export/index.js';
import type { PassOptions } from '../../export/pass.js';
import { resolveModelPath } from '../../models.js';
import { LesionFuseError } from '../../util/errors.js';
import { log } from '../../util/log.js';

interface Args {
  input?: string;
  output?: string;
  passes?: string;
  images?: string | string[];
  tolerance: number;
  'min-dice'?: number;
  force: boolean;
  batch?: string;
  'input-size'?: string;
  opset?: number;
  metadata?: string[];
  json: boolean;
  list: boolean;
}

function parseSize(s: string): { height: number; width: number } {
  const m = /^(\d+)x(\d+)$/i.exec(s.trim());
  if (!m) throw new LesionFuseError(`expected HxW (e.g. 192x256), got '${s}'`, { subject: '--input-size' });
  return { height: Number(m[1]), width: Number(m[2]) };
}

function parseBatch(s: string): number | 'dynamic' {
  if (s === 'dynamic' || s === 'N') return 'dynamic';
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new LesionFuseError(`expected a positive integer or 'dynamic', got '${s}'`, { subject: '--batch' });
  return n;
}

function parseMetadata(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const it of items) {
    const k = it.indexOf('=');
    if (k <= 0) throw new LesionFuseError(`expected key=value, got '${it}'`, { subject: '--metadata' });
    out[it.slice(0, k)] = it.slice(k + 1);
  }
  return out;
}

function printList(): void {
  const width = Math.max(...Object.keys(PASSES).map((k) => k.length));
  process.stdout.write('passes (default set marked *):\n');
  for (const p of Object.values(PASSES)) {
    process.stdout.write(`  ${DEFAULT_PASSES.includes(p.name) ? '*' : ' '} ${p.name.padEnd(width)}  ${p.description}${p.precision === 'float16' ? ' [parity: Dice agreement]' : ''}\n`);
  }
}

function printResult(r: RewriteFileResult): void {
  const out = process.stdout;
  out.write(`${r.input} -> ${r.output}\n`);
  out.write(`nodes: ${r.nodesBefore} -> ${r.nodesAfter}\n`);
  for (const p of r.passes) {
    out.write(`[${p.name}] (${p.ms.toFixed(0)} ms)\n`);
    for (const c of p.changes) {
      out.write(`  ${c.kind === 'skipped' ? 'note: ' : '- '}${c.message}\n`);
      if (c.nodes && c.nodes.length && c.kind !== 'skipped') {
        const shown = c.nodes.slice(0, 6).join(', ');
        out.write(`      ${shown}${c.nodes.length > 6 ? `, ... (${c.nodes.length} in all)` : ''}\n`);
      }
    }
  }
  if (r.parity) out.write(`parity: ${r.parity.passed ? 'PASSED' : 'FAILED'}: ${r.parity.message}\n`);
  else out.write('parity: not checked\n');
  if (r.forced) out.write('WARNING: written with --force although the parity check failed or could not run\n');
}

export const command: CommandModule<object, Args> = {
  command: 'rewrite [input] [output]',
  describe: 'rewrite an ONNX graph with passes, checking output parity on real images before writing',
  builder: (y) =>
    y
      .positional('input', { type: 'string', describe: 'ONNX model to rewrite (a path or default:teacher / default:student)' })
      .positional('output', { type: 'string', describe: 'where to write the rewritten model' })
      .option('passes', { type: 'string', describe: `comma-separated passes, run in order (default: ${DEFAULT_PASSES.join(',')})` })
      .option('list', { type: 'boolean', default: false, describe: 'list the passes and exit' })
      .option('images', { type: 'string', describe: 'an image file or folder for the parity check, repeatable (default: bundled samples)' })
      .option('tolerance', { type: 'number', default: 1e-4, describe: 'largest allowed difference of the raw outputs, relative above 1 (float32 passes)' })
      .option('min-dice', { type: 'number', describe: 'smallest allowed Dice agreement of the masks (float16; default 0.99)' })
      .option('force', { type: 'boolean', default: false, describe: 'write the model even when it fails the parity check (says so)' })
      .option('batch', { type: 'string', describe: "set-batch: a fixed batch size or 'dynamic' (adds set-batch)" })
      .option('input-size', { type: 'string', describe: 'fix-input-size: HxW (adds fix-input-size)' })
      .option('opset', { type: 'number', describe: 'update-opset: the target opset (adds update-opset)' })
      .option('metadata', { type: 'string', array: true, describe: 'set-metadata: key=value entries (adds set-metadata)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
      .example('$0 rewrite teacher.onnx teacher.opt.onnx', 'the default float32-safe passes, parity-checked on the bundled samples')
      .example('$0 rewrite in.onnx out.onnx --passes to-float16 --images my_images/', 'float16 weights and activations, float32 I/O, Dice-agreement check')
      .example('$0 rewrite --list', 'list the passes'),
  handler: async (a) => {
    if (a.list) {
      printList();
      return;
    }
    if (!a.input || !a.output) throw new LesionFuseError('rewrite needs INPUT and OUTPUT model paths (or --list)');
    const names = a.passes !== undefined ? a.passes.split(',').map((s) => s.trim()).filter(Boolean) : [...DEFAULT_PASSES];
    for (const n of names) if (!PASSES[n]) throw new LesionFuseError(`unknown pass '${n}'; available: ${Object.keys(PASSES).join(', ')}`, { subject: '--passes' });
    const options: PassOptions = {};
    const implied: string[] = [];
    if (a['input-size'] !== undefined) {
      options.inputSize = parseSize(a['input-size']);
      implied.push('fix-input-size');
    }
    if (a.batch !== undefined) {
      options.batch = parseBatch(a.batch);
      implied.push('set-batch');
    }
    if (a.opset !== undefined) {
      options.opset = a.opset;
      implied.push('update-opset');
    }
    if (a.metadata !== undefined) {
      options.metadata = parseMetadata(a.metadata);
      implied.push('set-metadata');
    }
    for (const p of implied) if (!names.includes(p) && PASSES[p]) names.push(p);
    if (!names.length) throw new LesionFuseError('no passes to run', { subject: '--passes' });
    const r = await rewriteFile(resolveModelPath(a.input), a.output, names, {
      ...options,
      force: a.force,
      parity: { images: a.images === undefined ? undefined : ([] as string[]).concat(a.images), tolerance: a.tolerance, minDiceAgreement: a['min-dice'] },
      onPass: (name, changes, ms) => log.debug(`${name}: ${changes.length} change record(s) in ${ms.toFixed(0)} ms`),
    });
    if (a.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else printResult(r);
  },
};
