/**
 * Web bundles: a static folder that segments images inside a browser page, offline, with onnxruntime-web
 * (WebAssembly with SIMD; threads when the page is cross-origin isolated; WebGPU when the browser has it and
 * it gives the wasm mask on the bundled sample). Nothing in the page can send an image anywhere: its
 * Content-Security-Policy allows connections to its own origin only.
 *
 * Layout of a web bundle folder:
 *   index.html, app.mjs, segment.mjs, style.css   the page (static templates from src/package/web/)
 *   ort/                                          onnxruntime-web's ES module and wasm files, only those used
 *   model.onnx                                    the model (self-contained: external data inlined)
 *   manifest.json                                 input/output names, pre- and post-processing, tolerance, hashes
 *   sample/input.<ext>, sample/expected_mask.png  a sample and its mask recorded at packaging (onnxruntime-node, cpu-1t)
 *   sample/expected.json                          what was recorded and the tolerance the page and the test use
 *   tools/serve.mjs, check.mjs, bench.mjs ...     a local static server, the browser test (npm test), the browser bench
 *   package.json, README.md, CHECKSUMS.sha256
 */
import { promises as fs, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readModel, encodeModel } from '../onnx/io.js';
import { DataType } from '../onnx/ir.js';
import { LesionFuseError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';
import { trackTemp, writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { packageRoot } from '../util/paths.js';
import { claimOutputFolder, swapFolderIn } from '../util/outdir.js';
import { resolveModelPath } from '../models.js';
import { VERSION } from '../version.js';
import { Segmenter } from '../runtime/segmenter.js';
import { writeMaskPng } from '../runtime/image.js';
import { defaultSampleImage, processingOf, type BundleManifest } from './bundle.js';

export { WEB_BUNDLE_SCHEMA } from './integrity.js';
import { foreignBundleFiles as foreignBundleFilesOf, listFiles, WEB_BUNDLE_SCHEMA } from './integrity.js';

/** The pixels on which the browser's mask may differ from the one recorded at packaging, and why. */
export const WEB_TOLERANCE = {
  maskAgreement: 0.99,
  why:
    "the recorded mask comes from onnxruntime-node's CPU provider and sharp's image decoder; the page uses " +
    "onnxruntime-web's wasm kernels and the browser's decoder, so probabilities may move slightly and flip pixels right " +
    'at the threshold; a wrong or damaged model differs far more',
};

/** onnxruntime-web files the page loads: the wasm build (always) and the WebGPU build (when asked for). */
const ORT_WASM_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];
const ORT_WEBGPU_FILES = ['ort.webgpu.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'];
/** The page's own files, from src/package/web/ at the package root. */
const PAGE_FILES = ['index.html', 'app.mjs', 'segment.mjs', 'style.css', 'tools/serve.mjs', 'tools/browser.mjs', 'tools/check.mjs', 'tools/bench.mjs', 'tools/png.mjs'];

export interface WebPackageOptions {
  /** The model: a path or `default:teacher` / `default:student`. */
  model: string;
  /** The folder to create. An existing web bundle there is replaced only once the new one is complete. */
  out: string;
  /** A sample image to bundle with its recorded mask. Default: the first image of the package's samples/images. */
  sample?: string;
  /** A name for the manifest and the page. Default: the model's lesionfuse.model_name, else the file stem. */
  name?: string;
  /** Include onnxruntime-web's WebGPU build (about 27 MB more). Default true. */
  webgpu?: boolean;
  /** Replace `out` even when it holds files that are not a LesionFuse web bundle. Default false. */
  force?: boolean;
}

/** manifest.json of a web bundle. */
export interface WebManifest {
  schema: typeof WEB_BUNDLE_SCHEMA;
  target: 'web';
  name: string;
  sdkVersion: string;
  createdAt: string;
  model: { file: string; sha256: string; sizeBytes: number };
  input: { name: string };
  output: { name: string };
  preprocessing: BundleManifest['preprocessing'];
  postprocessing: BundleManifest['postprocessing'];
  runtime: { package: 'onnxruntime-web'; version: string; files: string[]; providers: string[] };
  tolerance: typeof WEB_TOLERANCE;
  sample: { input: string; mask: string; expected: string };
  privacy: string;
  /** SHA-256 of every file except manifest.json and CHECKSUMS.sha256. */
  files: Record<string, string>;
}

export interface WebPackageResult {
  dir: string;
  manifest: WebManifest;
}

/** The files in `dir` that are not part of the bundle there (see integrity.ts foreignBundleFiles). */
export function foreignWebBundleFiles(dir: string): string[] | null {
  return foreignBundleFilesOf(dir, WEB_BUNDLE_SCHEMA);
}

/** The folder of the installed onnxruntime-web package (an optional dependency of LesionFuse). */
function onnxruntimeWebDir(): { dir: string; version: string } {
  const req = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = req.resolve('onnxruntime-web');
  } catch {
    throw new LesionFuseError('onnxruntime-web is not installed (an optional dependency of LesionFuse); install it to make web bundles', { subject: '--target web' });
  }
  let dir = dirname(entry);
  for (let i = 0; i < 5; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const p = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
      if (p.name === 'onnxruntime-web' && p.version) return { dir, version: p.version };
    }
    dir = dirname(dir);
  }
  throw new LesionFuseError('cannot find the onnxruntime-web package folder', { subject: entry });
}

