/** Tiny segmentation graphs built with the SDK's GraphBuilder, written to a temp folder. */
import { join } from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { writeModel } from '../../src/onnx/io.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { DataType, type Dim } from '../../src/onnx/ir.js';
import { segmentationMetadataProps } from '../../src/onnx/metadata.js';

/**
 * logits[n, 0, y, x] = +10 for x < W/2 and -10 otherwise, whatever the image (a zero-weight 1x1 Conv
 * plus a constant map): after resizing to an even original width the mask is exactly the left half.
 */
export async function halfModel(dir: string, opts: { batch?: Dim; size?: number; name?: string } = {}): Promise<string> {
  const S = opts.size ?? 16;
  const b = new GraphBuilder('half');
  const x = b.input('image', DataType.FLOAT, [opts.batch ?? 'N', 3, S, S]);
  const w = b.initializer('w', floatTensor([1, 3, 1, 1], [0, 0, 0]));
  const c = b.op('Conv', [x, w], { kernel_shape: [1, 1] });
  const map = new Float32Array(S * S).map((_, i) => (i % S < S / 2 ? 10 : -10));
  const k = b.initializer('step', floatTensor([1, 1, S, S], map));
  b.output(b.op('Add', [c, k]), 'logits', { dataType: DataType.FLOAT, shape: [opts.batch ?? 'N', 1, S, S] });
  const model = b.build({ opset: 17, metadata: segmentationMetadataProps({ inputSize: { height: S, width: S }, output: 'logits', modelName: 'half' }) });
  const p = join(dir, opts.name ?? 'half.onnx');
  await writeModel(model, p);
  return p;
}

/** logits = 100 * R/255 - 50 (mean 0, std 1): lesion where the red channel is >= 128. Fixed 64 x 64. */
export async function redModel(dir: string): Promise<string> {
  const b = new GraphBuilder('red');
  const x = b.input('image', DataType.FLOAT, ['N', 3, 64, 64]);
  const w = b.initializer('w', floatTensor([1, 3, 1, 1], [100, 0, 0]));
  const bias = b.initializer('b', floatTensor([1], [-50]));
  b.output(b.op('Conv', [x, w, bias], { kernel_shape: [1, 1] }), 'logits', { dataType: DataType.FLOAT, shape: ['N', 1, 64, 64] });
  const model = b.build({ opset: 17, metadata: segmentationMetadataProps({ inputSize: { height: 64, width: 64 }, mean: [0, 0, 0], std: [1, 1, 1], output: 'logits' }) });
  const p = join(dir, 'red.onnx');
  await writeModel(model, p);
  return p;
}

/** A model with a custom IO for the refusal tests. */
export async function oddModel(dir: string, name: string, build: (b: GraphBuilder) => void, metadata: Record<string, string> = {}): Promise<string> {
  const b = new GraphBuilder(name);
  build(b);
  const p = join(dir, `${name}.onnx`);
  await writeModel(b.build({ opset: 17, metadata }), p);
  return p;
}
