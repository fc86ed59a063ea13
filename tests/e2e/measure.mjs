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

// Timeline seek: the page rebuilds the past by replaying from the seed (with the
// journal's commands), so a jump costs a replay of everything up to the target. For each
// lesson: run to the end, then drag the slider back 10 simulated minutes (or to the start
// of a shorter lesson) and to 1 s before the end (the worst case: replaying almost the
// whole run). Time = input event until the next frame has been drawn; median of 7.
const seekSite = await serveDist();
const seekBrowser = await launchBrowser();
const seekPage = await (await seekBrowser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
console.log('\n| lesson | run length | jump back 10 min (or to start) | to 1 s before the end |\n|---|---|---|---|');
await seekPage.goto(seekSite.url);
await seekPage.waitForSelector('.lesson-list li');
const lessonIds = await seekPage.$$eval('.lesson-list [data-lesson]', (items) => items.map((item) => item.dataset.lesson));
for (const id of lessonIds) {
  await seekPage.goto(`${seekSite.url}?lesson=${id}&seed=1`);
  await seekPage.waitForSelector('.timeline-slider');
  const horizon = Number(await seekPage.getAttribute('.timeline-slider', 'max'));
  await seekPage.click(`text=Run to ${horizon} s`);
  await seekPage.waitForFunction(
    (end) => Number(document.querySelector('.timeline-slider').value) >= end,
    horizon,
    { timeout: 120_000 },
  );
  const timeSeek = (target) =>
    seekPage.evaluate(async ([target, end]) => {
      const slider = document.querySelector('.timeline-slider');
      const jump = async (value) => {
        const start = performance.now();
        slider.value = String(value);
        slider.dispatchEvent(new Event('input', { bubbles: true }));
        await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
        return performance.now() - start;
      };
      const samples = [];
      for (let i = 0; i < 7; i++) {
        await jump(end);
        samples.push(await jump(target));
      }
      samples.sort((a, b) => a - b);
      return samples[3];
    }, [target, horizon]);
  const back = await timeSeek(Math.max(0, horizon - 600));
  const worst = await timeSeek(horizon - 1);
  console.log(`| ${id} | ${horizon} s | ${back.toFixed(1)} ms | ${worst.toFixed(1)} ms |`);
}
await seekBrowser.close();
await seekSite.close();
