/**
 * set-batch, fix-input-size and set-metadata: the interface edits a deployment needs. A fixed batch and
 * input size let runtimes plan memory once (and let fold-constants fold the Shape arithmetic exporters
 * emit); a dynamic batch lets one file serve batch 1 latency and batch-N throughput. Intermediate
 * value_info computed for the old shapes is cleared so that no runtime trusts a stale shape.
 */
import { DataType, type Dim, type Graph, type Model, type ValueInfo } from '../onnx/ir.js';
import { METADATA_KEYS, readSegmentationMetadata } from '../onnx/metadata.js';
import { LesionFuseError } from '../util/errors.js';
import type { ChangeRecord, Pass, PassContext } from './pass.js';
import { Constants, nodeLabel, realInputNames, record } from './util.js';

const fmt = (s: Dim[] | null) => (s ? `[${s.map((d) => (d === null ? '?' : d)).join(',')}]` : '[?]');

/** Drop the shapes of intermediate values (types stay), returning how many were cleared. */
function clearIntermediateShapes(g: Graph): number {
  let k = 0;
  for (const v of g.valueInfo) {
    if (v.shape !== null) {
      v.shape = null;
      k++;
    }
  }
  return k;
}

function setBatch(model: Model, ctx: PassContext): { model: Model; changes: ChangeRecord[] } {
  const PASS = 'set-batch';
  const g = model.graph;
  const want: Dim = ctx.options.batch === undefined || ctx.options.batch === 'dynamic' ? (ctx.options.batchDimName ?? 'N') : ctx.options.batch;
  if (typeof want === 'number' && !(Number.isInteger(want) && want >= 1)) throw new LesionFuseError(`--batch must be a positive integer or 'dynamic', got ${want}`);
  const changes: ChangeRecord[] = [];
  const real = realInputNames(g);
  const edited: string[] = [];
  const edit = (v: ValueInfo, what: string) => {
    if (!v.shape || v.shape.length === 0) {
      changes.push(record(PASS, 'skipped', `left ${what} ${v.name} ${fmt(v.shape)}: rank unknown or scalar, no batch axis`));
      return;
    }
    const before = fmt(v.shape);
    v.shape[0] = want;
    edited.push(`${what} ${v.name}: ${before} -> ${fmt(v.shape)}`);
  };
  for (const i of g.inputs) if (real.has(i.name)) edit(i, 'input');
  for (const o of g.outputs) edit(o, 'output');
  const cleared = clearIntermediateShapes(g);
  // Reshape targets written by exporters with the batch baked in (e.g. [1, 384, 12, 16]) would break at
  // another batch: rewrite a leading constant equal to the old batch to 0 ("copy dim 0") when the Reshape
  // keeps the batch axis, which is what such targets mean. Anything less clear is reported.
  const consts = new Constants(g);
  for (const n of g.nodes) {
    if (n.opType !== 'Reshape' || !n.inputs[1]) continue;
    const t = consts.get(n.inputs[1]);
    if (!t || t.dataType !== DataType.INT64 || t.dims.length !== 1 || t.values.length < 2) continue;
    const first = Number((t.values as BigInt64Array)[0]);
    if (first === 1 && want !== 1) {
      changes.push(
        record(PASS, 'skipped', `Reshape ${nodeLabel(n, g)} has a constant target starting with 1 ([${Array.from(t.values as BigInt64Array, Number).join(',')}]); if that 1 is the batch the model will fail at batch ${want}: the parity check runs at the new batch and will say so`, [nodeLabel(n, g)]),
      );
    }
  }
  if (edited.length) changes.unshift(record(PASS, 'changed', `batch axis set to ${want} on ${edited.length} graph input(s)/output(s); cleared ${cleared} stale intermediate shape(s)`, edited, edited.length));
  return { model, changes };
}

export const setBatchPass: Pass = {
  name: 'set-batch',
  description: "set the batch axis of the graph inputs/outputs to a fixed N or a dynamic 'N' (option batch)",
  precision: 'float32',
  run: setBatch,
};

