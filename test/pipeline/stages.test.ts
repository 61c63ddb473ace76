import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validatePipelineConfig } from '../../src/pipeline/config.js';
import { quantizeStage, rewriteStage, evaluateStage } from '../../src/pipeline/stages.js';
import { readModel } from '../../src/onnx/io.js';
import { packageRoot } from '../../src/util/paths.js';
import { setLogLevel } from '../../src/util/log.js';
import { writeTinySegModel } from '../package/helpers.js';

const fixtures = join(packageRoot(), 'test/fixtures');

test('the stage bindings: rewrite and INT8 quantization produce models the evaluation scores', async () => {
  process.env.LESIONFUSE_PROGRESS = '0';
  setLogLevel('quiet');
  const dir = mkdtempSync(join(tmpdir(), 'lf-stages-'));
  try {
    const model = writeTinySegModel(join(dir, 'm.onnx'), { size: 32, weights: [-1, -1, -1], bias: 2 });
    const cfg = validatePipelineConfig({
      name: 's', teacher: { model: 'm.onnx' }, profiles: ['cpu-1t'], dataset: { path: fixtures, limit: 2 },
      rewrite: { passes: ['remove-identity'] },
      quantize: { calibration: { path: join(fixtures, 'images'), limit: 2 }, gate: null },
    }, 'p.yaml', dir);
    for (const d of ['rw', 'q', 'e']) mkdirSync(join(dir, d));
    const rw = await rewriteStage(cfg, model, join(dir, 'rw'));
    assert.match(rw.result.summary, /^rewrite: remove-identity \(nodes 1 -> 1; parity passed/);
    const q = await quantizeStage(cfg, rw.result.modelPath, join(dir, 'q'));
    for (const f of q.files) assert.ok(existsSync(join(dir, 'q', f)), f);
    assert.match(q.result.summary, /^quantize: INT8 QDQ .*minmax calibration on 2 images/);
    const qm = await readModel(q.result.modelPath);
    assert.ok(qm.graph.nodes.some((n) => n.opType === 'QuantizeLinear') && qm.graph.nodes.some((n) => n.opType === 'DequantizeLinear'));
    const ev = await evaluateStage(cfg, q.result.modelPath, 'cpu-1t', join(dir, 'e'));
    assert.equal(ev.result.nImages, 2);
    assert.ok(ev.result.dice >= 0 && ev.result.dice <= 1);
  } finally {
    setLogLevel('info');
    rmSync(dir, { recursive: true, force: true });
  }
});
