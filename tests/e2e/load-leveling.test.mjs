// The queue-based load leveling lesson in a real browser: the queue variant absorbs the
// spike with no failures; the direct variant on the same seed times out; a crashed
// worker shows as down and is replaced.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const figure = async (page, name) => Number((await page.getAttribute(`[data-figure="${name}"]`, 'data-value')).replace(/[^\d.]/g, ''));

async function runToEnd(page, url) {
  await page.goto(url);
  await page.waitForSelector('.lesson-page');
  await page.click('text=Run to 900 s');
  await page.waitForFunction(() => /t = 900\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('queue vs direct on the same seed: the queue loses nothing, direct calls time out', async () => {
  const queue = await openPage(suite.browser);
  await runToEnd(queue, `${suite.site.url}?lesson=queue-load-leveling&seed=4`);
  assert.equal(await figure(queue, 'failed'), 0);
  assert.ok((await figure(queue, 'completed')) > 1500);
  assert.ok((await figure(queue, 'cost')) > 0);
  await screenshot(queue, 'load-leveling-queue');

  const direct = await openPage(suite.browser);
  await runToEnd(direct, `${suite.site.url}?lesson=queue-load-leveling&seed=4&p.coupling=direct`);
  assert.ok((await figure(direct, 'failed')) > 300, 'timeouts during the spike');
  assert.ok(await direct.isVisible('[data-node="balancer"]'));
  await screenshot(direct, 'load-leveling-direct');
  assert.deepEqual(queue.problems, []);
  assert.deepEqual(direct.problems, []);
});

test('a crashed worker shows as down, then its replacement starts', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queue-load-leveling&seed=2&p.launch_delay=5`);
  await page.waitForSelector('[data-node="worker-1"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(600);
  await page.click('[data-injection="crash-worker"]');
  await page.waitForSelector('[data-node^="worker-"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /is now down/);
  await page.waitForFunction(
    () => /is now (starting|healthy)/.test(document.querySelector('.event-log').textContent),
    null,
    { timeout: 20_000 },
  );
  await page.click('.play');
  await screenshot(page, 'load-leveling-crash');
  assert.deepEqual(page.problems, []);
});

test('side by side: both variants run on the same seed and diverge only in failures', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queue-load-leveling&seed=4`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="coupling = direct"]');
  await page.click('text=Run to 900 s');
  await page.waitForFunction(() => /t = 900\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  const cell = async (variant, name) =>
    Number(
      (
        await page
          .locator(`[data-variant="${variant}"] dt`, { hasText: name })
          .locator('xpath=following-sibling::dd')
          .textContent()
      ).replace(/[^\d.]/g, ''),
    );
  assert.equal(await cell('coupling = queue', 'Failed'), 0);
  assert.ok((await cell('coupling = direct', 'Failed')) > 300);
  await screenshot(page, 'load-leveling-side-by-side');
  assert.deepEqual(page.problems, []);
});
