import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, truncateSync, copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from '../../src/util/ort.js';
import { decodeModel, encodeModel, readModel, writeModel, checkProtobufSize, readModelMetadata } from '../../src/onnx/io.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { floatTensor, int64Tensor, tensorOf, float16ToFloat32, float32ToFloat16 } from '../../src/onnx/tensor.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { FIXTURES, runModel, tempDir, seeded, pb } from './helpers.js';

const fixture = (name: string) => join(FIXTURES, name);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function ones(dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(1), dims);
}

describe('files written by the ONNX C++ serializer (fixtures made once with onnx 1.23)', () => {
  it('round-trips tiny_conv.onnx byte for byte (raw_data, typed fields, IR 10 metadata, a local function)', () => {
    const bytes = readFileSync(fixture('tiny_conv.onnx'));
    const model = decodeModel(bytes);
    assert.ok(sameBytes(encodeModel(model), bytes));
  });

  it('decodes every tensor encoding to the values onnx wrote', async () => {
    const model = decodeModel(readFileSync(fixture('tiny_conv.onnx')));
    const t = Object.fromEntries(model.graph.initializers.map((i) => [i.name, i]));
    assert.deepEqual(Array.from(t['conv1.bias']!.values as ArrayLike<number>), [0.5, -0.25, 0.125, 1.0]);
    assert.deepEqual(Array.from(t['t_int8']!.values as ArrayLike<number>), [-128, -1, 0, 127]);
    assert.deepEqual(Array.from(t['t_uint8']!.values as ArrayLike<number>), [0, 128, 255]);
    assert.deepEqual(Array.from(t['t_int32']!.values as ArrayLike<number>), [-70000, 2147483647]);
    assert.deepEqual(Array.from(t['t_int64']!.values as BigInt64Array), [-5n, 0n, 9007199254740993n]);
    assert.deepEqual(Array.from(t['t_double']!.values as ArrayLike<number>), [1 / 3, -2.5]);
    assert.deepEqual(Array.from(t['t_bool']!.values as ArrayLike<number>), [1, 0, 1]);
    assert.deepEqual(Array.from(t['r_int64']!.values as BigInt64Array), [-3n, 7n]);
    assert.deepEqual(Array.from(float16ToFloat32(t['r_fp16']!.values as Uint16Array)), [1.5, -0]);
    assert.deepEqual(Array.from(t['r_int8']!.values as ArrayLike<number>), [-1, 5]);
    assert.equal(t['conv2.weight']!.dataType, DataType.FLOAT16);
    // onnxruntime reads the same file: its Identity outputs must equal what we decoded.
    const out = await runModel(fixture('tiny_conv.onnx'), { image: ones([1, 3, 8, 8]) });
    for (const name of ['t_int8', 't_uint8', 't_int32', 't_double', 'r_int8']) {
      assert.deepEqual(Array.from(out[`${name}_out`]!.data as ArrayLike<number>), Array.from(t[name]!.values as ArrayLike<number>), name);
    }
    assert.deepEqual(Array.from(out['t_int64_out']!.data as BigInt64Array), Array.from(t['t_int64']!.values as BigInt64Array));
    assert.deepEqual(Array.from(out['t_bool_out']!.data as ArrayLike<boolean | number>, Number), [1, 0, 1]);
    const fp16 = out['r_fp16_out']!.data as unknown as ArrayBufferView;
    assert.deepEqual(Array.from(new Uint16Array(fp16.buffer, fp16.byteOffset, 2)), Array.from(t['r_fp16']!.values as Uint16Array));
  });

  it('keeps newer fields through an edit, and the edited model still runs the same', async () => {
    const bytes = readFileSync(fixture('tiny_conv.onnx'));
    const model = decodeModel(bytes);
    const conv2 = model.graph.nodes.find((n) => n.name === 'conv2')!;
    conv2.name = 'conv2_renamed';
    const edited = encodeModel(model);
    assert.ok(!sameBytes(edited, bytes));
    const again = decodeModel(edited);
    assert.ok(again.graph.nodes.some((n) => n.name === 'conv2_renamed'));
    // The model-local function (ModelProto field 25) and the IR 10 metadata_props of nodes and graph survive verbatim.
    const text = Buffer.from(edited).toString('latin1');
    for (const s of ['AddOne', 'origin', 'graph.note', 'IR 10 graph metadata', 'DATA_CHANNEL']) assert.ok(text.includes(s), s);
    // Only the name changed: the file grows by exactly '_renamed' (the length prefixes keep their size).
    assert.equal(edited.length, bytes.length + '_renamed'.length);
    const a = await runModel(bytes, { image: ones([1, 3, 8, 8]) });
    const b = await runModel(edited, { image: ones([1, 3, 8, 8]) });
    assert.deepEqual(Array.from(b['logits']!.data as Float32Array), Array.from(a['logits']!.data as Float32Array));
  });

  it('reads external data relative to the model and writes the reference back byte for byte', async () => {
    const model = await readModel(fixture('tiny_external.onnx'));
    const w = model.graph.initializers.find((t) => t.name === 'w')!;
    assert.equal(w.values.length, 54);
    assert.equal(w.external?.location, 'tiny_external.onnx.data');
    assert.ok(sameBytes(encodeModel(model), readFileSync(fixture('tiny_external.onnx'))));
    // Values match what onnxruntime computes from the same files: conv of ones = sum of each filter + bias.
    const out = await runModel(fixture('tiny_external.onnx'), { image: ones([1, 3, 8, 8]) });
    const wv = w.values as Float32Array;
    const bv = model.graph.initializers.find((t) => t.name === 'b')!.values as Float32Array;
    // Centre pixel (4,4) of channel 0 sees the whole 3x3 kernel.
    const expected = wv.slice(0, 27).reduce((s, x) => s + x, 0) + bv[0]!;
    assert.ok(Math.abs((out['logits']!.data as Float32Array)[4 * 8 + 4]! - expected) < 1e-5);
  });
});

