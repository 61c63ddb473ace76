// Opens the web bundle in a headless system Chromium (Debian's `chromium` or `chromium-headless-shell`
// package) through playwright-core, with nothing downloaded. Shared by check.mjs (npm test) and bench.mjs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from './serve.mjs';

/** Where a system Chromium is: $CHROMIUM_PATH, else Debian's usual paths. null when none. */
export function findChromium() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-headless-shell', '/usr/lib/chromium/chromium-headless-shell', '/usr/bin/chromium-browser'];
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

/**
 * Serve `dir`, open its page in headless Chromium and wait until the page is ready (model loaded, self-check
 * done). `playwright` is the playwright-core module. Every request the page makes is recorded: any that does
 * not go to the bundle's own server is a failure of the page's privacy promise, reported in `foreign`.
 */
export async function openBundle(dir, { playwright, chromium = findChromium(), query = '', isolated = true, timeoutMs = 120_000 } = {}) {
  if (!chromium) throw new Error('no Chromium found: install Debian\'s chromium (apt-get install chromium) or set CHROMIUM_PATH');
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const { server, url } = await serve(dir, { isolated });
  let browser;
  try {
    browser = await playwright.chromium.launch({ executablePath: chromium, headless: true, args: ['--enable-unsafe-webgpu'] });
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const origin = new URL(url).origin;
    const foreign = [];
    const errors = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol !== 'blob:' && u.protocol !== 'data:' && u.origin !== origin) foreign.push(r.url());
    });
    page.on('pageerror', (e) => errors.push(String(e.message ?? e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.setDefaultTimeout(timeoutMs);
    await page.goto(url + 'index.html' + query);
    await page.waitForFunction(() => window.lesionfuse && (window.lesionfuse.selfCheck || window.lesionfuse.error), null, { timeout: timeoutMs });
    await page.evaluate(() => window.lesionfuse.ready);
    const info = await page.evaluate(() => ({
      error: window.lesionfuse.error ?? null, selfCheck: window.lesionfuse.selfCheck, provider: window.lesionfuse.provider,
      threads: window.lesionfuse.threads, webgpu: window.lesionfuse.webgpu, crossOriginIsolated: self.crossOriginIsolated,
      userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency,
    }));
    const close = async () => {
      await browser.close().catch(() => {});
      await new Promise((ok) => server.close(ok));
    };
    return { page, context, browser, manifest, info, foreign, errors, url, chromium, version: browser.version(), close };
  } catch (e) {
    await browser?.close().catch(() => {});
    await new Promise((ok) => server.close(ok));
    throw e;
  }
}
