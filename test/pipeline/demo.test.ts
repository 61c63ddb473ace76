import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, demoConfig } from '../../src/pipeline/demo.js';
import { verifyBundle } from '../../src/package/bundle.js';
import { listBundledModels } from '../../src/models.js';
import { setLogLevel } from '../../src/util/log.js';
import type { TradeoffReport } from '../../src/report/types.js';

const present = listBundledModels().filter((m) => m.present).map((m) => m.alias);

test('demo config: a missing bundled model is dropped with a note, fast mode shortens it', () => {
  const { value, skipped } = demoConfig({ fast: true, models: { teacher: null, student: 'x.onnx' } });
  assert.equal(value.teacher, undefined);
  assert.equal(skipped.length, 0); // an explicit null is the caller's choice, not a missing file
  assert.equal(value.dataset.limit, 2);
  assert.equal(value.benchmark?.runs, 3);
  assert.ok(value.notes!.some((n) => /smoke test/.test(n)));
  if (present.length === 0) {
    assert.throws(() => demoConfig({ fast: false }), /nothing to demo: neither default:teacher nor default:student/);
    return;
  }
  const withDefaults = demoConfig({ fast: false });
  for (const alias of ['teacher', 'student']) {
    const missing = !present.includes(`default:${alias}`);
    assert.equal(withDefaults.skipped.some((s) => s.includes(`default:${alias}`)), missing);
  }
});

test('the demo runs offline on the bundled assets (fast mode) and ends with a report and a verified bundle', { skip: present.length === 0 ? 'no bundled model (models/teacher/teacher.onnx, models/student/student.onnx) in this checkout' : false }, async () => {
  process.env.LESIONFUSE_PROGRESS = '0';
  setLogLevel('quiet');
  const dir = mkdtempSync(join(tmpdir(), 'lf-demo-'));
  try {
    const r = await runDemo({ out: dir, fast: true });
    assert.deepEqual(r.failed, [], JSON.stringify(r.failed));
    assert.ok(r.report && existsSync(r.report.html));
    const rep = JSON.parse(readFileSync(r.report.json, 'utf8')) as TradeoffReport;
    assert.deepEqual(rep.profiles.map((p) => p.profile), ['cpu-1t', 'cpu-2t']);
    assert.ok(rep.candidates.length >= 3);
    assert.ok(rep.candidates.every((c) => c.accuracy && c.accuracy.nImages === 2));
    assert.ok(rep.profiles.every((p) => p.pareto.length >= 1));
    assert.ok(r.bundle && r.bundle.tarball);
    const v = await verifyBundle(r.bundle.tarball);
    assert.ok(v.sample.maskAgreement >= 0.99);
  } finally {
    setLogLevel('info');
    rmSync(dir, { recursive: true, force: true });
  }
});
