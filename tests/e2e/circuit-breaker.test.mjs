// The circuit breaker lesson in a real browser: injecting a hanging dependency opens the
// breaker (node, state-machine panel, event log, timeline marker); on the same seed the
// unprotected service keeps its threads exhausted while the breaker short-circuits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const figure = async (page, name) => Number((await page.getAttribute(`[data-figure="${name}"]`, 'data-value')).replace(/[^\d.]/g, ''));

async function runToEnd(page, url) {
  await page.goto(url);
  await page.waitForSelector('.lesson-page');
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('a hanging dependency opens the breaker, which the page shows everywhere', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=circuit-breaker&seed=1&p.incident=none`);
  await page.waitForSelector('[data-node="breaker"][data-state="healthy"]');
  assert.ok(await page.isVisible('[data-breaker-state="CLOSED"].current'));
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(500);
  await page.click('[data-injection="dependency-hangs"]');
  await page.waitForSelector('[data-node="dependency"][data-state="unhealthy"]');
  // Ten calls must time out (2 s) before the window decides: a few simulated seconds.
  await page.waitForSelector('[data-node="breaker"][data-state="open"]', { timeout: 20_000 });
  await page.click('.play');
  assert.ok(await page.isVisible('[data-breaker-state="OPEN"].current'));
  assert.match(await page.textContent('.event-log'), /Circuit breaker is now open/);
  assert.ok((await page.locator('.timeline-markers .marker').count()) >= 2, 'injection and opening marked');
  assert.ok((await figure(page, 'window_failure_pct')) >= 50);
  await screenshot(page, 'circuit-breaker-open');

  // Recovery: after the 10 s wait, trial calls succeed and the breaker closes.
  await page.click('[data-injection="dependency-recovers"]');
  await page.click('.play');
  await page.waitForSelector('[data-node="breaker"][data-state="healthy"]', { timeout: 30_000 });
  await page.click('.play');
  assert.match(await page.textContent('.event-log'), /Circuit breaker is now half-open/);
  assert.deepEqual(page.problems, []);
});

test('same seed, same hang: the breaker answers fast, the bare service runs out of threads', async () => {
  const guarded = await openPage(suite.browser);
  await runToEnd(guarded, `${suite.site.url}?lesson=circuit-breaker&seed=2`);
  assert.ok((await figure(guarded, 'short_circuited')) > 1500);
  assert.ok((await figure(guarded, 'threads_exhausted_s')) < 10);
  assert.ok((await figure(guarded, 'breaker_opened')) >= 5);
  await screenshot(guarded, 'circuit-breaker-guarded');

  const bare = await openPage(suite.browser);
  await runToEnd(bare, `${suite.site.url}?lesson=circuit-breaker&seed=2&p.protection=none`);
  assert.ok((await figure(bare, 'threads_exhausted_s')) > 100);
  assert.ok((await figure(bare, 'failed')) > 2000);
  assert.equal(await bare.locator('[data-node="breaker"]').count(), 0);
  await screenshot(bare, 'circuit-breaker-bare');
  assert.deepEqual(guarded.problems, []);
  assert.deepEqual(bare.problems, []);
});