/** The playwright-core version the web bundle's test was written against (LesionFuse's own dev dependency). */
function playwrightVersion(): string {
  const pj = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
  const req = createRequire(import.meta.url);
  try {
    const installed = JSON.parse(readFileSync(req.resolve('playwright-core/package.json'), 'utf8')) as { version: string };
    return installed.version;
  } catch {
    return (pj.devDependencies?.['playwright-core'] ?? '^1.65.2').replace(/^[\^~]/, '');
  }
}


function readme(m: WebManifest, sizeMb: string): string {
  const pre = m.preprocessing;
  return `# ${m.name}: skin-lesion segmentation in a browser page

Made by LesionFuse ${m.sdkVersion} on ${m.createdAt}. Not a diagnostic device.

The page segments dermoscopic images inside the browser with onnxruntime-web ${m.runtime.version}. Drop or pick
images, see the mask and the overlay (lesion tinted red, outline yellow), move the threshold, download the masks
as PNG (255 = lesion).

## Run it (no network needed)

The page must come from a local web server (browsers do not run WebAssembly modules from \`file://\`). With
Node.js 20 or later:

\`\`\`sh
node tools/serve.mjs --port 8080     # then open http://127.0.0.1:8080/ ; listens on 127.0.0.1 only
\`\`\`

Any static file server works (e.g. \`python3 -m http.server --bind 127.0.0.1\`), but without the headers that
\`tools/serve.mjs\` sends (\`Cross-Origin-Opener-Policy: same-origin\`, \`Cross-Origin-Embedder-Policy: require-corp\`)
the page is not cross-origin isolated and runs WebAssembly on one thread.

## Images never leave the page

- \`index.html\` carries a Content-Security-Policy: \`connect-src 'self'\` (the page may fetch only from the server
  it came from: its own model, manifest and runtime files), \`default-src 'none'\`, scripts and workers from this
  folder only, \`form-action 'none'\`. The browser blocks any other connection, whatever a script tries.
- Images are read from your disk with the File API and decoded in the page; masks are made in the page and
  downloaded from memory (\`blob:\` links). Nothing is uploaded, not even to the local server.
- \`npm test\` records every request the page makes and fails if one goes anywhere but the bundle's own server;
  it also has a script in the page try to send data to another origin (a server on another port) and fails unless
  the browser blocks it and that server receives nothing.

## What the page does (the same as LesionFuse's Segmenter)

1. Decode the image (EXIF orientation applied, no colour-profile conversion, alpha over white).
2. Resize to ${pre.size.height} x ${pre.size.width} (bilinear, triangle filter widened when downscaling: Pillow's BILINEAR), scale to 0..1,
   subtract mean ${JSON.stringify(pre.mean)}, divide by std ${JSON.stringify(pre.std)}, ${pre.channelOrder}, NCHW.
3. Run the model (\`${m.input.name}\` -> \`${m.output.name}\`), ${m.postprocessing.activation === 'sigmoid' ? 'sigmoid of the logits' : 'probabilities as given'}, resize the probability map
   bilinearly to the image's size, lesion = probability > threshold (default ${m.postprocessing.threshold}).

Providers: WebAssembly with SIMD always; threads (up to 4) when the page is cross-origin isolated; WebGPU when
the browser offers an adapter${m.runtime.files.some((f) => f.includes('asyncify')) ? '' : ' (not included in this bundle)'} and only after its mask on the bundled sample agrees with the wasm mask
within the tolerance below (the page says which it uses and why).

## Self-check and tolerance

On load the page segments \`${m.sample.input}\` and compares the mask with \`${m.sample.mask}\`, recorded at packaging
with onnxruntime-node (CPU provider, one thread). They must agree on at least ${(m.tolerance.maskAgreement * 100).toFixed(1)}% of pixels: ${m.tolerance.why}.

## Test it in a headless browser

\`\`\`sh
npm install     # playwright-core only (a driver: it downloads no browser)
npm test        # needs a system Chromium: Debian \`apt-get install chromium\` (or set CHROMIUM_PATH)
\`\`\`

\`npm test\` serves this folder on 127.0.0.1, opens the page in headless Chromium, checks the self-check, picks
the sample as a user would, downloads its mask and compares it with \`${m.sample.mask}\` (same tolerance), moves
the threshold, and fails on any request outside the folder or any data that reaches another origin.

## Measure the browser latency

\`\`\`sh
npm run bench -- --runs 50 --warmup 5 [--threads 1]     # writes bench.json: median/p90 of the model call in Chromium
\`\`\`

Run it on a quiet machine: timings on a loaded one mean little.

## Files

Checked by \`sha256sum -c CHECKSUMS.sha256\` (${sizeMb} MB in all). \`manifest.json\` lists the same hashes and the
pre-/post-processing above.
`;
}

