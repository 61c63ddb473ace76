// LesionFuse web bundle: the page. Loads manifest.json and the model from this folder, checks the bundled
// sample against the mask recorded at packaging, then segments the images the user drops or picks.
// Nothing is sent anywhere (see the Content-Security-Policy in index.html).
import * as ort from './ort/ort.wasm.min.mjs';
import { toModelInput, toProbability, toMask, maskAgreement } from './segment.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { manifest: null, session: null, provider: 'wasm', threads: 1, threshold: 0.5, results: [], selfCheck: null, webgpu: null };
window.lesionfuse = state;

function setStatus(text, cls) {
  $('status').textContent = text;
  $('status').className = cls ?? '';
}

async function fetchBytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** Decode an image (File or Blob) to 8-bit RGB as a viewer shows it (EXIF orientation applied, alpha over white). */
async function decodeRgb(blob) {
  const bmp = await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const { width, height } = bmp;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    const a = rgba[i + 3] / 255;
    for (let c = 0; c < 3; c++) rgb[j + c] = a === 1 ? rgba[i + c] : Math.round(rgba[i + c] * a + 255 * (1 - a));
  }
  return { width, height, rgb };
}

/** A 0/1 mask from a mask PNG (non-zero = lesion). */
async function decodeMask(blob) {
  const { width, height, rgb } = await decodeRgb(blob);
  const mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i++) mask[i] = rgb[i * 3] >= 128 ? 1 : 0;
  return { width, height, mask };
}

/** Run the model on one decoded image: the probability map at the image's size. */
async function infer(session, ortLib, img) {
  const m = state.manifest;
  const pre = m.preprocessing;
  const x = toModelInput(img.rgb, img.width, img.height, pre);
  const feeds = { [m.input.name]: new ortLib.Tensor('float32', x, [1, 3, pre.size.height, pre.size.width]) };
  const out = (await session.run(feeds))[m.output.name];
  const dims = out.dims;
  const oh = dims.length === 4 ? dims[2] : dims[1];
  const ow = dims.length === 4 ? dims[3] : dims[2];
  const data = out.data;
  if (!(data instanceof Float32Array)) throw new Error(`model output is ${out.type}, expected float32`);
  const prob = toProbability(data, oh, ow, img.width, img.height, m.postprocessing);
  out.dispose?.();
  return prob;
}

async function createSession(ortLib, provider, modelBytes) {
  ortLib.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
  ortLib.env.wasm.numThreads = state.threads;
  return ortLib.InferenceSession.create(modelBytes, { executionProviders: [provider], graphOptimizationLevel: 'all' });
}

/** WebGPU, only when the browser has it and it gives the wasm mask on the sample (within the bundle's tolerance). */
async function tryWebGpu(modelBytes, sampleImg, wasmMask) {
  if (params.get('provider') === 'wasm') return { used: false, why: 'wasm asked for (?provider=wasm)' };
  if (!('gpu' in navigator)) return { used: false, why: 'this browser has no WebGPU' };
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (e) {
    adapter = null;
  }
  if (!adapter) return { used: false, why: 'no WebGPU adapter' };
  try {
    const gpuOrt = await import('./ort/ort.webgpu.min.mjs');
    const session = await createSession(gpuOrt, 'webgpu', modelBytes);
    const prob = await infer(session, gpuOrt, sampleImg);
    const agreement = maskAgreement(toMask(prob, state.manifest.postprocessing.threshold), wasmMask);
    const need = state.manifest.tolerance.maskAgreement;
    if (agreement >= need) return { used: true, session, ortLib: gpuOrt, agreement, why: `WebGPU mask agrees with wasm on the sample: ${(agreement * 100).toFixed(3)}%` };
    await session.release();
    return { used: false, agreement, why: `WebGPU mask agrees with wasm on ${(agreement * 100).toFixed(3)}% of the sample (need ${(need * 100).toFixed(1)}%): not used` };
  } catch (e) {
    return { used: false, why: `WebGPU failed: ${e.message ?? e}` };
  }
}