function fixInputSize(model: Model, ctx: PassContext): { model: Model; changes: ChangeRecord[] } {
  const PASS = 'fix-input-size';
  const size = ctx.options.inputSize;
  if (!size) throw new LesionFuseError('fix-input-size needs an input size (--input-size HxW, e.g. 192x256)');
  const { height, width } = size;
  // Any positive size: whether the graph computes at it (strides, fixed reshapes) is the parity check's
  // question, which runs the original model at this size before anything is written.
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) {
    throw new LesionFuseError(`--input-size must be HxW with H and W positive integers, got ${height}x${width}`);
  }
  const g = model.graph;
  const real = realInputNames(g);
  const images = g.inputs.filter((i) => real.has(i.name) && i.shape && i.shape.length === 4);
  if (images.length !== 1) {
    throw new LesionFuseError(
      `fix-input-size needs exactly one NCHW (rank-4) image input; found ${g.inputs.filter((i) => real.has(i.name)).map((i) => `${i.name} ${fmt(i.shape)}`).join(', ') || 'none'}`,
    );
  }
  const x = images[0]!;
  const before = fmt(x.shape);
  const old = x.shape!;
  for (const [axis, v] of [[2, height], [3, width]] as const) {
    const d = old[axis];
    if (typeof d === 'number' && d !== v) {
      throw new LesionFuseError(
        `input ${x.name} already has a fixed ${axis === 2 ? 'height' : 'width'} ${d}; fix-input-size only fixes dynamic H/W (a model built for one size, e.g. with resampled position embeddings, is not valid at another)`,
      );
    }
  }
  // Symbolic names the input used for H and W mean the same sizes wherever else they appear (outputs).
  const rename = new Map<string, number>();
  if (typeof old[2] === 'string' && old[2]) rename.set(old[2], height);
  if (typeof old[3] === 'string' && old[3]) rename.set(old[3], width);
  old[2] = height;
  old[3] = width;
  const changes: ChangeRecord[] = [];
  let outputsFixed = 0;
  for (const o of g.outputs) {
    if (!o.shape) continue;
    const before = fmt(o.shape);
    o.shape = o.shape.map((d) => (typeof d === 'string' && rename.has(d) ? rename.get(d)! : d));
    if (fmt(o.shape) !== before) outputsFixed++;
  }
  const cleared = clearIntermediateShapes(g);
  model.metadata[METADATA_KEYS.inputSize] = `${height}x${width}`;
  if (height % 32 !== 0 || width % 32 !== 0) {
    changes.push(record(PASS, 'skipped', `${height}x${width} is not a multiple of 32: a model that downsamples 5 times may not run at it or may crop; the parity check runs it at this size`));
  }
  changes.push(
    record(PASS, 'changed', `input ${x.name}: ${before} -> ${fmt(x.shape)}; cleared ${cleared} stale intermediate shape(s) so runtimes re-infer them; fixed the H/W names on ${outputsFixed} output(s); metadata ${METADATA_KEYS.inputSize}=${height}x${width}`, [x.name], 1),
  );
  return { model, changes };
}

export const fixInputSizePass: Pass = {
  name: 'fix-input-size',
  description: 'fix H x W of the image input (option inputSize), clear stale shapes, record lesionfuse.input_size',
  precision: 'float32',
  run: fixInputSize,
};

function setMetadata(model: Model, ctx: PassContext): { model: Model; changes: ChangeRecord[] } {
  const PASS = 'set-metadata';
  const md = ctx.options.metadata;
  if (!md || !Object.keys(md).length) throw new LesionFuseError('set-metadata needs metadata entries (key=value)');
  const merged = { ...model.metadata, ...md };
  // Validate the lesionfuse.* contract before anything is written (throws a one-line LesionFuseError).
  readSegmentationMetadata(merged);
  const known = new Set<string>(Object.values(METADATA_KEYS));
  const changed: string[] = [];
  for (const [k, v] of Object.entries(md)) {
    if (k.startsWith('lesionfuse.') && !known.has(k)) throw new LesionFuseError(`unknown metadata key ${k}; known: ${[...known].join(', ')}`);
    if (model.metadata[k] !== v) changed.push(`${k}=${v}${model.metadata[k] !== undefined ? ` (was ${model.metadata[k]})` : ''}`);
    model.metadata[k] = v;
  }
  return { model, changes: [record(PASS, 'changed', changed.length ? `set ${changed.length} metadata entr(ies)` : 'metadata already as requested', changed, changed.length)] };
}

export const setMetadataPass: Pass = {
  name: 'set-metadata',
  description: 'write metadata_props (the lesionfuse.* keys are validated against the contract)',
  precision: 'float32',
  run: setMetadata,
};