/**
 * Make a web bundle from a model: the folder `out`. The sample is segmented with onnxruntime-node (cpu-1t)
 * through the Segmenter and its mask recorded, so the page's self-check and `npm test` prove the browser gives
 * the same answer within the stated tolerance.
 */
export async function packageWebBundle(opts: WebPackageOptions): Promise<WebPackageResult> {
  const modelPath = resolveModelPath(opts.model);
  const model = await readModel(modelPath);
  const samplePath = resolve(opts.sample ?? defaultSampleImage());
  const dest = resolve(opts.out);
  const ortWeb = onnxruntimeWebDir();
  const pageDir = join(packageRoot(), 'src', 'package', 'web');
  for (const f of PAGE_FILES) if (!existsSync(join(pageDir, f))) throw new LesionFuseError(`missing page file ${f}: LesionFuse's installation is incomplete`, { subject: pageDir });
  const ortFiles = [...ORT_WASM_FILES, ...(opts.webgpu === false ? [] : ORT_WEBGPU_FILES)];
  for (const f of ortFiles) if (!existsSync(join(ortWeb.dir, 'dist', f))) throw new LesionFuseError(`onnxruntime-web ${ortWeb.version} has no dist/${f}`, { subject: ortWeb.dir });
  const inits = new Set(model.graph.initializers.map((i) => i.name));
  for (const v of [...model.graph.inputs.filter((i) => !inits.has(i.name)), ...model.graph.outputs]) {
    if (v.dataType !== DataType.FLOAT) {
      throw new LesionFuseError(`the web page feeds and reads float32 tensors; '${v.name}' is ${DataType[v.dataType] ?? v.dataType}`, { subject: modelPath });
    }
  }

  const claim = { foreign: foreignWebBundleFiles, force: opts.force, what: 'a web bundle', inputs: [modelPath, samplePath] };
  claimOutputFolder(dest, claim);
  await fs.mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const forgetTmp = trackTemp(tmp);
  try {
    await fs.mkdir(join(tmp, 'sample'), { recursive: true });
    await fs.mkdir(join(tmp, 'tools'), { recursive: true });
    await fs.mkdir(join(tmp, 'ort'), { recursive: true });
    for (const f of PAGE_FILES) await fs.copyFile(join(pageDir, f), join(tmp, f));
    for (const f of ortFiles) await fs.copyFile(join(ortWeb.dir, 'dist', f), join(tmp, 'ort', f));
    if (model.graph.initializers.some((i) => i.external)) {
      for (const i of model.graph.initializers) delete i.external;
      await writeFileAtomic(join(tmp, 'model.onnx'), encodeModel(model));
    } else {
      await fs.copyFile(modelPath, join(tmp, 'model.onnx'));
    }
    const inputName = `sample/input${extname(samplePath).toLowerCase() || '.img'}`;
    await fs.copyFile(samplePath, join(tmp, inputName));
    const attribution = join(dirname(dirname(samplePath)), 'ATTRIBUTION.md');
    if (existsSync(attribution)) await fs.copyFile(attribution, join(tmp, 'sample/ATTRIBUTION.md'));

    // The reference: the Segmenter (onnxruntime-node, one CPU thread) on the bundled files themselves.
    const seg = await Segmenter.create(join(tmp, 'model.onnx'), { profile: 'cpu-1t' });
    let meta: Segmenter['metadata'];
    let io: { input: string; output: string };
    try {
      meta = seg.metadata;
      io = { input: seg.inputName, output: seg.outputName };
      const r = await seg.segment(join(tmp, inputName));
      await writeMaskPng(join(tmp, 'sample/expected_mask.png'), { width: r.width, height: r.height, data: r.mask });
      let fg = 0;
      for (const v of r.mask) fg += v;
      await writeJsonAtomic(join(tmp, 'sample/expected.json'), {
        image: basename(samplePath), width: r.width, height: r.height, foregroundPixels: fg,
        recordedWith: 'onnxruntime-node, CPU provider, 1 thread (LesionFuse Segmenter, profile cpu-1t)', tolerance: WEB_TOLERANCE,
      });
    } finally {
      await seg.close();
    }

    const name = opts.name ?? meta.modelName ?? basename(modelPath).replace(/\.onnx$/i, '');
    const createdAt = new Date().toISOString();
    const modelSha = await sha256File(join(tmp, 'model.onnx'));
    const modelSize = (await fs.stat(join(tmp, 'model.onnx'))).size;
    const pkg = {
      name: `lesionfuse-web-${name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')}`.slice(0, 200),
      version: '1.0.0',
      private: true,
      type: 'module',
      description: `LesionFuse web bundle of ${name}: a static page that segments skin-lesion images in the browser, offline`,
      scripts: { start: 'node tools/serve.mjs', test: 'node tools/check.mjs', bench: 'node tools/bench.mjs --out bench.json' },
      engines: { node: '>=20' },
      devDependencies: { 'playwright-core': playwrightVersion() },
    };
    await writeJsonAtomic(join(tmp, 'package.json'), pkg);
    const manifest: WebManifest = {
      schema: WEB_BUNDLE_SCHEMA,
      target: 'web',
      name,
      sdkVersion: VERSION,
      createdAt,
      model: { file: 'model.onnx', sha256: modelSha, sizeBytes: modelSize },
      input: { name: io.input },
      output: { name: io.output },
      ...processingOf(meta, meta.inputSize),
      runtime: {
        package: 'onnxruntime-web',
        version: ortWeb.version,
        files: ortFiles.map((f) => `ort/${f}`),
        providers: [...(opts.webgpu === false ? [] : ['webgpu (only after its sample mask agrees with wasm)']), 'wasm (SIMD; threads when cross-origin isolated)'],
      },
      tolerance: WEB_TOLERANCE,
      sample: { input: inputName, mask: 'sample/expected_mask.png', expected: 'sample/expected.json' },
      privacy: "index.html's Content-Security-Policy allows connections to the page's own origin only (connect-src 'self'); images are read and masks written in the page",
      files: {},
    };
    // README last but one: it states the bundle's size; then the hashes of everything.
    const sizeOf = async () => {
      let n = 0;
      for (const f of listFiles(tmp)) n += (await fs.stat(join(tmp, f))).size;
      return n;
    };
    await writeFileAtomic(join(tmp, 'README.md'), readme(manifest, ((await sizeOf()) / 1e6).toFixed(1)));
    for (const f of listFiles(tmp)) manifest.files[f] = await sha256File(join(tmp, f));
    await writeJsonAtomic(join(tmp, 'manifest.json'), manifest);
    const lines: string[] = [];
    for (const f of listFiles(tmp)) lines.push(`${await sha256File(join(tmp, f))}  ${f}`);
    await writeFileAtomic(join(tmp, 'CHECKSUMS.sha256'), lines.join('\n') + '\n');
    claimOutputFolder(dest, claim); // again: the folder may have changed meanwhile
    await swapFolderIn(tmp, dest);
    return { dir: dest, manifest };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    forgetTmp();
  }
}
