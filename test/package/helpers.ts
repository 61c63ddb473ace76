/** A tiny segmentation model built as IR (no builder needed): a 1x1 Conv from RGB to one logit map. */
import { DataType, type Model } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { writeFileSync } from 'node:fs';

export function tinySegModel(opts: { size?: number; weights?: [number, number, number]; bias?: number; name?: string } = {}): Model {
  const s = opts.size ?? 32;
  const w = opts.weights ?? [2.0, -1.5, -1.0];
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: 17 }],
    producerName: 'lesionfuse-test',
    producerVersion: '0',
    domain: '',
    modelVersion: 1,
    docString: '',
    graph: {
      name: 'tiny-seg',
      nodes: [{ name: 'conv', opType: 'Conv', domain: '', inputs: ['image', 'w', 'b'], outputs: ['logits'], attributes: { kernel_shape: { type: 'ints', value: [1, 1] } } }],
      inputs: [{ name: 'image', dataType: DataType.FLOAT, shape: [1, 3, s, s] }],
      outputs: [{ name: 'logits', dataType: DataType.FLOAT, shape: [1, 1, s, s] }],
      initializers: [
        { name: 'w', dataType: DataType.FLOAT, dims: [1, 3, 1, 1], values: Float32Array.from(w) },
        { name: 'b', dataType: DataType.FLOAT, dims: [1], values: Float32Array.from([opts.bias ?? 0.3]) },
      ],
      valueInfo: [],
    },
    metadata: { 'lesionfuse.input_size': `${s}x${s}`, 'lesionfuse.output': 'logits', 'lesionfuse.threshold': '0.5', 'lesionfuse.model_name': opts.name ?? 'tiny-seg', 'lesionfuse.training_data': 'none (test model)' },
  };
}

export function writeTinySegModel(path: string, opts?: Parameters<typeof tinySegModel>[0]): string {
  writeFileSync(path, encodeModel(tinySegModel(opts)));
  return path;
}
