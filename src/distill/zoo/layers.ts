/**
 * The building blocks of the student zoo, on top of the SDK's GraphBuilder.
 *
 * A `StudentContext` tracks the static shape [C, H, W] of every value it makes, so each student knows its
 * own parameter count and multiply-adds while it is being built (no shape inference pass needed), and
 * names every initializer by its layer path (`enc1.conv1.weight`), so a checkpoint, an inference export
 * and a PyTorch mirror can all refer to the same weights.
 *
 * Only ops the training engine differentiates are used: Conv (incl. depthwise), BatchNormalization, Relu,
 * MaxPool, Resize (nearest, x2), Concat, Add.
 */
import { GraphBuilder } from '../../onnx/builder.js';
import { DataType, type Model } from '../../onnx/ir.js';
import { floatTensor } from '../../onnx/tensor.js';
import { mulberry32 } from '../../runtime/metrics.js';

/** The static shape of a feature map (batch excluded). */
export interface FeatureShape {
  c: number;
  h: number;
  w: number;
}

/** A value in the graph being built, with its static shape. */
export interface Feature extends FeatureShape {
  name: string;
}

/**
 * 'train': BatchNormalization with training_mode = 1 (batch statistics; the engine updates the running
 * statistics); 'infer': training_mode = 0 with the stored running statistics (what ships).
 */
export type BuildMode = 'train' | 'infer';

/** Seeded standard normal draws (Box-Muller over mulberry32), so the same seed gives the same student. */
export function seededNormal(seed: number): () => number {
  const rand = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u <= 1e-12) u = rand();
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

export interface ConvOptions {
  kernel?: number;
  stride?: number;
  group?: number;
  /** A bias term; off by default because a BatchNormalization follows almost every conv. */
  bias?: boolean;
}

export class StudentContext {
  readonly b: GraphBuilder;
  /** Trainable initializer names in creation order (weights, biases, BN scale/shift). */
  readonly params: string[] = [];
  /** BatchNormalization running statistics (not trained by gradient; updated by the engine in training). */
  readonly runningStats: string[] = [];
  paramCount = 0;
  /** Multiply-adds per image of the Conv layers (everything else is a rounding error next to them). */
  macs = 0;
  private readonly normal: () => number;

  constructor(
    graphName: string,
    readonly mode: BuildMode,
    seed: number,
  ) {
    this.b = new GraphBuilder(graphName);
    this.normal = seededNormal(seed);
  }

  input(name: string, height: number, width: number, batch: number | string): Feature {
    const v = this.b.input(name, DataType.FLOAT, [batch, 3, height, width]);
    return { name: v, c: 3, h: height, w: width };
  }

  private param(name: string, dims: number[], values: Float32Array): string {
    this.params.push(name);
    this.paramCount += values.length;
    return this.b.initializer(name, floatTensor(dims, values));
  }

  /** Conv with 'same' padding; Kaiming-normal weights (fan-in, gain sqrt(2) for ReLU), zero bias. */
  conv(scope: string, x: Feature, cout: number, o: ConvOptions = {}): Feature {
    const k = o.kernel ?? 3;
    const s = o.stride ?? 1;
    const g = o.group ?? 1;
    const cinPerGroup = x.c / g;
    const fanIn = cinPerGroup * k * k;
    const std = Math.sqrt(2 / fanIn);
    const w = new Float32Array(cout * cinPerGroup * k * k);
    for (let i = 0; i < w.length; i++) w[i] = this.normal() * std;
    const inputs = [x.name, this.param(`${scope}.weight`, [cout, cinPerGroup, k, k], w)];
    if (o.bias) inputs.push(this.param(`${scope}.bias`, [cout], new Float32Array(cout)));
    const p = Math.floor((k - 1) / 2);
    const y = this.b.op('Conv', inputs, {
      kernel_shape: [k, k],
      strides: [s, s],
      pads: [p, p, k - 1 - p, k - 1 - p],
      dilations: [1, 1],
      group: g,
    });
    const oh = Math.floor((x.h + k - 1 - k) / s) + 1;
    const ow = Math.floor((x.w + k - 1 - k) / s) + 1;
    this.macs += cout * oh * ow * cinPerGroup * k * k;
    return { name: y, c: cout, h: oh, w: ow };
  }

