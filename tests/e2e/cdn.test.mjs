// The CDN lesson in a real browser: with edges on, Asia-Pacific's median latency is the
// short edge round trip; invalidating empties every edge; with the origin down the
// origin node shows down while edges keep answering (stale copies served on error), and
// restoring brings it back. Side by side on one seed, edges off put Asia-Pacific's median
// above the 170 ms ocean round trip and the origin takes every request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) =>
  number(await page.getAttribute(`.figures [data-figure="${name}"]`, 'data-value'));
const log = (page) => page.textContent('.event-log');

async function seek(page, seconds) {
  await page.$eval(
    '.timeline-slider',
    (slider, value) => {
      slider.value = String(value);
      slider.dispatchEvent(new Event('input', { bubbles: true }));
    },
    seconds,
  );
  await page.waitForFunction(
    (t) => new RegExp(`t = ${t}\\.0 s`).test(document.querySelector('.clock').textContent),
    seconds,
    { timeout: 30_000 },
  );
}

test('edges answer nearby; invalidation empties them; the origin fails and edges keep serving', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=cdn&seed=3`);
  for (const region of ['na', 'eu', 'ap', 'sa']) {
    await page.waitForSelector(`[data-node="edge-${region}"]`);
  }
  await page.waitForSelector('[data-node="origin"][data-state="healthy"]');
  await seek(page, 60);
  assert.ok((await figure(page, 'hit_ratio')) > 40, 'edges are warm');
  const p50 = await figure(page, 'latency_p50_ap_ms');
  assert.ok(p50 < 20, `Asia-Pacific p50 with edges: ${p50} ms`);
  assert.ok((await figure(page, 'cached_objects')) > 1000);
  await page.click('[data-injection="invalidate"]');
  await page.waitForFunction(
    () => document.querySelector('.figures [data-figure="cached_objects"]').getAttribute('data-value') === '0',
  );
  await seek(page, 90);
  await page.click('[data-injection="origin-down"]');
  await page.waitForSelector('[data-node="origin"][data-state="down"]');
  assert.match(await log(page), /Origin us-east-1 is now down/);
  // Play at 10× for a moment so tokens are on the links, then look at the picture.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(800);
  await page.click('.play');
  await screenshot(page, 'cdn-origin-down');
  await seek(page, 150);
  assert.ok((await figure(page, 'stale_if_error')) > 100, 'expired copies served while the origin is down');
  assert.ok((await figure(page, 'hit_ratio')) > 30, 'fresh copies still hit');
  await page.click('[data-injection="restore"]');
  await page.waitForSelector('[data-node="origin"][data-state="healthy"]');
  assert.match(await log(page), /Origin us-east-1 is now healthy/);
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: without edges Asia-Pacific waits for the ocean', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=cdn&seed=2`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="edge = off"]');
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .first()
        .textContent(),
    );
  const on = await cell('edge = on', 'p50 Asia-Pacific');
  const off = await cell('edge = off', 'p50 Asia-Pacific');
  assert.ok(on < 20, `with edges: ${on} ms`);
  assert.ok(off > 170, `without edges: ${off} ms`);
  const originOn = await cell('edge = on', 'Origin load');
  const originOff = await cell('edge = off', 'Origin load');
  assert.ok(originOn < originOff / 2, `origin load ${originOn} vs ${originOff} req/s`);
  const variant = (value) => page.locator(`[data-variant="edge = ${value}"]`);
  assert.equal(await variant('on').locator('[data-node="edge-ap"]').count(), 1);
  assert.equal(await variant('off').locator('[data-node="edge-ap"]').count(), 0);
  await page.locator('.comparison').scrollIntoViewIfNeeded();
  await screenshot(page, 'cdn-side-by-side');
  assert.deepEqual(page.problems, []);
});
