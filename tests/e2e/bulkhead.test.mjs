// The bulkhead lesson in a real browser: slowing the recommendations API down with one
// shared thread pool saturates the pool and payments fail too; side by side on the same
// seed, the bulkhead variant keeps payments at 100 % while only the recommendations pool
// saturates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) => number(await page.getAttribute(`[data-figure="${name}"]`, 'data-value'));

async function seek(page, seconds) {
  await page.$eval(
    '.timeline-slider',
    (slider, value) => {
      slider.value = String(value);
      slider.dispatchEvent(new Event('input', { bubbles: true }));
    },
    seconds,
  );
}

async function runToEnd(page) {
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('shared pool: a slow recommendations API saturates the pool and payments fail too', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=bulkhead&seed=3`);
  await page.waitForSelector('[data-node="pool-shared"]');
  await seek(page, 60);
  assert.equal(await figure(page, 'payments_ok_pct'), 100, 'healthy before the slowdown');
  await page.click('[data-injection="slow-recommendations"]');
  await page.waitForSelector('[data-node="recommendations"][data-state="unhealthy"]');
  assert.match(await page.textContent('.event-log'), /Recommender is now unhealthy/);
  // Play a little at 10× so the pool fills up visibly.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForSelector('[data-node="pool-shared"][data-state="unhealthy"]', { timeout: 20_000 });
  await page.click('.play');
  assert.match(await page.textContent('[data-node="pool-shared"]'), /20\/20/, 'every thread busy');
  await screenshot(page, 'bulkhead-shared-saturated');
  await runToEnd(page);
  const paymentsOk = await figure(page, 'payments_ok_pct');
  assert.ok(paymentsOk < 60, `payments starve in the shared pool: ${paymentsOk}%`);
  assert.ok((await figure(page, 'payments_failed')) > 1000);
  assert.equal(await page.locator('[data-node="payments"][data-state="healthy"]').count(), 1);
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: bulkheads keep payments whole, the shared pool does not', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=bulkhead&seed=3`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="isolation = bulkheads"]');
  await seek(page, 60);
  await page.click('[data-injection="slow-recommendations"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .textContent(),
    );
  const shared = await cell('isolation = shared', 'Payments succeeded');
  const bulkheads = await cell('isolation = bulkheads', 'Payments succeeded');
  assert.ok(shared < 60, `shared: ${shared}%`);
  assert.equal(bulkheads, 100, 'bulkheads: payments untouched');
  const variant = (name) => page.locator(`[data-variant="isolation = ${name}"]`);
  assert.equal(await variant('shared').locator('[data-node="pool-shared"][data-state="unhealthy"]').count(), 1);
  assert.equal(
    await variant('bulkheads').locator('[data-node="pool-recommendations"][data-state="unhealthy"]').count(),
    1,
  );
  assert.equal(await variant('bulkheads').locator('[data-node="pool-payments"][data-state="healthy"]').count(), 1);
  assert.equal(await variant('bulkheads').locator('[data-node="recommendations"][data-state="unhealthy"]').count(), 1);
  await screenshot(page, 'bulkhead-side-by-side');
  assert.deepEqual(page.problems, []);
});