function overlayImageData(img, mask) {
  const { width: w, height: h, rgb } = img;
  const out = new ImageData(w, h);
  const px = out.data;
  for (let i = 0; i < w * h; i++) {
    let r = rgb[i * 3];
    let g = rgb[i * 3 + 1];
    let b = rgb[i * 3 + 2];
    if (mask[i]) {
      const x = i % w;
      const y = (i - x) / w;
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !mask[i - 1] || !mask[i + 1] || !mask[i - w] || !mask[i + w];
      if (edge) [r, g, b] = [255, 255, 0];
      else [r, g, b] = [Math.round(r * 0.6 + 255 * 0.4), Math.round(g * 0.6), Math.round(b * 0.6)];
    }
    px[i * 4] = r;
    px[i * 4 + 1] = g;
    px[i * 4 + 2] = b;
    px[i * 4 + 3] = 255;
  }
  return out;
}

function maskImageData(mask, w, h) {
  const out = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = mask[i] ? 255 : 0;
    out.data[i * 4] = out.data[i * 4 + 1] = out.data[i * 4 + 2] = v;
    out.data[i * 4 + 3] = 255;
  }
  return out;
}

function maskName(name) {
  return `${name.replace(/\.[^.]*$/, '') || 'image'}_mask.png`;
}

/** Draw one result at the current threshold and refresh its download link. */
function render(r) {
  r.mask = toMask(r.probability, state.threshold);
  let fg = 0;
  for (let i = 0; i < r.mask.length; i++) fg += r.mask[i];
  r.foreground = fg;
  const { width: w, height: h } = r.img;
  r.overlay.getContext('2d').putImageData(overlayImageData(r.img, r.mask), 0, 0);
  r.maskCanvas.getContext('2d').putImageData(maskImageData(r.mask, w, h), 0, 0);
  r.info.textContent = `${r.name}: ${w} x ${h}, lesion ${((fg / (w * h)) * 100).toFixed(1)}% of the image at threshold ${state.threshold.toFixed(2)} (${state.provider})`;
  const version = (r.version ?? 0) + 1;
  r.version = version;
  r.maskCanvas.toBlob((blob) => {
    if (r.version !== version) return;
    if (r.url) URL.revokeObjectURL(r.url);
    r.url = URL.createObjectURL(blob);
    r.link.href = r.url;
    r.link.dataset.threshold = state.threshold.toFixed(2);
    r.link.classList.remove('pending');
  }, 'image/png');
  r.link.classList.add('pending');
}

async function addFiles(files) {
  for (const file of files) {
    const box = document.createElement('div');
    box.className = 'result';
    $('results').append(box);
    try {
      if (!state.session) throw new Error('the model is not loaded');
      const img = await decodeRgb(file);
      const probability = await infer(state.session, state.ortLib, img);
      const r = { name: file.name, img, probability, info: document.createElement('p'), overlay: document.createElement('canvas'), maskCanvas: document.createElement('canvas'), link: document.createElement('a') };
      r.overlay.width = r.maskCanvas.width = img.width;
      r.overlay.height = r.maskCanvas.height = img.height;
      r.link.textContent = 'download mask';
      r.link.download = maskName(file.name);
      r.link.className = 'download';
      box.append(r.info, r.overlay, r.maskCanvas, r.link);
      state.results.push(r);
      render(r);
      $('download-all').disabled = false;
    } catch (e) {
      box.innerHTML = '';
      const p = document.createElement('p');
      p.className = 'error';
      p.textContent = `${file.name}: ${e.message ?? e}`;
      box.append(p);
    }
  }
  state.processed = (state.processed ?? 0) + files.length;
}

