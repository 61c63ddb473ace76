/**
 * README.md of a bundle: what is in the folder and the exact commands to install, test and run it on a device
 * that has Node.js and the npm registry (or a mirror) but not LesionFuse.
 */
import { SIGNATURE_FILE } from './signing.js';

export interface BundleReadmeInput {
  name: string;
  precision: string;
  profile: string;
  packages: Record<string, string>;
  signed: boolean;
  expectedTolerance: { maskAgreement: number; why: string };
}

export function bundleReadme(r: BundleReadmeInput): string {
  const pins = Object.entries(r.packages).map(([p, v]) => `${p} ${v}`).join(', ');
  return `# ${r.name}: a LesionFuse edge bundle

A skin-lesion segmentation model (${r.precision}) with everything needed to run it with Node.js 20 or later:
no LesionFuse installation, no network at run time. Not a diagnostic device: read \`MODEL_CARD.md\` first.

## Install, check, run

\`\`\`sh
ONNXRUNTIME_NODE_INSTALL=skip npm install   # ${pins} (the versions the sample was recorded with)
npm test                                    # runs the bundled sample and compares it with the recorded mask
node run.mjs IMAGES_OR_FOLDERS... --out masks/   # writes masks/<name>_mask.png, 0 = skin, 255 = lesion
\`\`\`

\`ONNXRUNTIME_NODE_INSTALL=skip\` stops onnxruntime-node's install script from downloading CUDA libraries (the CPU
provider is in the package); npm 11 and later run no dependency install scripts anyway (\`allowScripts\` in
\`package.json\` says so explicitly). onnxruntime's telemetry is turned off before it loads (\`lib/util/ort.js\`).

\`run.mjs\` first checks every file against \`CHECKSUMS.sha256\` and \`manifest.json\`${r.signed ? `, and with
\`--pubkey SIGNER.pub.pem\` the Ed25519 signature in \`${SIGNATURE_FILE}\` (which covers \`manifest.json\`, which
covers every file's hash)` : ''}. A bad image is reported in one line and the batch goes on; the exit status is 1 if
any image failed. \`--threads N\` overrides the profile's thread count (profile: \`${r.profile}\`).

## How \`npm test\` judges the output

- fp32 model on the same kind of CPU as at packaging (same architecture and kernel-relevant instruction sets,
  recorded in \`sample/expected.json\`): the mask must be bit-identical.
- INT8 or fp16 models, or another kind of CPU: at least ${(r.expectedTolerance.maskAgreement * 100).toFixed(1)}% of the
  pixels must agree (${r.expectedTolerance.why}).

## What is here

| file | what |
|---|---|
| \`model.onnx\` | the model |
| \`manifest.json\` | inputs/outputs, pre- and post-processing, profile, measurements, lineage (hashes), runtime versions, SHA-256 of every file |
| \`MODEL_CARD.md\` | what the model is for, how it was made, what was measured on it, data terms, limits |
| \`run.mjs\`, \`test.mjs\`, \`package.json\` | the runner, its test, the pinned runtime |
| \`lib/\` | the LesionFuse runtime files the runner uses (the same pre/post-processing code as the SDK's Segmenter; Apache-2.0) |
| \`sample/\` | a sample image with its attribution and the output recorded at packaging |
| \`CHECKSUMS.sha256\` | \`sha256sum -c CHECKSUMS.sha256\` checks the files with coreutils alone |${r.signed ? `\n| \`${SIGNATURE_FILE}\` | Ed25519 signature of \`manifest.json\` and the signer's key id |` : ''}
`;
}
