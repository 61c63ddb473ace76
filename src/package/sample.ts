/**
 * Segment the bundle's sample image through the runtime's Segmenter (the path users run) with the bundle's
 * profile, so that the recorded output and a later verification are made the same way.
 */
import { Segmenter } from '../runtime/segmenter.js';
import type { Profile } from '../runtime/profiles.js';

/** The output of the model on the sample, at the image's original size. */
export interface SampleOutput {
  width: number;
  height: number;
  probability: Float32Array;
  mask: Uint8Array;
}

/** Run `model` on `image` with `profile` (a profile, its name or a .json path). */
export async function segmentSample(model: string, image: string, profile: string | Profile): Promise<SampleOutput> {
  const seg = await Segmenter.create(model, { profile });
  try {
    const r = await seg.segment(image);
    return { width: r.width, height: r.height, probability: r.probability, mask: r.mask };
  } finally {
    await seg.close();
  }
}
