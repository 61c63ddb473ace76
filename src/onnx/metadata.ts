import { LesionFuseError } from '../util/errors.js';

/** How a segmentation model wants its input prepared and its output read. */
export interface SegmentationMetadata {
  /** Fixed input height and width, or null when the model does not say. */
  inputSize: { height: number; width: number } | null;
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: 'RGB' | 'BGR';
  output: 'logits' | 'probabilities';
  threshold: number;
  modelName: string | null;
  /**
   * How images must be resized to the input: 'exact' (Pillow's BILINEAR, bit for bit, for models whose
   * accuracy depends on it), 'fast' (libvips resize-on-decode), or null when the model does not say
   * (the runtime's default applies).
   */
  resize: 'exact' | 'fast' | null;
  /**
   * Mask post-processing the model was validated with: 'lesion' (keep the lesion-like connected components,
   * fill holes: runtime/postprocess.ts) or 'none'; null when the model does not say (then none).
   */
  postprocess: 'lesion' | 'none' | null;
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

export const METADATA_KEYS = {
  inputSize: 'lesionfuse.input_size',
  mean: 'lesionfuse.mean',
  std: 'lesionfuse.std',
  channelOrder: 'lesionfuse.channel_order',
  output: 'lesionfuse.output',
  threshold: 'lesionfuse.threshold',
  modelName: 'lesionfuse.model_name',
  resize: 'lesionfuse.resize',
  postprocess: 'lesionfuse.postprocess',
} as const;

function triple(text: string, key: string): [number, number, number] {
  const v = text.split(',').map((s) => Number(s.trim()));
  if (v.length !== 3 || v.some((x) => !Number.isFinite(x))) {
    throw new LesionFuseError(`metadata ${key} must be three comma-separated numbers, got '${text}'`);
  }
  return [v[0]!, v[1]!, v[2]!];
}

/** Read the `lesionfuse.*` keys of a model's metadata_props, with defaults for what is missing. */
export function readSegmentationMetadata(metadata: Record<string, string>): SegmentationMetadata {
  let inputSize: SegmentationMetadata['inputSize'] = null;
  const size = metadata[METADATA_KEYS.inputSize];
  if (size) {
    const m = /^(\d+)x(\d+)$/.exec(size.trim());
    if (!m) throw new LesionFuseError(`metadata ${METADATA_KEYS.inputSize} must be HxW (e.g. 192x256), got '${size}'`);
    inputSize = { height: Number(m[1]), width: Number(m[2]) };
  }
  const order = (metadata[METADATA_KEYS.channelOrder] ?? 'RGB').toUpperCase();
  if (order !== 'RGB' && order !== 'BGR') throw new LesionFuseError(`metadata ${METADATA_KEYS.channelOrder} must be RGB or BGR, got '${order}'`);
  const output = metadata[METADATA_KEYS.output] ?? 'logits';
  if (output !== 'logits' && output !== 'probabilities') {
    throw new LesionFuseError(`metadata ${METADATA_KEYS.output} must be logits or probabilities, got '${output}'`);
  }
  const resize = metadata[METADATA_KEYS.resize]?.trim().toLowerCase() ?? null;
  if (resize !== null && resize !== 'exact' && resize !== 'fast') {
    throw new LesionFuseError(`metadata ${METADATA_KEYS.resize} must be exact or fast, got '${resize}'`);
  }
  const postprocess = metadata[METADATA_KEYS.postprocess]?.trim().toLowerCase() ?? null;
  if (postprocess !== null && postprocess !== 'lesion' && postprocess !== 'none') {
    throw new LesionFuseError(`metadata ${METADATA_KEYS.postprocess} must be lesion or none, got '${postprocess}'`);
  }
  const threshold = metadata[METADATA_KEYS.threshold] !== undefined ? Number(metadata[METADATA_KEYS.threshold]) : 0.5;
  if (!(threshold > 0 && threshold < 1)) throw new LesionFuseError(`metadata ${METADATA_KEYS.threshold} must be in (0, 1)`);
  return {
    inputSize,
    mean: metadata[METADATA_KEYS.mean] ? triple(metadata[METADATA_KEYS.mean]!, METADATA_KEYS.mean) : IMAGENET_MEAN,
    std: metadata[METADATA_KEYS.std] ? triple(metadata[METADATA_KEYS.std]!, METADATA_KEYS.std) : IMAGENET_STD,
    channelOrder: order,
    output,
    threshold,
    modelName: metadata[METADATA_KEYS.modelName] ?? null,
    resize,
    postprocess,
  };
}

/** The metadata_props entries that describe `meta` (merge them into a model's metadata). */
export function segmentationMetadataProps(meta: Partial<SegmentationMetadata>): Record<string, string> {
  const out: Record<string, string> = {};
  if (meta.inputSize) out[METADATA_KEYS.inputSize] = `${meta.inputSize.height}x${meta.inputSize.width}`;
  if (meta.mean) out[METADATA_KEYS.mean] = meta.mean.join(',');
  if (meta.std) out[METADATA_KEYS.std] = meta.std.join(',');
  if (meta.channelOrder) out[METADATA_KEYS.channelOrder] = meta.channelOrder;
  if (meta.output) out[METADATA_KEYS.output] = meta.output;
  if (meta.threshold !== undefined) out[METADATA_KEYS.threshold] = String(meta.threshold);
  if (meta.modelName) out[METADATA_KEYS.modelName] = meta.modelName;
  if (meta.resize) out[METADATA_KEYS.resize] = meta.resize;
  if (meta.postprocess) out[METADATA_KEYS.postprocess] = meta.postprocess;
  return out;
}
