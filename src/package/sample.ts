/**
 * Segment the bundle's sample image with the runtime's pieces (decodeImage, toModelInput,
 * resizeProbability) in onnxruntime-node with the profile's thread count.
 */
import * as ort from 'onnxruntime-node';
import { decodeImage, toModelInput, resizeProbability } from '../runtime/image.js';
import { readModel } from '../onnx/io.js';
import { readSegmentationMetadata } from '../onnx/metadata.js';
import { LesionFuseError } from '../util/errors.js';

/** The output of the model on the sample, at the image's original size. */
export interface SampleOutput {
  width: number;
  height: number;
  probability: Float32Array;
  mask: Uint8Array;
}

function threadsOf(profile: string): number {
  const m = /^cpu-(\d+)t$/.exec(profile);
  return m ? Number(m[1]) : 1;
}

/** Run `model` on `image` with `profile`'s threads. */
export async function segmentSample(model: string, image: string, profile: string): Promise<SampleOutput> {
  const m = await readModel(model);
  const meta = readSegmentationMetadata(m.metadata);
  const shape = m.graph.inputs[0]?.shape;
  const size = meta.inputSize ?? (shape && typeof shape[2] === 'number' && typeof shape[3] === 'number' ? { height: shape[2], width: shape[3] } : null);
  if (!size) throw new LesionFuseError('model has no fixed input size', { subject: model });
  const img = await decodeImage(image);
  const x = toModelInput([img], { ...meta, ...size });
  const threads = threadsOf(profile);
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  try {
    const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', x, [1, 3, size.height, size.width]) };
    const res = await session.run(feeds);
    const raw = res[session.outputNames[0]!]!.data as Float32Array;
    const p = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) p[i] = meta.output === 'logits' ? 1 / (1 + Math.exp(-raw[i]!)) : raw[i]!;
    const prob = resizeProbability(p, size.height, size.width, img.height, img.width);
    const mask = new Uint8Array(prob.length);
    for (let i = 0; i < prob.length; i++) mask[i] = prob[i]! > meta.threshold ? 1 : 0;
    return { width: img.width, height: img.height, probability: prob, mask };
  } finally {
    await session.release();
  }
}
