import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { get } from 'node:http';
import { packageWebBundle, foreignWebBundleFiles, type WebManifest } from '../../src/package/web.js';
import { packageBundle } from '../../src/package/bundle.js';
import { resizeBilinearU8, toModelInput, resizeProbability } from '../../src/runtime/image.js';
import { packageRoot } from '../../src/util/paths.js';
import { loadProfile, profileAvailability } from '../../src/runtime/profiles.js';
import { writeTinySegModel } from './helpers.js';

const root = packageRoot();
const sample = join(root, 'test/fixtures/images', readdirSync(join(root, 'test/fixtures/images')).sort()[0]!);
type Fn = (...a: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
const page = (await import(pathToFileURL(join(root, 'src/package/web/segment.mjs')).href)) as Record<string, Fn>;

/** A deterministic pseudo-random byte source. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

test("the page's preprocessing gives the runtime's model input value for value (down- and upscaling, RGB and BGR)", () => {
  const cases = [[61, 47, 32, 24], [17, 13, 40, 29], [100, 3, 7, 9], [5, 5, 5, 5]] as const;
  for (const [w, h, ow, oh] of cases) {
    const rgb = bytes(w * h * 3, w * 31 + h);
    assert.deepEqual(page.resizeBilinearU8!(rgb, w, h, 3, ow, oh), resizeBilinearU8(rgb, w, h, 3, ow, oh), `${w}x${h} -> ${ow}x${oh}`);
    for (const channelOrder of ['RGB', 'BGR'] as const) {
      const pre = { size: { height: oh, width: ow }, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channelOrder };
      const want = toModelInput([{ width: w, height: h, data: rgb, warnings: [] }], { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channelOrder, height: oh, width: ow });
      assert.deepEqual(page.toModelInput!(rgb, w, h, pre), want);
    }
  }
});

test("the page's post-processing gives the runtime's probability map and mask (sigmoid, bilinear back, > threshold)", () => {
  const logits = Float32Array.from(bytes(6 * 8, 7), (b) => (b - 128) / 20);
  const prob = page.toProbability!(logits, 6, 8, 37, 23, { output: 'logits' }) as Float32Array;
  const map = Float32Array.from(logits, (x) => 1 / (1 + Math.exp(-x)));
  assert.deepEqual(prob, resizeProbability(map, 6, 8, 23, 37));
  // hand-computed: a 1x2 map [0, 1] to 1x4 with half-pixel centres -> [0, 0.25, 0.75, 1]
  assert.deepEqual(Array.from(page.resizeProbability!(Float32Array.from([0, 1]), 1, 2, 1, 4) as Float32Array), [0, 0.25, 0.75, 1]);
  assert.deepEqual(Array.from(page.toMask!(Float32Array.from([0.2, 0.5, 0.51]), 0.5) as Uint8Array), [0, 0, 1]);
  assert.equal(page.maskAgreement!(Uint8Array.from([1, 0, 1, 1]), Uint8Array.from([1, 1, 1, 0])), 0.5);
});

test('web bundle: manifest, hashes, replaces its own kind only, refuses a folder the user owns or a node bundle', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-web-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const out = join(dir, 'web');
    const r = await packageWebBundle({ model, out, sample, webgpu: false });
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as WebManifest;
    assert.equal(m.schema, 'lesionfuse.web-bundle/1');
    assert.deepEqual(m.preprocessing.size, { height: 32, width: 32 });
    assert.equal(m.input.name, 'image');
    assert.equal(m.output.name, 'logits');
    assert.equal(m.postprocessing.activation, 'sigmoid');
    assert.deepEqual(m.runtime.files, ['ort/ort.wasm.min.mjs', 'ort/ort-wasm-simd-threaded.mjs', 'ort/ort-wasm-simd-threaded.wasm']);
    assert.deepEqual(r.manifest.files, m.files);
    for (const f of ['index.html', 'app.mjs', 'segment.mjs', 'model.onnx', 'package.json', 'README.md', 'tools/check.mjs', 'sample/expected_mask.png']) assert.ok(m.files[f], f);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /Content-Security-Policy" content="[^"]*connect-src 'self';/);
    assert.doesNotMatch(html, /https?:\/\//, 'the page names no remote address');
    const pkg = JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'));
    assert.equal(pkg.scripts.test, 'node tools/check.mjs');
    assert.match(pkg.devDependencies['playwright-core'], /^\d+\.\d+\.\d+$/, 'an exact version');
    execFileSync('sha256sum', ['-c', '--quiet', 'CHECKSUMS.sha256'], { cwd: out });
    assert.deepEqual(foreignWebBundleFiles(out), []);
    // what npm install and the bench leave inside are the bundle's own: packaging again replaces it
    mkdirSync(join(out, 'node_modules/x'), { recursive: true });
    writeFileSync(join(out, 'package-lock.json'), '{}');
    await packageWebBundle({ model, out, sample, webgpu: false });
    assert.ok(!existsSync(join(out, 'package-lock.json')));
    // a file the user put there makes it theirs
    writeFileSync(join(out, 'notes.txt'), 'mine');
    await assert.rejects(packageWebBundle({ model, out, sample, webgpu: false }), /web\/?.*holds files LesionFuse did not make as a web bundle \('notes.txt'\).*--force/);
    assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
    await packageWebBundle({ model, out, sample, webgpu: false, force: true });
    assert.ok(!existsSync(join(out, 'notes.txt')));
    // a node bundle is not a web bundle
    await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'nodeb'), sample });
    await assert.rejects(packageWebBundle({ model, out: join(dir, 'nodeb'), sample, webgpu: false }), /did not make as a web bundle/);
    // never the folder of the model
    await assert.rejects(packageWebBundle({ model, out: dir, sample, force: true }), /an input of this command/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the bundle's server serves only its own folder, with the isolation headers", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-web-'));
  try {
    mkdirSync(join(dir, 'site'));
    writeFileSync(join(dir, 'site/a.json'), '{"a":1}');
    writeFileSync(join(dir, 'secret.txt'), 'secret');
    const { serve } = (await import(pathToFileURL(join(root, 'src/package/web/tools/serve.mjs')).href)) as { serve: Fn };
    const { server, url } = await serve(join(dir, 'site'));
    const fetchRaw = (path: string) =>
      new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((ok, fail) => {
        get(url.replace(/\/$/, '') + path, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => ok({ status: res.statusCode!, body, headers: res.headers }));
        }).on('error', fail);
      });
    try {
      const a = await fetchRaw('/a.json');
      assert.equal(a.status, 200);
      assert.equal(a.body, '{"a":1}');
      assert.equal(a.headers['cross-origin-embedder-policy'], 'require-corp');
      assert.equal(a.headers['cross-origin-opener-policy'], 'same-origin');
      for (const p of ['/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2E%2E%2Fsecret.txt']) {
        const r = await fetchRaw(p);
        assert.equal(r.status, 404, p);
        assert.doesNotMatch(r.body, /secret/);
      }
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    } finally {
      await new Promise((ok) => server.close(ok));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The web bundle's own `npm test`, in a real headless Chromium (Debian's chromium package) driven by
// playwright-core with the system browser. Skipped only when no Chromium is installed.
const browserTools = (await import(pathToFileURL(join(root, 'src/package/web/tools/browser.mjs')).href)) as { findChromium: () => string | null };
const chromium = browserTools.findChromium();
const noBrowser = chromium ? false : 'no system Chromium (install Debian\'s chromium: apt-get install chromium, or set CHROMIUM_PATH)';

test('web bundle in headless Chromium: self-check, the sample picked and its mask downloaded equal the recorded mask, nothing reaches another origin; no CSP or a wrong recorded mask fails', { skip: noBrowser }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-web-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const out = join(dir, 'web');
    await packageWebBundle({ model, out, sample });
    // `npm test` in the bundle imports playwright-core from its own node_modules; here LesionFuse's is passed in.
    const playwright = await import('playwright-core');
    const { checkWebBundle } = (await import(pathToFileURL(join(out, 'tools/check.mjs')).href)) as { checkWebBundle: Fn };
    const r = await checkWebBundle(out, { playwright, chromium });
    assert.equal(r.ok, true);
    assert.ok(r.downloadAgreement >= 0.99, `mask agreement ${r.downloadAgreement}`);
    assert.equal(r.crossOriginIsolated, true);
    assert.ok(r.provider === 'wasm' || r.webgpu.used, r.webgpu.why);
    assert.ok(r.lesionPixels.atLow >= r.lesionPixels.atHigh);
    assert.deepEqual([r.cspProbe.fetch, r.cspProbe.received], ['blocked', 0]);

    // Without its Content-Security-Policy the page could send images away: the check must say so.
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    writeFileSync(join(out, 'index.html'), html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, ''));
    await assert.rejects(checkWebBundle(out, { playwright, chromium, query: '?provider=wasm' }), /could reach another origin \(fetch sent/);
    writeFileSync(join(out, 'index.html'), html);

    // The same page with an inverted recorded mask: its self-check must refuse.
    const { readPng } = (await import(pathToFileURL(join(out, 'tools/png.mjs')).href)) as { readPng: Fn };
    const png = readPng(readFileSync(join(out, 'sample/expected_mask.png')));
    const sharp = (await import('sharp')).default;
    const inverted = Buffer.from(Uint8Array.from(png.gray as Uint8Array, (v) => 255 - v));
    await sharp(inverted, { raw: { width: png.width, height: png.height, channels: 1 } }).png().toFile(join(out, 'sample/expected_mask.png.new'));
    execFileSync('mv', [join(out, 'sample/expected_mask.png.new'), join(out, 'sample/expected_mask.png')]);
    await assert.rejects(checkWebBundle(out, { playwright, chromium, query: '?provider=wasm' }), /self-check failed: mask agreement 0(\.0\d*)? /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the browser-wasm profile describes a page in a browser: Node.js refuses to run it and says where it is measured', async () => {
  const p = loadProfile('browser-wasm');
  assert.equal(p.host, 'browser');
  assert.equal(p.executionProvider, 'wasm');
  const a = await profileAvailability(p);
  assert.equal(a.available, false);
  assert.match(a.available ? '' : a.reason, /runs inside a browser page .*bench\/browser-wasm/);
  // the Node.js wasm profile is unaffected by the browser one
  assert.equal(loadProfile('wasm').host, undefined);
});
