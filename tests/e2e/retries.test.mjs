// The retries lesson in a real browser: immediate retries turn a short slowdown into a
// storm that outlives it (goodput near zero, ~3 attempts per call, double charges); the
// slowdown injection shows the server as unhealthy and restore as healthy again while the
// storm goes on; full jitter with a retry budget recovers; the sweep table runs every
// strategy on one seed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const figure = async (page, name) =>
  Number((await page.getAttribute(`.lesson-page [data-figure="${name}"]`, 'data-value')).replace(/[^\d.]/g, ''));

async function runToEnd(page, url) {
  await page.goto(url);
  await page.waitForSelector('.lesson-page');
  await page.click('text=Run to 240 s');
  await page.waitForFunction(() => /t = 240\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('immediate retries: the storm outlives the slowdown', async () => {
  const page = await openPage(suite.browser);
  await runToEnd(page, `${suite.site.url}?lesson=retries&seed=3&p.strategy=immediate`);
  // The scheduled slowdown ended at 80 s; the server is healthy, the clients are not.
  assert.ok(await page.isVisible('[data-node="server"][data-state="healthy"]'));
  assert.ok((await figure(page, 'goodput')) < 20, 'goodput stays near zero');
  assert.ok((await figure(page, 'amplification')) > 2, 'about three attempts per call');
  assert.equal(await figure(page, 'recovered'), 0);
  assert.ok((await figure(page, 'double_charges')) > 1000);
  assert.ok((await figure(page, 'wasted_work')) > 10000);
  await screenshot(page, 'retries-storm');
  assert.deepEqual(page.problems, []);
});

test('injected slowdown: the server turns unhealthy, restore brings it back, the storm goes on', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=retries&seed=5&p.strategy=immediate&p.slowdown_length=0`);
  await page.waitForSelector('[data-node="server"][data-state="healthy"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([3-9]|\d\d+)\.\d s/.test(document.querySelector('.clock').textContent));
  assert.ok((await figure(page, 'amplification')) < 1.05, 'no retries before the trigger');
  await page.click('[data-injection="slow-server"]');
  await page.waitForSelector('[data-node="server"][data-state="unhealthy"]');
  assert.match(await page.textContent('.event-log'), /is now unhealthy/);
  // Let the queue fill and the clients time out, then restore.
  await page.waitForFunction(
    () => Number(document.querySelector('[data-node="queue"]').textContent.replace(/\D*?(\d+) waiting.*/s, '$1')) > 300,
    null,
    { timeout: 30_000 },
  );
  await page.click('[data-injection="restore"]');
  await page.waitForSelector('[data-node="server"][data-state="healthy"]');
  // Ten simulated seconds later the load is still far above what the clients send.
  const restoredAt = Number((await page.textContent('.clock')).replace(/[^\d.]/g, ''));
  await page.waitForFunction(
    (at) => Number(document.querySelector('.clock').textContent.replace(/[^\d.]/g, '')) > at + 10,
    restoredAt,
    { timeout: 30_000 },
  );
  await page.click('.play');
  assert.ok((await figure(page, 'amplification')) > 1.5, 'retries multiply the attempts');
  assert.match(await page.textContent('[data-node="queue"]'), /([3-9]\d\d) waiting/, 'the queue stays full');
  assert.ok((await figure(page, 'goodput')) < 20, 'goodput stays near zero after the restore');
  assert.ok(await page.isVisible('[data-node="backoff"]'));
  await screenshot(page, 'retries-after-restore');
  assert.deepEqual(page.problems, []);
});

test('full jitter with a retry budget recovers, and keys remove double charges', async () => {
  const page = await openPage(suite.browser);
  await runToEnd(
    page,
    `${suite.site.url}?lesson=retries&seed=3&p.strategy=full-jitter&p.retry_budget=on&p.idempotency_keys=on`,
  );
  assert.equal(await figure(page, 'recovered'), 1);
  assert.ok((await figure(page, 'recovery_s')) < 20);
  assert.ok((await figure(page, 'goodput')) > 80);
  assert.equal(await figure(page, 'double_charges'), 0);
  assert.ok(await page.isVisible('[data-node="budget"][data-state="healthy"]'));
  await screenshot(page, 'retries-budget');
  assert.deepEqual(page.problems, []);
});

test('the sweep table runs every strategy on one seed', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=retries&seed=3`);
  await page.waitForSelector('.sweep-run');
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="decorrelated-jitter"]', { timeout: 60_000 });
  assert.equal(await page.locator('table.sweep tbody tr').count(), 6);
  const cell = async (option, key) =>
    Number(
      (await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value')).replace(/[^\d.]/g, ''),
    );
  assert.equal(await cell('none', 'recovered'), 1);
  assert.equal(await cell('immediate', 'recovered'), 0);
  assert.ok((await cell('exponential', 'contention_calls')) > (await cell('full-jitter', 'contention_calls')));
  await page.locator('table.sweep').scrollIntoViewIfNeeded();
  await screenshot(page, 'retries-sweep');
  assert.deepEqual(page.problems, []);
});