function builtModel(): Model {
  const b = new GraphBuilder('built');
  const x = b.input('x', DataType.FLOAT, [1, 4]);
  const w = b.initializer('w', floatTensor([4, 3], seeded(12, 3)));
  const bias = b.initializer('bias16', tensorOf(DataType.FLOAT16, [3], [0.5, -1, 2]));
  const y = b.op('MatMul', [x, w]);
  const y2 = b.op('Add', [y, b.op('Cast', [bias], { to: DataType.FLOAT })]);
  const shape = b.initializer('shape', int64Tensor([2], [3, 1]));
  b.output(b.op('Reshape', [y2, shape]), 'y');
  const i8 = b.initializer('i8', tensorOf(DataType.INT8, [3], [-128, 0, 127]));
  const u8 = b.initializer('u8', tensorOf(DataType.UINT8, [2], [0, 255]));
  const i32 = b.initializer('i32', tensorOf(DataType.INT32, [2], [-2147483648, 5]));
  b.output(b.op('Identity', [i8]), 'i8_out');
  b.output(b.op('Identity', [u8]), 'u8_out');
  b.output(b.op('Identity', [i32]), 'i32_out');
  return b.build({ opset: 17, metadata: { 'lesionfuse.model_name': 'built' } });
}

describe('models built in the tests', () => {
  it('encode, decode and encode again to the same bytes, and run in onnxruntime with the expected numbers', async () => {
    const model = builtModel();
    const bytes = encodeModel(model);
    const decoded = decodeModel(bytes);
    assert.ok(sameBytes(encodeModel(decoded), bytes));
    const xv = new Float32Array([1, 2, 3, 4]);
    const out = await runModel(bytes, { x: new ort.Tensor('float32', xv, [1, 4]) });
    const w = seeded(12, 3);
    const bias = float16ToFloat32(float32ToFloat16([0.5, -1, 2]));
    const expected = [0, 1, 2].map((j) => xv.reduce((s, xi, i) => s + xi * w[i * 3 + j]!, 0) + bias[j]!);
    const got = Array.from(out['y']!.data as Float32Array);
    assert.deepEqual(out['y']!.dims, [3, 1]);
    got.forEach((g, j) => assert.ok(Math.abs(g - expected[j]!) < 1e-5, `y[${j}] ${g} vs ${expected[j]}`));
    assert.deepEqual(Array.from(out['i8_out']!.data as Int8Array), [-128, 0, 127]);
    assert.deepEqual(Array.from(out['u8_out']!.data as Uint8Array), [0, 255]);
    assert.deepEqual(Array.from(out['i32_out']!.data as Int32Array), [-2147483648, 5]);
  });

  it('writes and reads external data in a temp folder; onnxruntime loads the pair', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const model = builtModel();
      const path = join(dir, 'm.onnx');
      await writeModel(model, path, { externalData: { sizeThreshold: 16 } });
      assert.ok(existsSync(join(dir, 'm.onnx.data')));
      const back = await readModel(path);
      const w = back.graph.initializers.find((t) => t.name === 'w')!;
      assert.equal(w.external?.location, 'm.onnx.data');
      assert.deepEqual(Array.from(w.values as Float32Array), Array.from(seeded(12, 3)));
      // Small tensors (< 16 bytes) stay inline.
      assert.equal(back.graph.initializers.find((t) => t.name === 'i8')!.external, undefined);
      const out = await runModel(path, { x: new ort.Tensor('float32', new Float32Array([1, 2, 3, 4]), [1, 4]) });
      const inline = await runModel(model, { x: new ort.Tensor('float32', new Float32Array([1, 2, 3, 4]), [1, 4]) });
      assert.deepEqual(Array.from(out['y']!.data as Float32Array), Array.from(inline['y']!.data as Float32Array));
      // Re-written inline, the model no longer needs the data file.
      await writeModel(back, join(dir, 'inline.onnx'), { externalData: false });
      const inl = await readModel(join(dir, 'inline.onnx'));
      assert.ok(inl.graph.initializers.every((t) => !t.external));
      // No temporary files are left behind by the atomic writes.
      assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
    } finally {
      cleanup();
    }
  });
});

