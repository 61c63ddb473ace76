/** Small graphs for the quantization tests, built directly as IR (seeded weights). */
import { DataType, type Attribute, type Initializer, type Model, type Node, type ValueInfo } from '../../src/onnx/ir.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function attrs(a: Record<string, number | number[] | string>): Record<string, Attribute> {
  const out: Record<string, Attribute> = {};
  for (const [k, v] of Object.entries(a)) {
    if (typeof v === 'string') out[k] = { type: 'string', value: v };
    else if (Array.isArray(v)) out[k] = { type: 'ints', value: v };
    else out[k] = Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
  }
  return out;
}

export class Net {
  nodes: Node[] = [];
  inits: Initializer[] = [];
  private n = 0;
  constructor(private readonly r = rng(1)) {}
  w(name: string, dims: number[], scale = 0.3, offset = 0): string {
    const size = dims.reduce((a, b) => a * b, 1);
    const v = new Float32Array(size);
    for (let i = 0; i < size; i++) v[i] = (this.r() * 2 - 1) * scale + offset;
    this.inits.push({ name, dataType: DataType.FLOAT, dims, values: v });
    return name;
  }
  constInit(name: string, dataType: DataType, dims: number[], values: Float32Array | BigInt64Array): string {
    this.inits.push({ name, dataType, dims, values });
    return name;
  }
  op(opType: string, inputs: string[], a: Record<string, number | number[] | string> = {}, name?: string, nOut = 1): string {
    const id = name ?? `${opType.toLowerCase()}${this.n++}`;
    const outputs = Array.from({ length: nOut }, (_, i) => (i === 0 ? `${id}_out` : `${id}_out${i}`));
    this.nodes.push({ name: id, opType, domain: '', inputs, outputs, attributes: attrs(a) });
    return outputs[0]!;
  }
  conv(x: string, cin: number, cout: number, k: number, name: string, opts: { bias?: boolean; pad?: number; stride?: number; wScale?: number } = {}): string {
    const w = this.w(`${name}.weight`, [cout, cin, k, k], opts.wScale ?? 0.4);
    const ins = [x, w];
    if (opts.bias !== false) ins.push(this.w(`${name}.bias`, [cout], 0.1));
    const p = opts.pad ?? Math.floor(k / 2);
    return this.op('Conv', ins, { kernel_shape: [k, k], pads: [p, p, p, p], strides: [opts.stride ?? 1, opts.stride ?? 1] }, name);
  }
  model(input: ValueInfo, outputs: string[], opset = 17): Model {
    return {
      irVersion: 8,
      opsetImports: [{ domain: '', version: opset }],
      producerName: 'lesionfuse-test',
      producerVersion: '0',
      domain: '',
      modelVersion: 1,
      docString: '',
      graph: {
        name: 'test',
        nodes: this.nodes,
        inputs: [input],
        outputs: outputs.map((o) => ({ name: o, dataType: DataType.FLOAT, shape: null })),
        initializers: this.inits,
        valueInfo: [],
      },
      metadata: { 'lesionfuse.input_size': `${input.shape![2]}x${input.shape![3]}` },
    };
  }
}

/**
 * A small segmentation-like conv net (encoder, skip Add, Resize, Concat, ConvTranspose, head):
 * image [N, 3, 16, 16] -> logits [N, 1, 16, 16].
 */
export function tinySegNet(seed = 1, batch: number | string = 1): Model {
  const b = new Net(rng(seed));
  const x = 'image';
  let h = b.conv(x, 3, 8, 3, 'enc1');
  h = b.op('Relu', [h], {}, 'enc1_relu');
  const skip = h;
  let d = b.op('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] }, 'pool1');
  const c2 = b.conv(d, 8, 8, 3, 'enc2');
  d = b.op('Add', [c2, d], {}, 'res_add');
  d = b.op('Relu', [d], {}, 'res_relu');
  const roi = b.constInit('roi', DataType.FLOAT, [0], new Float32Array(0));
  const scales = b.constInit('up_scales', DataType.FLOAT, [4], new Float32Array([1, 1, 2, 2]));
  const up = b.op('Resize', [d, roi, scales], { mode: 'nearest' }, 'up');
  const tw = b.w('dec_t.weight', [8, 4, 2, 2], 0.3);
  const tb = b.w('dec_t.bias', [4], 0.1);
  const t = b.op('ConvTranspose', [d, tw, tb], { kernel_shape: [2, 2], strides: [2, 2] }, 'dec_t');
  const cat = b.op('Concat', [up, skip, t], { axis: 1 }, 'cat');
  let y = b.conv(cat, 20, 6, 3, 'dec1');
  y = b.op('Relu', [y], {}, 'dec1_relu');
  y = b.conv(y, 6, 1, 1, 'head');
  return b.model({ name: x, dataType: DataType.FLOAT, shape: [batch, 3, 16, 16] }, [y]);
}

/** Random inputs [n, 3, 16, 16] in roughly the range of ImageNet-normalised pixels. */
export function randomImages(n: number, seed = 7, hw = 16): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n * 3 * hw * hw);
  // smooth-ish images: a per-image gradient plus noise, so activations look like real ones
  for (let i = 0; i < n; i++) {
    const a = r() * 2 - 1;
    const bb = r() * 2 - 1;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < hw * hw; p++) {
        const y = Math.floor(p / hw) / hw;
        const x = (p % hw) / hw;
        out[((i * 3 + c) * hw * hw) + p] = 1.5 * (a * x + bb * y) + (r() - 0.5) * 0.8 + (c - 1) * 0.2;
      }
    }
  }
  return out;
}
