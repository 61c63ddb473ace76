/**
 * MODEL_CARD.md for a bundle: what the model is for, how it was made, what was measured, the terms of
 * the data it learnt from, and its limits. A card that ships with the source model (models/<x>/MODEL_CARD.md
 * or one beside the file) is included verbatim, since it knows the training data best.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { METADATA_KEYS } from '../onnx/metadata.js';

/**
 * The terms of the data in ../shared/data (its README, "Licences and citations"). Used when a model's
 * metadata or card says it learnt from those collections but its own card is not at hand.
 */
export const LESIONFUSE_DATA_TERMS = [
  'Trained and/or evaluated on public dermoscopy collections, whose own terms apply:',
  '- ISIC 2018 Task 1 and HAM10000: Creative Commons Attribution-NonCommercial 4.0 (non-commercial use). Cite Codella et al.,',
  '  "Skin Lesion Analysis Toward Melanoma Detection 2018", arXiv:1902.03368; Tschandl, Rosendahl, Kittler, "The HAM10000',
  '  dataset", Sci. Data 5, 180161 (2018); for the HAM10000 masks, Tschandl et al., Nat. Med. (2020).',
  '- PH2: for research and benchmarking. Cite Mendonca et al., "PH2 - A dermoscopic image database for research and',
  '  benchmarking", IEEE EMBC 2013.',
  'Because of the non-commercial terms, a model trained on these data inherits the restriction in practice: check with',
  'the data owners before any commercial use.',
].join('\n');