describe('tensors of every numeric type, in raw_data and in the typed fields', () => {
  const cases: [DataType, number[] | bigint[]][] = [
    [DataType.FLOAT, [1.5, -0, 3.4e38, -1e-40]],
    [DataType.FLOAT16, [0.5, -2, 65504, 2 ** -24]],
    [DataType.DOUBLE, [1 / 3, -1e300]],
    [DataType.INT8, [-128, -1, 0, 127]],
    [DataType.UINT8, [0, 1, 255]],
    [DataType.INT16, [-32768, 32767]],
    [DataType.UINT16, [0, 65535]],
    [DataType.INT32, [-2147483648, 2147483647, -1]],
    [DataType.UINT32, [0, 4294967295]],
    [DataType.INT64, [-9223372036854775808n, 9223372036854775807n, -1n]],
    [DataType.UINT64, [0n, 18446744073709551615n]],
    [DataType.BOOL, [1, 0, 1]],
  ];
  function model() {
    const b = new GraphBuilder('types');
    b.input('unused', DataType.FLOAT, [1]);
    for (const [dt, values] of cases) {
      const t = b.initializer(`t${dt}`, tensorOf(dt, [values.length], values));
      b.output(b.op('Identity', [t]), `out${dt}`);
    }
    return b.build();
  }

  for (const storage of ['raw', 'typed'] as const) {
    it(`${storage}: onnxruntime reads back exactly the values written, and decode -> encode is byte for byte`, async () => {
      const bytes = encodeModel(model(), { tensorStorage: storage });
      assert.ok(sameBytes(encodeModel(decodeModel(bytes)), bytes));
      const decoded = decodeModel(bytes);
      const out = await runModel(bytes, { unused: new ort.Tensor('float32', new Float32Array(1), [1]) });
      for (const [dt] of cases) {
        const expected = model().graph.initializers.find((t) => t.name === `t${dt}`)!.values;
        const ours = decoded.graph.initializers.find((t) => t.name === `t${dt}`)!.values;
        assert.deepEqual(Array.from(ours as ArrayLike<number>), Array.from(expected as ArrayLike<number>), `decoded ${dt}`);
        const o = out[`out${dt}`]!;
        const data = o.data as unknown as ArrayBufferView;
        const theirs = dt === DataType.FLOAT16 ? new Uint16Array(data.buffer, data.byteOffset, expected.length) : (o.data as ArrayLike<number>);
        assert.deepEqual(Array.from(theirs as ArrayLike<number | boolean>, (v) => (typeof v === 'boolean' ? Number(v) : v)), Array.from(expected as ArrayLike<number>), `onnxruntime ${dt}`);
      }
    });
  }

  it('typed storage really uses the typed fields and is kept on re-encode', () => {
    const raw = encodeModel(model(), { tensorStorage: 'raw' });
    const typed = encodeModel(model(), { tensorStorage: 'typed' });
    assert.ok(!sameBytes(raw, typed));
    // A tensor read from typed fields keeps that storage on a plain re-encode ('keep').
    const again = encodeModel(decodeModel(typed));
    assert.ok(sameBytes(again, typed));
  });
});

