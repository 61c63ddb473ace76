import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeReport, currentEnvironment, renderMarkdown } from '../../src/report/render.js';
import type { CandidateSummary, TradeoffReport } from '../../src/report/types.js';
import { parseXml } from './xmlcheck.js';

function cand(id: string, dice: number | null, extra: Partial<CandidateSummary> = {}): CandidateSummary {
  return {
    id, label: id, family: id.split('-')[0]!, precision: id.endsWith('int8') ? 'int8' : 'fp32', derivation: [],
    modelPath: `/m/${id}.onnx`, fileSizeBytes: 2 ** 20, parameters: 123456, multiplyAdds: null,
    accuracy: dice === null ? null : { nImages: 10, dice, diceCi95: [dice - 0.02, dice + 0.01], iou: dice - 0.1, thresholdedJaccard: dice - 0.2, hd95: 7.5, dataset: 'made-up' },
    overlays: [], ...extra,
  };
}

function madeUp(): TradeoffReport {
  const speed = (ms: number) => ({ status: 'measured' as const, speed: { latencyMedianMs: ms, latencyP90Ms: ms * 1.1, throughputImagesPerS: 1000 / ms, throughputBatch: 8, peakRssMb: 100, warmup: 1, runs: 3 } });
  return {
    schema: 'lesionfuse.tradeoff-report/1', title: 'Trade-off test', createdAt: '2026-01-01T00:00:00Z', command: 'lesionfuse run x.yaml',
    environment: currentEnvironment(),
    candidates: [cand('teacher-fp32', 0.9), cand('teacher-int8', 0.88), cand('student-fp32', 0.85), cand('student-int8', null, { accuracyError: 'quantize failed' })],
    profiles: [
      { profile: 'cpu-2t', outcomes: { 'teacher-fp32': speed(400), 'teacher-int8': speed(500), 'student-fp32': speed(10), 'student-int8': { status: 'failed', reason: 'no model' } }, pareto: [] },
      { profile: 'cuda', skippedReason: 'onnxruntime-node here has only the CPU provider', outcomes: {}, pareto: [] },
    ],
    failures: [{ step: 'quantize student', reason: 'boom' }],
    notes: ['demo shortcut'],
  };
}

test('writeReport writes json, md, svg and html that agree with the data', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-report-'));
  try {
    const r = madeUp();
    const w = await writeReport(r, dir);
    const json = JSON.parse(readFileSync(w.json, 'utf8')) as TradeoffReport;
    // teacher-int8 is slower and worse than teacher-fp32: not on the front.
    assert.deepEqual(json.profiles[0]!.pareto, ['student-fp32', 'teacher-fp32']);
    assert.deepEqual(json.profiles[1]!.pareto, []);
    assert.equal(json.profiles[1]!.plot, undefined);
    const md = readFileSync(w.markdown, 'utf8');
    assert.match(md, /Skipped: onnxruntime-node here has only the CPU provider/);
    assert.match(md, /\| teacher-fp32 \| fp32 \| 0\.900 \[0\.880, 0\.910\] \| 0\.800 \| 0\.700 \| 7\.5 \| 400 \| 440 \| 2\.5 \(batch 8\) \| 100 \| 1\.00 \| 123\.5K \| yes \|/);
    assert.match(md, /student-int8 \| int8 \| n\/a \(quantize failed\)/);
    assert.match(md, /failed \(no model\)/);
    assert.match(md, /quantize student: boom/);
    const html = readFileSync(w.html, 'utf8');
    assert.match(html, /<svg /);
    assert.match(html, /<tr class="pareto"><td>teacher-fp32<\/td>/);
    parseXml(readFileSync(w.plots['cpu-2t']!, 'utf8'));
    assert.equal(Object.keys(w.plots).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('markdown names the machine, versions and the command', () => {
  const md = renderMarkdown(madeUp());
  assert.match(md, /lesionfuse run x\.yaml/);
  assert.match(md, /onnxruntime-node \d+\.\d+/);
  assert.match(md, /Node\.js v\d+/);
});
