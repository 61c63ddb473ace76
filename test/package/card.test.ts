import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderModelCard, type ModelCardInput } from '../../src/package/card.js';

const base: ModelCardInput = {
  name: 'ext', modelFile: 'model.onnx', sha256: 'ab'.repeat(32), sizeBytes: 1024, inputSize: { height: 48, width: 192 }, threshold: 0.5,
  output: 'probabilities', profile: 'cpu-1t', metadata: {}, provenance: [], sourceCard: null, sdkVersion: '0.0.0', createdAt: '2026-01-01T00:00:00Z',
};

test('a model made elsewhere, with no card or recorded data, is not described as a lesion segmenter trained on dermoscopy', () => {
  const text = renderModelCard(base);
  assert.doesNotMatch(text, /Segments the skin lesion/);
  assert.doesNotMatch(text, /Trained on dermoscopic images/);
  assert.doesNotMatch(text, /ISIC/);
  assert.match(text, /What this model was trained to find is not recorded/);
  assert.match(text, /training data of this model is not recorded/);
  assert.match(text, /input resized to 48 x 192/);
});

test('a model whose history names the lesion data keeps the lesion description and the data terms', () => {
  const text = renderModelCard({ ...base, provenance: ['distilled on ../shared/data (ISIC 2018, HAM10000, PH2)'] });
  assert.match(text, /Segments the skin lesion in a dermoscopic RGB image/);
  assert.match(text, /Trained on dermoscopic images of a few public collections/);
  assert.match(text, /Creative Commons Attribution-NonCommercial/);
});

test('a model with its own card defers to it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-card-'));
  const card = join(dir, 'MODEL_CARD.md');
  writeFileSync(card, '# Text detector\n\nDetects printed text lines.\n');
  const text = renderModelCard({ ...base, sourceCard: card });
  assert.match(text, /See the source model's card below for what it was made for/);
  assert.doesNotMatch(text, /Segments the skin lesion/);
  assert.match(text, /Detects printed text lines/);
});
