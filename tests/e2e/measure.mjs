// Measures the release bundle (raw / gzip / brotli) and time to first render on localhost
// in headless Chromium. Not a test: scripts/bench.sh runs it after a release build and
// docs/PERFORMANCE.md records the figures. First render = navigation start until the
// app's lesson list is in the DOM (a MutationObserver installed before any script runs
// records performance.now() at that moment); median of 9 cold loads, each in a fresh
// browser context (no cache).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { serveDist, launchBrowser, distDir } from './support.mjs';

const files = await readdir(distDir);
const rows = [];
let total = { raw: 0, gzip: 0, brotli: 0 };
for (const name of files.filter((f) => /\.(wasm|js|css|html)$/.test(f))) {
  const body = await readFile(join(distDir, name));
  const row = {
    name: name.replace(/-[0-9a-f]{8,16}(_bg)?/, '$1'),
    raw: body.length,
    gzip: gzipSync(body, { level: 9 }).length,
    brotli: brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
  rows.push(row);
  for (const key of ['raw', 'gzip', 'brotli']) total[key] += row[key];
}
const kb = (bytes) => (bytes / 1024).toFixed(1);
console.log('| file | raw KB | gzip KB | brotli KB |\n|---|---|---|---|');
for (const row of rows) console.log(`| ${row.name} | ${kb(row.raw)} | ${kb(row.gzip)} | ${kb(row.brotli)} |`);
console.log(`| **total** | ${kb(total.raw)} | ${kb(total.gzip)} | ${kb(total.brotli)} |`);

const site = await serveDist();
const browser = await launchBrowser();
const samples = [];
for (let i = 0; i < 9; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.querySelector('.lesson-list li')) {
        window.__firstRender = performance.now();
        observer.disconnect();
      }
    }).observe(document, { childList: true, subtree: true });
  });
  await page.goto(site.url);
  await page.waitForFunction(() => window.__firstRender !== undefined);
  samples.push(await page.evaluate(() => window.__firstRender));
  await context.close();
}
await browser.close();
await site.close();
samples.sort((a, b) => a - b);
console.log(
  `\nTime to first render on localhost (9 cold loads): median ${samples[4].toFixed(0)} ms ` +
    `(min ${samples[0].toFixed(0)}, max ${samples[8].toFixed(0)})`,
);