/** Latency of the model call alone (the bundled sample's input), for bench.mjs: milliseconds per run. */
state.bench = async ({ runs = 20, warmup = 3 } = {}) => {
  const m = state.manifest;
  const pre = m.preprocessing;
  const x = toModelInput(state.sampleImg.rgb, state.sampleImg.width, state.sampleImg.height, pre);
  const feeds = { [m.input.name]: new state.ortLib.Tensor('float32', x, [1, 3, pre.size.height, pre.size.width]) };
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t0 = performance.now();
    const out = await state.session.run(feeds);
    const t1 = performance.now();
    for (const v of Object.values(out)) v.dispose?.();
    if (i >= warmup) times.push(t1 - t0);
  }
  return times;
};

async function main() {
  const m = await (await fetch('manifest.json')).json();
  state.manifest = m;
  state.threshold = m.postprocessing.threshold;
  $('title').textContent = `LesionFuse: ${m.name}`;
  document.title = `LesionFuse: ${m.name}`;
  $('threshold').value = String(state.threshold);
  $('threshold-value').textContent = state.threshold.toFixed(2);
  const asked = Number(params.get('threads'));
  state.threads = Number.isInteger(asked) && asked > 0 ? asked : self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  if (!self.crossOriginIsolated) state.threads = 1; // threads need SharedArrayBuffer: cross-origin isolation
  const modelBytes = await fetchBytes(m.model.file);
  state.session = await createSession(ort, 'wasm', modelBytes);
  state.ortLib = ort;

  // Self-check: the bundled sample gives the mask recorded at packaging (within the bundle's tolerance).
  const sampleImg = await decodeRgb(new Blob([await fetchBytes(m.sample.input)]));
  state.sampleImg = sampleImg;
  const expected = await decodeMask(new Blob([await fetchBytes(m.sample.mask)]));
  const wasmMask = toMask(await infer(state.session, ort, sampleImg), m.postprocessing.threshold);
  const agreement = expected.mask.length === wasmMask.length ? maskAgreement(wasmMask, expected.mask) : 0;
  const need = m.tolerance.maskAgreement;
  state.selfCheck = { agreement, need, ok: agreement >= need, threads: state.threads, crossOriginIsolated: self.crossOriginIsolated };
  $('selfcheck').textContent = `Self-check on the bundled sample: mask agreement with the recorded mask ${(agreement * 100).toFixed(3)}% (need ${(need * 100).toFixed(1)}%) ${state.selfCheck.ok ? 'OK' : 'FAILED: the results of this page cannot be trusted'}`;
  $('selfcheck').className = state.selfCheck.ok ? 'ok' : 'error';

  const gpu = await tryWebGpu(modelBytes, sampleImg, wasmMask);
  state.webgpu = { used: gpu.used, why: gpu.why, agreement: gpu.agreement ?? null };
  if (gpu.used) {
    await state.session.release();
    state.session = gpu.session;
    state.ortLib = gpu.ortLib;
    state.provider = 'webgpu';
  }
  setStatus(`Ready: ${state.provider}${state.provider === 'wasm' ? ` (SIMD, ${state.threads} thread${state.threads > 1 ? 's' : ''}${self.crossOriginIsolated ? '' : '; more need a cross-origin isolated page, see README'})` : ''}. ${gpu.why}.`, 'ok');
}

$('files').addEventListener('change', async (e) => {
  await addFiles([...e.target.files]);
  e.target.value = '';
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  await addFiles([...e.dataTransfer.files].filter((f) => f.type.startsWith('image/') || /\.(jpe?g|png|bmp|webp|gif|tiff?)$/i.test(f.name)));
});
$('threshold').addEventListener('input', () => {
  state.threshold = Number($('threshold').value);
  $('threshold-value').textContent = state.threshold.toFixed(2);
  for (const r of state.results) render(r);
});
$('download-all').addEventListener('click', () => {
  for (const r of state.results) if (r.url) r.link.click();
});

state.ready = main().catch((e) => {
  setStatus(`Could not start: ${e.message ?? e}`, 'error');
  state.error = String(e.message ?? e);
});