/** Find the card of a model: `MODEL_CARD.md` (or `<stem>.MODEL_CARD.md`) in the model's folder. */
export function findModelCard(modelPath: string): string | null {
  const dir = dirname(modelPath);
  const stem = basename(modelPath).replace(/\.onnx$/i, '');
  for (const name of [`${stem}.MODEL_CARD.md`, 'MODEL_CARD.md']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** What {@link renderModelCard} writes about. */
export interface ModelCardInput {
  name: string;
  /** What the bundled file computes in (from its graph). */
  precision?: string;
  modelFile: string;
  sha256: string;
  sizeBytes: number;
  inputSize: { height: number; width: number };
  threshold: number;
  output: 'logits' | 'probabilities';
  profile: string;
  metadata: Record<string, string>;
  /** How the model was made, one step per entry. */
  provenance: string[];
  metrics?: { dice?: number; diceCi95?: [number, number]; latencyMedianMs?: number; latencyP90Ms?: number; dataset?: string; profile?: string };
  /** The source model's card (a path), included verbatim. */
  sourceCard: string | null;
  sdkVersion: string;
  createdAt: string;
}

function mentionsLesionFuseData(text: string): boolean {
  return /isic|ham10000|ph2|shared\/data/i.test(text);
}

/** The Markdown text of the card. */
export function renderModelCard(c: ModelCardInput): string {
  const L: string[] = [];
  const source = c.sourceCard ? readFileSync(c.sourceCard, 'utf8') : null;
  L.push(`# Model card: ${c.name}`, '');
  L.push(`Edge bundle made by LesionFuse ${c.sdkVersion} on ${c.createdAt}. File \`${c.modelFile}\`, ${(c.sizeBytes / 2 ** 20).toFixed(2)} MB, SHA-256 \`${c.sha256}\`${c.precision ? `, precision **${c.precision}**` : ''}.`, '');
  // A card that names this file's SHA-256 is its own; any other card describes the model this one was made from.
  const ownCard = source !== null && source.includes(c.sha256);
  // State only what is known: a model whose card, metadata or history names the lesion data is described
  // as a lesion segmenter; any other (a model made elsewhere) by its interface alone.
  const allText = [source ?? '', ...Object.values(c.metadata), ...c.provenance].join('\n');
  const lesionModel = mentionsLesionFuseData(allText);
  L.push('## What it does', '');
  const io = `input resized to ${c.inputSize.height} x ${c.inputSize.width}, output read as a ${c.output === 'logits' ? 'logit' : 'probability'} map;` +
    ` foreground where the probability exceeds ${c.threshold}, resized back to the original image size. Tuned for the \`${c.profile}\` profile.`;
  if (lesionModel) L.push(`Segments the skin lesion in a dermoscopic RGB image: ${io}`, '');
  else if (source) L.push(`See the source model's card below for what it was made for. As packaged: ${io}`, '');
  else L.push(`What this model was trained to find is not recorded (no card came with it and its metadata does not say). As packaged: ${io}`, '');
  L.push('## Limits', '');
  L.push('- **Not a diagnostic device.** It outlines a region; it does not say whether a lesion is benign or malignant, and it is not');
  L.push('  cleared or approved for clinical use. A clinician must review every output.');
  if (lesionModel) {
    L.push('- Trained on dermoscopic images of a few public collections (mostly light skin, mostly ISIC archive cameras). Expect lower');
    L.push('  accuracy on clinical (non-dermoscopic) photos, darker skin, hair-covered or ink-marked lesions, and images unlike the training data.');
  } else {
    L.push('- Its training data is not recorded here, so nothing is known of the images it works on: measure it on your own images first.');
  }
  L.push('- Compressed variants (INT8, smaller students) trade accuracy for speed: the measured numbers below are the ones to trust,');
  L.push('  on the data they name; re-measure on your own images before deploying.', '');
  L.push('## How it was made', '');
  if (c.provenance.length) for (const p of c.provenance) L.push(`- ${p}`);
  else L.push('- As given to `lesionfuse package` (no history recorded).');
  L.push('');
  const extra = Object.entries(c.metadata).filter(([k]) => !(Object.values(METADATA_KEYS) as string[]).includes(k));
  if (extra.length) {
    L.push('Recorded in the model\'s metadata:', '');
    for (const [k, v] of extra) L.push(`- \`${k}\`: ${v.replace(/\n/g, ' ')}`);
    L.push('');
  }
  L.push('## Measured on this file', '');
  const m = c.metrics;
  if (m && (m.dice !== undefined || m.latencyMedianMs !== undefined)) {
    if (m.dice !== undefined) L.push(`- Dice ${m.dice.toFixed(4)}${m.diceCi95 ? ` (95% interval ${m.diceCi95[0].toFixed(4)} to ${m.diceCi95[1].toFixed(4)})` : ''}${m.dataset ? ` on ${m.dataset}` : ''}.`);
    if (m.latencyMedianMs !== undefined) L.push(`- Latency at batch 1: median ${m.latencyMedianMs.toFixed(2)} ms${m.latencyP90Ms !== undefined ? `, p90 ${m.latencyP90Ms.toFixed(2)} ms` : ''} on profile ${m.profile ?? c.profile} (the packaging machine: re-measure on the device).`);
  } else {
    L.push('- Nothing measured on this file was given when the bundle was made.' +
      (source && !ownCard ? ' The numbers in the parent model\'s card below describe that model, not this one: measure this file (`lesionfuse eval`) before relying on it.' : ''));
  }
  L.push('');
  L.push('## Data and its terms', '');
  if (source) L.push(`See the ${ownCard ? 'model\'s own' : 'parent model\'s'} card below for its training data and terms.`, '');
  if (lesionModel) L.push(LESIONFUSE_DATA_TERMS, '');
  else if (!source) L.push('The training data of this model is not recorded in its metadata and no card came with it: find out its terms before deploying.', '');
  if (source) {
    L.push(ownCard
      ? '## The model\'s own card (verbatim)'
      : `## Card of the model this one was made from (verbatim; it describes that model, not this ${c.precision ?? ''} file)`.replace('  ', ' '), '');
    L.push(source.replace(/^#/gm, '##'));
  }
  return L.join('\n') + '\n';
}