/** A hand-encoded IR 10/11 model with fields the ONNX 1.10 schema lacks, at every level. */
function handModel(): { bytes: Uint8Array; unknown: number[][] } {
  const kv = (k: string, v: string) => [...pb.str(1, k), ...pb.str(2, v)];
  const tensorType = (dims: number[]) => pb.msg(1, pb.int(1, 1), pb.msg(2, ...dims.map((d) => pb.msg(1, pb.int(1, d)))));
  const nodeOverload = pb.str(8, '');
  const nodeMeta = pb.msg(9, kv('node.key', 'node.value'));
  const nodeUnknown = pb.int(77, 5);
  const tensorMeta = pb.msg(16, kv('tensor.key', 'tensor.value'));
  const graphMeta = pb.msg(16, kv('graph.key', 'graph.value'));
  const valueMeta = pb.msg(4, kv('value.key', 'value.value'));
  const modelUnknown = pb.int(99, 42);
  const modelUnknownLen = pb.bytes(1000, [1, 2, 3, 250]);
  const weight = new Uint8Array(new Float32Array([1, -2, 3]).buffer);
  const graph = pb.msg(
    7,
    pb.msg(1, pb.str(1, 'x'), pb.str(1, 'w'), pb.str(2, 'y'), pb.str(3, 'add0'), pb.str(4, 'Add'), nodeOverload, nodeMeta, nodeUnknown),
    pb.str(2, 'hand'),
    pb.msg(5, pb.int(1, 3), pb.int(2, 1), pb.str(8, 'w'), pb.bytes(9, Array.from(weight)), tensorMeta),
    pb.msg(11, pb.str(1, 'x'), pb.msg(2, tensorType([3])), valueMeta),
    pb.msg(12, pb.str(1, 'y'), pb.msg(2, tensorType([3]))),
    graphMeta,
  );
  const bytes = new Uint8Array([...pb.int(1, 10), ...pb.str(2, 'hand-encoder'), ...graph, ...pb.msg(8, pb.str(1, ''), pb.int(2, 17)), ...pb.msg(14, kv('k', 'v')), ...modelUnknown, ...modelUnknownLen]);
  return { bytes, unknown: [nodeOverload, nodeMeta, nodeUnknown, tensorMeta, valueMeta, graphMeta, modelUnknown, modelUnknownLen] };
}

function indexOfBytes(hay: Uint8Array, needle: number[]): number {
  return Buffer.from(hay).indexOf(Buffer.from(needle));
}

describe('fields the ONNX 1.10 schema does not know', () => {
  it('survive decode -> encode byte for byte', () => {
    const { bytes } = handModel();
    assert.ok(sameBytes(encodeModel(decodeModel(bytes)), bytes));
  });

  it('survive decode -> rename a node -> encode, in their original order, and the model still runs', async () => {
    const { bytes, unknown } = handModel();
    const model = decodeModel(bytes);
    model.graph.nodes[0]!.name = 'renamed_add';
    const edited = encodeModel(model);
    const positions = unknown.map((u) => indexOfBytes(edited, u));
    assert.ok(positions.every((p) => p >= 0), `all unknown fields present: ${positions}`);
    // Node fields, then tensor, value and graph fields, then model fields: the order they were written in.
    assert.ok(positions[0]! < positions[1]! && positions[1]! < positions[2]! && positions[2]! < positions[3]!);
    assert.ok(positions[3]! < positions[4]! && positions[4]! < positions[5]! && positions[5]! < positions[6]! && positions[6]! < positions[7]!);
    assert.equal(decodeModel(edited).graph.nodes[0]!.name, 'renamed_add');
    assert.equal(edited.length, bytes.length + 'renamed_add'.length - 'add0'.length);
    const out = await runModel(edited, { x: new ort.Tensor('float32', new Float32Array([1, 1, 1]), [3]) });
    assert.deepEqual(Array.from(out['y']!.data as Float32Array), [2, -1, 4]);
  });
});

describe('external data left unloaded', () => {
  it('round-trips the references unchanged, and refuses to write the data elsewhere without touching an existing file', async () => {
    const model = await readModel(fixture('tiny_external.onnx'), { loadExternalData: false });
    assert.equal(model.graph.initializers[0]!.values.length, 0);
    assert.ok(sameBytes(encodeModel(model), readFileSync(fixture('tiny_external.onnx'))));
    const { dir, cleanup } = tempDir();
    try {
      const out = join(dir, 'out.onnx');
      writeFileSync(out, 'previous good output');
      await assert.rejects(writeModel(model, out), /external data was not loaded/);
      assert.equal(readFileSync(out, 'utf8'), 'previous good output');
      assert.deepEqual(readdirSync(dir), ['out.onnx']);
    } finally {
      cleanup();
    }
  });
});

