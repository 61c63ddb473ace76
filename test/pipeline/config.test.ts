import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipelineConfig, validatePipelineConfig, PipelineConfigError, candidateIds } from '../../src/pipeline/config.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'lf-cfg-'));
  try {
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 't.onnx'), 'x');
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const base = () => ({
  name: 'unit',
  teacher: { model: 't.onnx' },
  students: [{ name: 'ultralight', epochs: 1 }],
  profiles: ['cpu-1t'],
  dataset: { path: 'data', split: 'test' },
});

/** The problems of a config, or [] when it is valid. */
function problems(dir: string, value: unknown): string[] {
  try {
    validatePipelineConfig(value, 'p.yaml', dir);
    return [];
  } catch (err) {
    assert.ok(err instanceof PipelineConfigError, String(err));
    assert.ok(!err.message.includes('\n'), 'one line');
    return err.problems;
  }
}

test('a valid config resolves paths relative to the config file and lists its candidates', () => {
  withDir((dir) => {
    const cfg = validatePipelineConfig({ ...base(), quantize: { calibration: { path: 'data', split: 'train' } } }, 'p.yaml', dir);
    assert.equal(cfg.teacherPath, join(dir, 't.onnx'));
    assert.equal(cfg.dataset.path, join(dir, 'data'));
    assert.equal(cfg.outDir, join(dir, 'lesionfuse-out', 'unit'));
    assert.equal(cfg.benchmark.runs, 30);
    assert.deepEqual(candidateIds(cfg), ['teacher-fp32', 'teacher-int8', 'ultralight-fp32', 'ultralight-int8']);
    const withRewrite = validatePipelineConfig({ ...base(), rewrite: {} }, 'p.yaml', dir);
    assert.deepEqual(candidateIds(withRewrite), ['teacher-fp32', 'teacher-rewritten', 'ultralight-fp32', 'ultralight-rewritten']);
  });
});

test('each kind of problem is named with its path and the allowed values', () => {
  withDir((dir) => {
    assert.deepEqual(problems(dir, { ...base(), teacher: { model: 'default:nope' } }), [
      "teacher.model: unknown model name 'default:nope'; allowed: default:teacher, default:student or a path to an .onnx file",
    ]);
    assert.deepEqual(problems(dir, { ...base(), students: [{ name: 'resnet' }] }), ["students[0].name: unknown student 'resnet'; allowed: unet-small, mobile-unet, ultralight"]);
    assert.match(problems(dir, { ...base(), quantize: { calibrator: 'mean', calibration: { path: 'data' } } })[0]!, /^quantize\.calibrator: must be one of "minmax"\|"percentile"\|"entropy"$/);
    assert.match(problems(dir, { ...base(), inputSize: '190x256' })[0]!, /^inputSize: H and W must be positive multiples of 32 .* got 190x256; e\.g\. 192x256$/);
    assert.deepEqual(problems(dir, { ...base(), dataset: { path: 'nowhere' } }), [`dataset.path: missing folder ${join(dir, 'nowhere')}`]);
    assert.deepEqual(problems(dir, { ...base(), teacher: { model: 'missing.onnx' } }), [`teacher.model: missing file ${join(dir, 'missing.onnx')}`]);
    assert.match(problems(dir, { ...base(), profiles: ['cpu-9t'] })[0]!, /^profiles\[0\]: unknown profile 'cpu-9t'; allowed: .*cpu-1t.*cpu-2t/);
    assert.match(problems(dir, { ...base(), rewrite: { passes: ['fold-everything'] } })[0]!, /^rewrite\.passes\[0\]: unknown pass 'fold-everything'; allowed: .*fold-batchnorm/);
    assert.deepEqual(problems(dir, { ...base(), benchmark: { runs: 0 } }), ['benchmark.runs: Too small: expected number to be >=1']);
    assert.deepEqual(problems(dir, { ...base(), colour: 'red' }), ["unknown key 'colour'"]);
    assert.match(problems(dir, { ...base(), select: { rule: 'named', candidate: 'x' } })[0]!, /^select\.candidate: unknown candidate 'x'; allowed: teacher-fp32, ultralight-fp32$/);
    assert.match(problems(dir, { ...base(), quantize: { calibration: { path: 'data', split: 'test' } } })[0]!, /calibration always uses the train split.*allowed: train$/);
  });
});

test('all problems are listed at once, before any work', () => {
  withDir((dir) => {
    const p = problems(dir, { ...base(), teacher: { model: 'default:nope' }, students: [{ name: 'resnet' }], inputSize: '100x100', profiles: ['gpu-9000'], dataset: { path: 'nowhere' } });
    assert.equal(p.length, 5, p.join('\n'));
    // Schema errors (a wrong type, a wrong option value) do not hide the other checks.
    const q = problems(dir, { ...base(), benchmark: { runs: 'many' }, quantize: { calibrator: 'avg', calibration: { path: 'nowhere' } }, students: [{ name: 'resnet' }] });
    assert.deepEqual(q.map((x) => x.split(':')[0]).sort(), ['benchmark.runs', 'quantize.calibration.path', 'quantize.calibrator', 'students[0].name']);
  });
});

test('the YAML file reader names the file for missing, non-YAML and non-mapping configs', () => {
  withDir((dir) => {
    assert.throws(() => loadPipelineConfig(join(dir, 'none.yaml')), /none\.yaml: no such config file/);
    writeFileSync(join(dir, 'bad.yaml'), 'name: [unclosed\n');
    assert.throws(() => loadPipelineConfig(join(dir, 'bad.yaml')), /bad\.yaml: not valid YAML/);
    writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
    assert.throws(() => loadPipelineConfig(join(dir, 'list.yaml')), /list\.yaml: the config must be a YAML mapping/);
    writeFileSync(join(dir, 'ok.yaml'), 'name: unit\nteacher: { model: t.onnx }\nprofiles: [cpu-1t]\ndataset: { path: data }\n');
    assert.equal(loadPipelineConfig(join(dir, 'ok.yaml')).name, 'unit');
  });
});
