// The serverless lesson in a real browser: spiky load on Lambda shows cold starts in the
// tail and costs little, the sweep shows the fleet cheaper at medium load; a burst against
// a concurrency limit throttles while new environments start; side by side, the fleet on
// the same arrivals has no cold starts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) => number(await page.getAttribute(`[data-figure="${name}"]`, 'data-value'));

async function runToEnd(page) {
  await page.click('text=Run to 1800 s');
  await page.waitForFunction(() => /t = 1800\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 90_000,
  });
}

test('spiky load on Lambda: cold starts set the tail, the sweep shows the cost crossover', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=serverless&seed=3`);
  await page.waitForSelector('[data-node="env-1"]');
  assert.equal(await page.getAttribute('[data-node="env-1"]', 'data-state'), 'off');
  await runToEnd(page);
  assert.ok((await figure(page, 'cold_starts')) > 50, 'every burst starts cold');
  assert.ok((await figure(page, 'cold_p50')) > 1.0, 'a cold start pays the 1 s Init');
  assert.ok((await figure(page, 'warm_p99')) < 0.7);
  assert.ok((await figure(page, 'cost_per_month')) < 20);
  assert.equal(await figure(page, 'throttled'), 0);
  assert.match(await page.textContent('.event-log'), /is now (off|healthy|starting)/);
  await screenshot(page, 'serverless-spiky');

  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tr[data-option="spiky"]', { timeout: 60_000 });
  const cell = async (option, key) =>
    number(await page.getAttribute(`tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  assert.ok((await cell('low', 'cost_per_month')) < 5);
  assert.ok((await cell('medium', 'cost_per_month')) > 100, 'per-request billing at 25 req/s around the clock');
  await screenshot(page, 'serverless-sweep');
  assert.deepEqual(page.problems, []);
});

test('a burst against the concurrency limit cold-starts environments and throttles', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=serverless&seed=2&p.profile=medium&p.concurrency_limit=50`);
  await page.waitForSelector('[data-node="env-1"]');
  await page.selectOption('.speed select', '5');
  await page.click('.play');
  await page.waitForSelector('[data-node="env-1"][data-state="healthy"]', { timeout: 20_000 });
  const coldBefore = await figure(page, 'cold_starts');
  await page.click('[data-injection="burst"]');
  await page.waitForSelector('[data-node="env-more"][data-state="healthy"]', { timeout: 20_000 });
  await page.waitForFunction(
    () => Number(document.querySelector('[data-figure="throttled"]').dataset.value) > 0,
    null,
    { timeout: 30_000 },
  );
  await page.click('.play');
  assert.ok((await figure(page, 'peak_concurrency')) <= 50, 'never above the limit');
  assert.ok((await figure(page, 'cold_starts')) > coldBefore + 10, 'the burst cold-starts new environments');
  assert.match(await page.textContent('.event-log'), /injected: burst/);
  await screenshot(page, 'serverless-burst');
  assert.deepEqual(page.problems, []);
});

test('side by side: the fleet on the same arrivals has no cold starts', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=serverless&seed=3`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="platform = fleet"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .textContent(),
    );
  assert.ok((await cell('platform = lambda', 'Cold starts')) > 50);
  assert.equal(await cell('platform = fleet', 'Cold starts'), 0);
  assert.ok(await page.isVisible('.comparison [data-node="instance-2"]'));
  await screenshot(page, 'serverless-side-by-side');
  assert.deepEqual(page.problems, []);
});
