// The disaster-recovery lesson in a real browser: losing the primary region takes its
// nodes down and the recovery's phases follow in the event log; the RTO and RPO figures
// appear; run to the end, the sweep table lists all four strategies with RTO falling and
// cost rising.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) => number(await page.getAttribute(`.figures [data-figure="${name}"]`, 'data-value'));
const log = (page) => page.textContent('.event-log');

async function runToEnd(page, url) {
  await page.goto(url);
  await page.waitForSelector('.lesson-page');
  await page.click('text=Run to 18000 s');
  await page.waitForFunction(() => /t = 18000\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('losing the primary region: nodes down, recovery phases, RTO and RPO figures', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=disaster-recovery&seed=3&p.scheduled_failure=off`);
  await page.waitForSelector('[data-node="primary-app"][data-state="healthy"]');
  assert.ok(await page.isVisible('[data-node="dr-app"]'));
  await page.selectOption('.speed select', '100');
  await page.click('.play');
  await page.waitForTimeout(1500);
  await page.click('[data-injection="lose-region"]');
  await page.waitForSelector('[data-node="primary-app"][data-state="down"]');
  await page.waitForSelector('[data-node="primary-db"][data-state="down"]');
  assert.match(await log(page), /Primary app is now down/);
  // The disaster is declared after the detection time: the health check turns unhealthy.
  await page.waitForSelector('[data-node="health-check"][data-state="unhealthy"]', { timeout: 30_000 });
  // Detection (60 s), promotion (60 s), DNS TTL (60 s): about 2 s of real time at 100×.
  await page.waitForFunction(() => /Route 53 DNS is now healthy/.test(document.querySelector('.event-log').textContent), null, {
    timeout: 30_000,
  });
  await page.click('.play'); // pause
  const text = await log(page);
  assert.match(text, /DR replica is now healthy/);
  assert.match(text, /Route 53 DNS is now draining/);
  assert.ok(await page.isVisible('[data-node="primary-app"][data-state="down"]'));
  assert.equal(await figure(page, 'rto_s'), 180);
  assert.equal(await figure(page, 'rpo_s'), 10);
  assert.ok((await figure(page, 'failed')) > 0, 'users saw errors during the outage');
  await screenshot(page, 'disaster-recovery-lost-region');
  assert.deepEqual(page.problems, []);
});

test('run to the end, then compare every strategy on the same seed', async () => {
  const page = await openPage(suite.browser);
  await runToEnd(page, `${suite.site.url}?lesson=disaster-recovery&seed=1`);
  assert.equal(await figure(page, 'rto_s'), 180);
  assert.equal(await figure(page, 'full_capacity_s'), 660);
  assert.ok((await figure(page, 'writes_lost')) > 0);
  assert.ok(Math.abs((await figure(page, 'monthly_cost')) - 561.11) < 0.005);
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="multi-site"]', { timeout: 60_000 });
  const cell = async (option, key) =>
    number(await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  const options = ['backup-restore', 'pilot-light', 'warm-standby', 'multi-site'];
  const rto = [];
  const cost = [];
  for (const option of options) {
    rto.push(await cell(option, 'rto_s'));
    cost.push(await cell(option, 'monthly_cost'));
  }
  assert.deepEqual(rto, [7320, 720, 180, 120]);
  for (let i = 1; i < options.length; i += 1) assert.ok(cost[i] > cost[i - 1], `cost rises: ${cost}`);
  await page.locator('.sweep-panel').scrollIntoViewIfNeeded();
  await screenshot(page, 'disaster-recovery-sweep');
  assert.deepEqual(page.problems, []);
});

test('backup & restore: the DR database is restored from the copied backups, which takes hours', async () => {
  const page = await openPage(suite.browser);
  await runToEnd(page, `${suite.site.url}?lesson=disaster-recovery&seed=1&p.strategy=backup-restore`);
  assert.ok(await page.isVisible('[data-node="dr-db"][data-state="healthy"]'));
  assert.equal(await figure(page, 'rto_s'), 7320);
  assert.equal(await figure(page, 'rpo_s'), 1200);
  assert.match(await log(page), /DR DB \(backups\) is now healthy/);
  await screenshot(page, 'disaster-recovery-backup-restore');
  assert.deepEqual(page.problems, []);
});
