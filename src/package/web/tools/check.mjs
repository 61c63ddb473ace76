// `npm test` of the web bundle: opens the page in headless Chromium, checks its self-check, then does what a
// user does (pick the bundled sample, move the threshold, download the mask) and compares the downloaded mask
// with the mask recorded at packaging (sample/expected_mask.png), within the bundle's stated tolerance.
//   node tools/check.mjs [--json]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openBundle, findChromium } from './browser.mjs';
import { readPng } from './png.mjs';

const binary = (png) => Uint8Array.from(png.gray, (v) => (v >= 128 ? 1 : 0));

/** Run the check on the bundle folder `dir`; throws an Error saying what failed, else returns what was found. */
export async function checkWebBundle(dir, { playwright, chromium = findChromium(), query = '' } = {}) {
  const b = await openBundle(dir, { playwright, chromium, query });
  try {
    const { manifest: m, info, page } = b;
    if (info.error) throw new Error(`the page did not start: ${info.error}`);
    const need = m.tolerance.maskAgreement;
    if (!info.selfCheck.ok) throw new Error(`the page's self-check failed: mask agreement ${info.selfCheck.agreement} (need ${need})`);

    // What a user does: pick the sample image in the file input.
    await page.setInputFiles('#files', join(dir, m.sample.input));
    await page.waitForFunction(() => (window.lesionfuse.processed ?? 0) >= 1);
    const err = await page.evaluate(() => document.querySelector('#results .error')?.textContent ?? null);
    if (err) throw new Error(`the page refused the sample: ${err}`);
    await page.waitForSelector('#results a.download:not(.pending)');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#results a.download')]);
    const got = readPng(readFileSync(await download.path()));
    const expected = readPng(readFileSync(join(dir, m.sample.mask)));
    if (got.width !== expected.width || got.height !== expected.height) {
      throw new Error(`downloaded mask is ${got.width} x ${got.height}, recorded ${expected.width} x ${expected.height}`);
    }
    const a = binary(got);
    const e = binary(expected);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === e[i]) same++;
    const agreement = same / a.length;
    if (!(agreement >= need)) throw new Error(`downloaded mask agrees with the recorded mask on ${(agreement * 100).toFixed(3)}% of pixels (need ${(need * 100).toFixed(1)}%)`);

    // The threshold slider re-thresholds the same probability map: a lower threshold never marks fewer pixels.
    const fgAt = async (t) => {
      await page.fill('#threshold', String(t));
      return page.evaluate(() => window.lesionfuse.results[0].foreground);
    };
    const lo = await fgAt(0.05);
    const mid = await fgAt(m.postprocessing.threshold);
    const hi = await fgAt(0.95);
    if (!(lo >= mid && mid >= hi)) throw new Error(`threshold slider: lesion pixels at 0.05/${m.postprocessing.threshold}/0.95 are ${lo}/${mid}/${hi}, not decreasing`);
    // Dropping the image on the page does the same as picking it.
    await page.fill('#threshold', String(m.postprocessing.threshold));
    await page.evaluate(async (path) => {
      const bytes = await (await fetch(path)).arrayBuffer();
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], path.split('/').pop(), { type: '' }));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, m.sample.input);
    await page.waitForFunction(() => (window.lesionfuse.processed ?? 0) >= 2);
    const dropped = await page.evaluate(() => window.lesionfuse.results.map((r) => r.foreground));
    if (dropped.length !== 2 || dropped[1] !== mid) throw new Error(`dropping the sample gave ${dropped.length - 1} result(s) with ${dropped[1]} lesion pixels, picking it ${mid}`);
    let fgExpected = 0;
    for (const v of e) fgExpected += v;
    if (b.foreign.length) throw new Error(`the page requested addresses outside its own folder: ${b.foreign.join(', ')}`);

    // The Content-Security-Policy holds: a script in the page that tries to send data to another origin (a
    // listening server on another port) is blocked, and that server receives nothing.
    const hits = [];
    const probe = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'access-control-allow-origin': '*' });
      res.end('ok');
    });
    await new Promise((ok) => probe.listen(0, '127.0.0.1', ok));
    const probeUrl = `http://127.0.0.1:${probe.address().port}/upload`;
    let attempt;
    try {
      attempt = await page.evaluate(async (u) => {
        const r = {};
        try {
          await fetch(u, { method: 'POST', body: 'pixels' });
          r.fetch = 'sent';
        } catch {
          r.fetch = 'blocked';
        }
        try {
          r.beacon = navigator.sendBeacon(u, 'pixels') ? 'queued' : 'blocked';
        } catch {
          r.beacon = 'blocked';
        }
        await new Promise((ok) => {
          const img = new Image();
          img.onload = img.onerror = ok;
          img.src = u + '?img';
        });
        await new Promise((ok) => setTimeout(ok, 500));
        return r;
      }, probeUrl);
    } finally {
      await new Promise((ok) => probe.close(ok));
    }
    if (attempt.fetch !== 'blocked' || hits.length) throw new Error(`the page could reach another origin (fetch ${attempt.fetch}, beacon ${attempt.beacon}; it received: ${hits.join(', ') || 'nothing'})`);
    return {
      ok: true, chromium: b.chromium, browserVersion: b.version, provider: info.provider, threads: info.threads,
      crossOriginIsolated: info.crossOriginIsolated, webgpu: info.webgpu, selfCheckAgreement: info.selfCheck.agreement,
      downloadAgreement: agreement, need, cspProbe: { ...attempt, received: hits.length }, lesionPixels: { downloaded: mid, recorded: fgExpected, atLow: lo, atHigh: hi }, consoleErrors: b.errors,
    };
  } finally {
    await b.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = resolve(fileURLToPath(new URL('..', import.meta.url)));
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch {
    console.error('playwright-core is not installed here: run `npm install` in this folder first');
    process.exit(1);
  }
  try {
    const r = await checkWebBundle(dir, { playwright });
    if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
    console.log(`ok: ${r.provider} (${r.threads} thread${r.threads > 1 ? 's' : ''}, cross-origin isolated: ${r.crossOriginIsolated}) in ${r.browserVersion}; WebGPU: ${r.webgpu.why}`);
    console.log(`ok: self-check mask agreement ${(r.selfCheckAgreement * 100).toFixed(3)}%, downloaded mask agreement ${(r.downloadAgreement * 100).toFixed(3)}% (need ${(r.need * 100).toFixed(1)}%)`);
    console.log(`ok: the page made no request outside its own folder; a script's attempt to send to another origin was blocked (fetch ${r.cspProbe.fetch}, beacon ${r.cspProbe.beacon}, received ${r.cspProbe.received})`);
    console.log('1 passed, 0 failed');
  } catch (e) {
    console.error(`web bundle check FAILED: ${e.message ?? e}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}