describe('bad model files are refused in one line naming the file', () => {
  const expectRefusal = async (path: string, pattern: RegExp) => {
    await assert.rejects(readModel(path), (err: unknown) => {
      assert.ok(err instanceof LesionFuseError, String(err));
      assert.ok(err.message.includes(path), `names the file: ${err.message}`);
      assert.ok(!err.message.includes('\n'), 'one line');
      assert.match(err.message, pattern);
      return true;
    });
  };

  it('zero bytes, not a protobuf, truncated, no graph, missing path, a directory', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const empty = join(dir, 'empty.onnx');
      writeFileSync(empty, '');
      await expectRefusal(empty, /empty file/);
      const text = join(dir, 'text.onnx');
      writeFileSync(text, '{"this": "is json, not an ONNX model"}\n');
      await expectRefusal(text, /not an ONNX model/);
      const truncated = join(dir, 'truncated.onnx');
      const full = readFileSync(fixture('tiny_conv.onnx'));
      writeFileSync(truncated, full.subarray(0, Math.floor(full.length / 2)));
      await expectRefusal(truncated, /truncated/);
      const nograph = join(dir, 'nograph.onnx');
      writeFileSync(nograph, new Uint8Array([...pb.int(1, 8), ...pb.msg(8, pb.str(1, ''), pb.int(2, 17))]));
      await expectRefusal(nograph, /no graph/);
      await expectRefusal(join(dir, 'missing.onnx'), /no such file/);
      await expectRefusal(dir, /directory/);
    } finally {
      cleanup();
    }
  });

  it('external data missing or shorter than declared, naming the data file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const model = join(dir, 'tiny_external.onnx');
      copyFileSync(fixture('tiny_external.onnx'), model);
      await expectRefusal(model, /external data file 'tiny_external\.onnx\.data'.*missing/);
      copyFileSync(fixture('tiny_external.onnx.data'), join(dir, 'tiny_external.onnx.data'));
      truncateSync(join(dir, 'tiny_external.onnx.data'), 100);
      await expectRefusal(model, /'tiny_external\.onnx\.data' is 100 bytes, shorter than declared/);
    } finally {
      cleanup();
    }
  });

  it('models over protobuf’s 2 GiB limit are refused with what to do instead', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const big = join(dir, 'big.onnx');
      writeFileSync(big, '');
      truncateSync(big, 2 ** 31 + 10); // sparse: takes no disk
      await expectRefusal(big, /over protobuf's 2 GiB limit.*external data/);
      assert.throws(() => checkProtobufSize(2 ** 31, 'out.onnx', 'write'), /externalData: true/);
      assert.doesNotThrow(() => checkProtobufSize(2 ** 31 - 1, 'out.onnx', 'write'));
    } finally {
      cleanup();
    }
  });

  it('corrupted bytes give a LesionFuseError or a model every later step can handle, never a crash', async () => {
    const { inferShapes } = await import('../../src/onnx/shape.js');
    const { checkModel } = await import('../../src/onnx/check.js');
    const base = readFileSync(fixture('tiny_conv.onnx'));
    let s = 2024;
    const rnd = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 2 ** 32;
    };
    let refused = 0;
    for (let it = 0; it < 150; it++) {
      const b = Buffer.from(base);
      for (let j = 0; j < 1 + Math.floor(rnd() * 3); j++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      let model: Model;
      try {
        model = decodeModel(b, { path: 'fuzz.onnx' });
      } catch (err) {
        assert.ok(err instanceof LesionFuseError, `iteration ${it}: ${String(err)}`);
        assert.ok(!err.message.includes('\n'));
        refused++;
        continue;
      }
      encodeModel(model);
      inferShapes(model);
      checkModel(model);
    }
    assert.ok(refused > 20 && refused < 150, `refused ${refused}`);
  });

  it('readModelMetadata reads only the metadata', async () => {
    const meta = await readModelMetadata(fixture('tiny_conv.onnx'));
    assert.equal(meta.metadata['lesionfuse.input_size'], '8x8');
    assert.equal(meta.irVersion, 10);
  });
});
