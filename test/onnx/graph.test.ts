import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { producerMap, consumerMap, topologicalOrder, NameGen, uniqueName, cloneModel, initializerMap, removeUnusedNodes, readIntAttr, readFloatAttr } from '../../src/onnx/graph.js';
import { GraphBuilder, makeNode } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/ir.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { encodeModel } from '../../src/onnx/io.js';
import { LesionFuseError } from '../../src/util/errors.js';

function diamond() {
  const b = new GraphBuilder('diamond');
  const x = b.input('x', DataType.FLOAT, [2]);
  const a = b.op('Relu', [x], {}, { name: 'a', output: 'va' });
  const l = b.op('Neg', [a], {}, { name: 'l', output: 'vl' });
  const r = b.op('Exp', [a], {}, { name: 'r', output: 'vr' });
  b.output(b.op('Add', [l, r], {}, { name: 'sum', output: 'vs' }));
  return b.build();
}

describe('graph queries', () => {
  it('producers and consumers', () => {
    const m = diamond();
    const p = producerMap(m.graph);
    assert.equal(p.get('va')!.name, 'a');
    assert.equal(p.get('x'), undefined);
    const c = consumerMap(m.graph);
    assert.deepEqual(c.get('va')!.map((n) => n.name), ['l', 'r']);
    assert.deepEqual(c.get('x')!.map((n) => n.name), ['a']);
  });

  it('topological order puts producers first, keeping a valid order as it is', () => {
    const m = diamond();
    assert.deepEqual(topologicalOrder(m.graph).map((n) => n.name), ['a', 'l', 'r', 'sum']);
    m.graph.nodes.reverse();
    const order = topologicalOrder(m.graph).map((n) => n.name);
    const pos = (n: string) => order.indexOf(n);
    assert.ok(pos('a') < pos('l') && pos('a') < pos('r') && pos('l') < pos('sum') && pos('r') < pos('sum'));
  });

  it('a cycle is a LesionFuseError naming a node on it', () => {
    const m = diamond();
    m.graph.nodes.find((n) => n.name === 'a')!.inputs[0] = 'vs';
    assert.throws(() => topologicalOrder(m.graph), (e: unknown) => e instanceof LesionFuseError && /cycle through node '(a|l|r|sum)'/.test(e.message));
  });

  it('fresh names never collide', () => {
    const m = diamond();
    const g = new NameGen(m.graph);
    assert.equal(g.next('va'), 'va_1');
    assert.equal(g.next('va'), 'va_2');
    assert.equal(g.next('new'), 'new');
    assert.equal(g.next('new'), 'new_1');
    assert.equal(uniqueName(m.graph, 'sum'), 'sum_1');
  });

  it('cloneModel is deep: editing the copy leaves the original (and its bytes) unchanged', () => {
    const b = new GraphBuilder('c');
    const x = b.input('x', DataType.FLOAT, [2]);
    const w = b.initializer('w', floatTensor([2], [1, 2]));
    b.output(b.op('Mul', [x, w], { }), 'y');
    const m = b.build();
    const before = encodeModel(m);
    const c = cloneModel(m);
    (c.graph.initializers[0]!.values as Float32Array)[0] = 42;
    c.graph.nodes[0]!.inputs[0] = 'zzz';
    c.metadata.k = 'v';
    c.graph.inputs[0]!.shape![0] = 7;
    assert.deepEqual(Buffer.from(encodeModel(m)), Buffer.from(before));
    assert.equal(initializerMap(m.graph).get('w')!.values[0], 1);
  });

  it('removeUnusedNodes drops dead branches and unread initializers', () => {
    const m = diamond();
    m.graph.nodes.push(makeNode('Sigmoid', ['va'], ['dead'], {}, { name: 'dead' }));
    m.graph.initializers.push({ name: 'unused', ...floatTensor([1], [0]) });
    assert.equal(removeUnusedNodes(m.graph), 1);
    assert.equal(m.graph.initializers.length, 0);
  });
});

describe('attribute readers', () => {
  it('read ints and floats with defaults, accepting an INT where ONNX defines a FLOAT', () => {
    const n = makeNode('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], { epsilon: { type: 'int', value: 1 }, training_mode: 0 });
    assert.equal(readIntAttr(n, 'training_mode', 7), 0);
    assert.equal(readIntAttr(n, 'spatial', 1), 1);
    assert.equal(readFloatAttr(n, 'epsilon', 1e-5), 1);
    assert.equal(readFloatAttr(n, 'momentum', 0.9), 0.9);
  });
});
