// The rate limiting lesson in a real browser: injecting the noisy client's flood raises
// its 429s while the polite clients keep being answered; without limits the flood makes
// the server unhealthy and the polite clients fail; the shedding table shows goodput
// collapse without shedding and near-capacity goodput with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) => number(await page.getAttribute(`[data-figure="${name}"]`, 'data-value'));

async function runToEnd(page, url) {
  await page.goto(url);
  await page.waitForSelector('.lesson-page');
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('the noisy flood is answered with 429s while polite clients keep succeeding', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=rate-limiting&seed=3&p.flood_length=0`);
  await page.waitForSelector('[data-node="limiter"]');
  assert.equal(await page.getAttribute('[data-node="limiter"]', 'data-state'), 'healthy');
  await page.selectOption('.speed select', '5');
  await page.click('.play');
  await page.waitForTimeout(800);
  assert.equal(await figure(page, 'noisy_429s'), 0, 'a calm client is never throttled');
  await page.click('[data-injection="noisy-flood"]');
  await page.waitForSelector('[data-node="noisy"][data-state="unhealthy"]');
  assert.match(await page.textContent('.event-log'), /Noisy client is now unhealthy/);
  await page.waitForFunction(
    () => Number(document.querySelector('[data-figure="noisy_429s"]').dataset.value.replace(/[^\d.]/g, '')) > 300,
    null,
    { timeout: 30_000 },
  );
  assert.ok((await figure(page, 'polite_ok_pct')) > 99, 'polite clients keep being answered');
  assert.equal(await figure(page, 'polite_429s'), 0, 'only the noisy client is throttled');
  await page.click('.play');
  await screenshot(page, 'rate-limiting-flood');
  await page.click('[data-injection="calm-down"]');
  await page.waitForSelector('[data-node="noisy"][data-state="healthy"]');
  assert.deepEqual(page.problems, []);
});

test('without limits the flood starves the polite clients; shedding keeps goodput up', async () => {
  const page = await openPage(suite.browser);
  await runToEnd(page, `${suite.site.url}?lesson=rate-limiting&seed=4&p.rate_limit=off`);
  assert.equal(await page.getAttribute('[data-node="limiter"]', 'data-state'), 'off');
  const polite = await figure(page, 'polite_ok_pct');
  assert.ok(polite < 70, `polite clients answered ${polite}%`);
  assert.ok((await figure(page, 'wasted_work')) > 5000, 'work for clients who gave up');
  assert.match(await page.textContent('.event-log'), /Server is now (unhealthy|healthy)/);

  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tr[data-option="latency"]', { timeout: 60_000 });
  const cell = async (option, key) => number(await page.getAttribute(`tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  const none = await cell('none', 'goodput_pct');
  const byQueue = await cell('queue-length', 'goodput_pct');
  const byLatency = await cell('latency', 'goodput_pct');
  assert.ok(none < 60, `goodput without shedding ${none}%`);
  assert.ok(byQueue > 95 && byLatency > 95, `goodput with shedding ${byQueue}% and ${byLatency}%`);
  await screenshot(page, 'rate-limiting-no-limits-sweep');
  assert.deepEqual(page.problems, []);
});

test('the goodput curve collapses past capacity without shedding and holds with it', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=rate-limiting&seed=1`);
  await page.click('text=Measure the curves (21 runs)');
  await page.waitForSelector('.goodput-chart .measured-list li[data-shedding="latency"]', { timeout: 60_000 });
  const at3x = async (shedding) => {
    const text = await page.textContent(`.goodput-chart .measured-list li[data-shedding="${shedding}"]`);
    // The last point is the highest offered load (about 300% of capacity).
    const points = [...text.matchAll(/(\d+)% offered → (\d+)% goodput/g)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.equal(points.length, 7);
    assert.ok(points[6][0] > 280, `offered ${points[6][0]}%`);
    return points[6][1];
  };
  assert.ok((await at3x('none')) < 20);
  assert.ok((await at3x('queue-length')) > 90);
  assert.ok((await at3x('latency')) > 90);
  assert.equal(await page.locator('.goodput-curve').count(), 3);
  await page.locator('.goodput-chart').screenshot({ path: 'screenshots/rate-limiting-goodput-curve.png' });
  assert.deepEqual(page.problems, []);
});