  /** BatchNormalization (scale 1, shift 0, running mean 0, running var 1; momentum 0.9, epsilon 1e-5). */
  bn(scope: string, x: Feature): Feature {
    const scale = this.param(`${scope}.weight`, [x.c], new Float32Array(x.c).fill(1));
    const shift = this.param(`${scope}.bias`, [x.c], new Float32Array(x.c));
    const mean = this.b.initializer(`${scope}.running_mean`, floatTensor([x.c], new Float32Array(x.c)));
    const variance = this.b.initializer(`${scope}.running_var`, floatTensor([x.c], new Float32Array(x.c).fill(1)));
    this.runningStats.push(`${scope}.running_mean`, `${scope}.running_var`);
    const inputs = [x.name, scale, shift, mean, variance];
    if (this.mode === 'infer') return { ...x, name: this.b.op('BatchNormalization', inputs, { epsilon: 1e-5, momentum: 0.9 }) };
    // Training mode must declare the running-statistics outputs (the engine exposes them as updates).
    const [y] = this.b.opN('BatchNormalization', inputs, 3, { epsilon: 1e-5, momentum: 0.9, training_mode: 1 });
    return { ...x, name: y! };
  }

  relu(x: Feature): Feature {
    return { ...x, name: this.b.op('Relu', [x.name]) };
  }

  /** conv -> BN -> ReLU, the unit every student is made of. */
  convBnRelu(scope: string, x: Feature, cout: number, o: ConvOptions = {}): Feature {
    return this.relu(this.bn(`${scope}.bn`, this.conv(`${scope}.conv`, x, cout, o)));
  }

  /** Depthwise 3x3 (BN, ReLU) then pointwise 1x1 (BN, ReLU): a depthwise-separable conv. */
  separable(scope: string, x: Feature, cout: number, stride = 1): Feature {
    const d = this.convBnRelu(`${scope}.dw`, x, x.c, { kernel: 3, stride, group: x.c });
    return this.convBnRelu(`${scope}.pw`, d, cout, { kernel: 1 });
  }

  /**
   * MobileNetV2's inverted residual: 1x1 expand (BN, ReLU), 3x3 depthwise (BN, ReLU), 1x1 linear project
   * (BN, no ReLU); a residual Add when the shape is unchanged.
   */
  invertedResidual(scope: string, x: Feature, cout: number, stride: number, expand: number): Feature {
    const hidden = x.c * expand;
    const e = this.convBnRelu(`${scope}.expand`, x, hidden, { kernel: 1 });
    const d = this.convBnRelu(`${scope}.dw`, e, hidden, { kernel: 3, stride, group: hidden });
    const p = this.bn(`${scope}.project.bn`, this.conv(`${scope}.project.conv`, d, cout, { kernel: 1 }));
    if (stride === 1 && x.c === cout) return { ...p, name: this.b.op('Add', [x.name, p.name]) };
    return p;
  }

  maxPool(x: Feature): Feature {
    const y = this.b.op('MaxPool', [x.name], { kernel_shape: [2, 2], strides: [2, 2] });
    return { name: y, c: x.c, h: Math.floor(x.h / 2), w: Math.floor(x.w / 2) };
  }

  /** Nearest-neighbour x2 upsampling (exact integer scale: the engine's gradient is a Reshape + ReduceSum). */
  upsample2(x: Feature): Feature {
    const scales = this.b.initializer(`const.scales_x2_${this.upCount++}`, floatTensor([4], [1, 1, 2, 2]));
    const y = this.b.op('Resize', [x.name, '', scales], {
      mode: 'nearest',
      coordinate_transformation_mode: 'asymmetric',
      nearest_mode: 'floor',
    });
    return { name: y, c: x.c, h: x.h * 2, w: x.w * 2 };
  }
  private upCount = 0;

  concat(a: Feature, b: Feature): Feature {
    return { name: this.b.op('Concat', [a.name, b.name], { axis: 1 }), c: a.c + b.c, h: a.h, w: a.w };
  }

  /** The 1x1 head to one logit channel, with bias, named `logits`. */
  head(x: Feature): Feature {
    const y = this.conv('head', x, 1, { kernel: 1, bias: true });
    return y;
  }

  finish(logits: Feature, batch: number | string, opset: number, metadata: Record<string, string>): Model {
    this.b.output(logits.name, 'logits', { dataType: DataType.FLOAT, shape: [batch, 1, logits.h, logits.w] });
    return this.b.build({ opset, metadata });
  }
}
