import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkModel, assertValidModel } from '../../src/onnx/check.js';
import { GraphBuilder, makeNode } from '../../src/onnx/builder.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { LesionFuseError } from '../../src/util/errors.js';

function good(): Model {
  const b = new GraphBuilder('ok');
  const x = b.input('x', DataType.FLOAT, [1, 2]);
  const w = b.initializer('w', floatTensor([1, 2], [1, 2]));
  const y = b.op('Mul', [x, w], {}, { name: 'mul', output: 'm' });
  b.output(b.op('Relu', [y], {}, { name: 'relu', output: 'y' }));
  return b.build();
}

const errors = (m: Model) => checkModel(m).filter((i) => i.severity === 'error').map((i) => i.message);

describe('checkModel', () => {
  it('finds nothing wrong with a sound model', () => {
    assert.deepEqual(checkModel(good()), []);
  });

  it('dangling input / missing initializer', () => {
    const m = good();
    m.graph.initializers = [];
    const e = errors(m);
    assert.equal(e.length, 1);
    assert.match(e[0]!, /node 'mul' \(Mul\) reads 'w', which nothing defines/);
    assert.equal(checkModel(m)[0]!.node, 'mul');
  });

  it('duplicate value names, duplicate initializers, duplicate node names', () => {
    const m = good();
    m.graph.nodes[1]!.outputs[0] = 'm';
    m.graph.outputs[0]!.name = 'm';
    assert.ok(errors(m).some((e) => /value 'm' is defined twice/.test(e)));
    const m2 = good();
    m2.graph.initializers.push({ ...floatTensor([1], [0]), name: 'w' });
    assert.ok(errors(m2).some((e) => /initializer 'w' is defined twice/.test(e)));
    const m3 = good();
    m3.graph.nodes[1]!.name = 'mul';
    const w = checkModel(m3).filter((i) => i.severity === 'warning');
    assert.ok(w.some((i) => /node name 'mul' is used by 2 nodes/.test(i.message)));
  });

  it('an output nobody produces', () => {
    const m = good();
    m.graph.outputs.push({ name: 'ghost', dataType: DataType.FLOAT, shape: [1] });
    assert.ok(errors(m).some((e) => /graph output 'ghost' is produced by no node/.test(e)));
  });

  it('a cycle', () => {
    const m = good();
    m.graph.nodes[0]!.inputs[0] = 'y';
    assert.ok(errors(m).some((e) => /cycle/.test(e)));
  });

  it('nodes out of topological order are a warning, tensors with the wrong number of values an error', () => {
    const m = good();
    m.graph.nodes.reverse();
    assert.deepEqual(errors(m), []);
    assert.ok(checkModel(m).some((i) => i.severity === 'warning' && /topological order/.test(i.message)));
    const m2 = good();
    m2.graph.initializers[0]!.values = new Float32Array(3);
    assert.ok(errors(m2).some((e) => /has 3 values but dims \[1, 2\] need 2/.test(e)));
  });

  it('undeclared domains; subgraphs see outer values', () => {
    const m = good();
    m.graph.nodes.push(makeNode('Custom', ['y'], ['z'], {}, { name: 'custom', domain: 'com.example' }));
    assert.ok(errors(m).some((e) => /domain 'com.example'/.test(e)));
    const outer = good();
    const body = new GraphBuilder('then');
    body.output(body.op('Neg', ['m']), 'neg');
    const elseB = new GraphBuilder('else');
    elseB.output(elseB.op('Identity', ['m']), 'idm');
    outer.graph.initializers.push({ ...floatTensor([], [1]), name: 'cond', dataType: DataType.BOOL, values: new Uint8Array([1]) });
    outer.graph.nodes.push(makeNode('If', ['cond'], ['branch'], { then_branch: body.graph, else_branch: elseB.graph }, { name: 'if' }));
    assert.deepEqual(errors(outer), []);
  });

  it('assertValidModel throws one line naming the file', () => {
    const m = good();
    m.graph.initializers = [];
    m.graph.outputs.push({ name: 'ghost', dataType: DataType.FLOAT, shape: [1] });
    assert.throws(
      () => assertValidModel(m, '/data/model.onnx'),
      (e: unknown) => e instanceof LesionFuseError && /^\/data\/model\.onnx: invalid ONNX model: .* \(and 1 more\)$/.test(e.message),
    );
    assert.doesNotThrow(() => assertValidModel(good()));
  });
});
