// The coupling lesson in a real browser: killing an order server shows it down and the
// web tier's error count climbing when it is called directly; side by side on the same
// seed, the queue variant's caller returns no error at all while its backlog absorbs the
// crash; with a slow database on schedule, the table of every coupling shows which one
// meets the hard real-time and which the batch deadline.
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
  await page.click('text=Run to 600 s');
  await page.waitForFunction(() => /t = 600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 90_000,
  });
}

test('direct calls: a dead order server makes the caller return errors until it is restored', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=coupling&seed=3`);
  await page.waitForSelector('[data-node="server-1"][data-state="healthy"]');
  assert.equal(await page.locator('[data-node="balancer"]').count(), 0, 'no middle in direct mode');
  await seek(page, 120);
  assert.equal(await figure(page, 'caller_errors'), 0, 'no errors before the crash');
  await page.click('[data-injection="kill-server"]');
  await page.waitForSelector('[data-node="server-1"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Order server 1 is now down/);
  // Play at 10× until the web tier is marked unhealthy by its error share.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForSelector('[data-node="web"][data-state="unhealthy"]', { timeout: 20_000 });
  await page.click('.play');
  const early = await figure(page, 'caller_errors');
  assert.ok(early > 0, `errors reach the caller: ${early}`);
  await screenshot(page, 'coupling-direct-server-down');
  await seek(page, 240);
  await page.click('[data-injection="restore"]');
  await page.waitForSelector('[data-node="server-1"][data-state="healthy"]');
  await runToEnd(page);
  const errors = await figure(page, 'caller_errors');
  assert.ok(errors > 1500 && errors < 2500, `a third of two minutes of calls failed: ${errors}`);
  assert.ok((await figure(page, 'web_unhealthy_s')) >= 115);
  assert.equal(await page.locator('[data-node="web"][data-state="healthy"]').count(), 1, 'recovered');
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: the crash ripples to the direct caller but not to the queue caller', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=coupling&seed=3&p.coupling=queue`);
  await page.waitForSelector('[data-node="queue"]');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="coupling = direct"]');
  await seek(page, 120);
  await page.click('[data-injection="kill-server"]');
  const variant = (name) => page.locator(`[data-variant="coupling = ${name}"]`);
  await variant('queue').locator('[data-node="server-1"][data-state="down"]').waitFor();
  await variant('direct').locator('[data-node="server-1"][data-state="down"]').waitFor();
  await runToEnd(page);
  const cell = async (name, label) =>
    number(
      await variant(name)
        .locator('dt', { hasText: label })
        .locator('xpath=following-sibling::dd')
        .textContent(),
    );
  const queueErrors = await cell('queue', 'Caller errors');
  const directErrors = await cell('direct', 'Caller errors');
  assert.equal(queueErrors, 0, 'the queue caller never noticed');
  assert.ok(directErrors > 5000, `the direct caller failed for the rest of the run: ${directErrors}`);
  assert.equal(await cell('queue', 'Failed'), 0);
  assert.ok((await cell('queue', 'Completed')) > 29_000, 'every job was done by the other workers');
  assert.equal(await variant('queue').locator('[data-node="web"][data-state="healthy"]').count(), 1);
  assert.equal(await variant('direct').locator('[data-node="web"][data-state="unhealthy"]').count(), 1);
  await screenshot(page, 'coupling-side-by-side');
  assert.deepEqual(page.problems, []);
});

test('a scheduled slow database, tabulated: the queue meets batch deadlines, direct calls meet none', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=coupling&seed=3&p.coupling=load-balancer&p.scheduled_failure=slow-database`);
  await page.waitForSelector('[data-node="balancer"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForSelector('[data-node="database"][data-state="unhealthy"]', { timeout: 30_000 });
  await page.waitForSelector('[data-node="web"][data-state="unhealthy"]', { timeout: 30_000 });
  await page.click('.play');
  await screenshot(page, 'coupling-slow-database-ripple');
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="queue"]', { timeout: 60_000 });
  const value = async (option, key) =>
    number(await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  assert.equal(await value('queue', 'caller_errors'), 0);
  assert.ok((await value('direct', 'caller_errors')) > 1000);
  assert.ok((await value('load-balancer', 'caller_errors')) > 1000);
  assert.equal(await value('queue', 'within_batch_pct'), 100);
  assert.ok((await value('queue', 'within_hard_pct')) < 90, 'the backlog misses hard deadlines');
  assert.ok((await value('direct', 'within_batch_pct')) < 90, 'failed calls never finish');
  assert.ok((await value('queue', 'backlog_peak')) > 1000);
  await page.locator('.sweep-panel').scrollIntoViewIfNeeded();
  await screenshot(page, 'coupling-sweep');
  assert.deepEqual(page.problems, []);
});
