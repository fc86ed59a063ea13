// The failover lesson in a real browser: losing AZ-a shows the primary down at once, the
// health check marks it unhealthy after its threshold of failed probes, DNS answers the
// standby, and the measured RTO and requests lost become numbers; side by side, the
// active-active variant on the same seed loses fewer requests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const figure = async (page, name) =>
  Number((await page.getAttribute(`[data-figure="${name}"]`, 'data-value')).replace(/[^\d.]/g, ''));

const clockSeconds = async (page) =>
  Number((await page.textContent('.clock')).match(/t = ([\d.]+) s/)[1]);

async function runToEnd(page) {
  await page.click('text=Run to 600 s');
  await page.waitForFunction(() => /t = 600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('losing AZ-a: primary down, check unhealthy, DNS moves to the standby, RTO measured', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=failover&seed=1`);
  await page.waitForSelector('[data-node="primary"][data-state="healthy"]');
  assert.ok(await page.isVisible('[data-node="check-primary"][data-state="healthy"]'));
  assert.ok(await page.isVisible('[data-node="dns"]'));
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([2-9]\d|\d{3,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="kill-primary"]');
  const killedAt = await clockSeconds(page);
  await page.waitForSelector('[data-node="primary"][data-state="down"]');
  await page.waitForSelector('[data-node="primary-1"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /AZ-a is now down/);
  // Before detection the check still says healthy while it counts failed probes.
  await page.waitForFunction(
    () => /healthy · [12]\/3/.test(document.querySelector('[data-node="check-primary"]').textContent),
    null,
    { timeout: 30_000 },
  );
  assert.equal(await page.getAttribute('[data-node="check-primary"]', 'data-state'), 'healthy');
  await page.waitForSelector('[data-node="check-primary"][data-state="unhealthy"]', { timeout: 30_000 });
  await page.click('.play');
  const detection = await figure(page, 'detection_s');
  assert.ok(detection > 20 && detection <= 30, `three probes 10 s apart: ${detection}`);
  await screenshot(page, 'failover-detected');

  await runToEnd(page);
  assert.ok(await page.isVisible('[data-node="secondary"][data-state="healthy"]'));
  const log = await page.textContent('.event-log');
  assert.ok((await figure(page, 'requests_lost')) > 100, 'requests sent to the dead site are lost');
  const rto = await figure(page, 'rto_s');
  assert.ok(Number.isFinite(rto) && rto > detection && rto <= detection + 61, `RTO ≈ detection + TTL: ${rto}`);
  assert.equal(await figure(page, 'stale_clients'), 0);
  assert.ok(killedAt > 0);
  await screenshot(page, 'failover-recovered');
  assert.ok(log.length > 0);
  assert.deepEqual(page.problems, []);
});

test('the timeline narrates the failover: unhealthy check, DNS answers the standby', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=failover&seed=2&p.dns_ttl=20`);
  await page.waitForSelector('[data-node="primary"]');
  await page.selectOption('.speed select', '25');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([1-9]\d)\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="kill-primary"]');
  await page.waitForFunction(
    () => /AZ-b was added/.test(document.querySelector('.event-log').textContent),
    null,
    { timeout: 30_000 },
  );
  const log = await page.textContent('.event-log');
  assert.match(log, /Check AZ-a is now unhealthy/);
  assert.match(log, /AZ-a was removed/);
  await page.click('.play');
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: active-active loses fewer requests than active-passive', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=failover&seed=3`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="mode = active-active"]');
  await page.selectOption('.speed select', '25');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([3-9]\d|\d{3,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="kill-primary"]');
  await page.click('.play');
  await page.waitForSelector('.comparison [data-node="primary"][data-state="down"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    Number(
      (
        await page
          .locator(`[data-variant="${variant}"] dt`, { hasText: name })
          .locator('xpath=following-sibling::dd')
          .first()
          .textContent()
      ).replace(/[^\d.]/g, ''),
    );
  const passive = await cell('mode = active-passive', 'Failed');
  const active = await cell('mode = active-active', 'Failed');
  assert.ok(passive > 100, `active-passive lost ${passive}`);
  assert.ok(active < 0.75 * passive, `active-active lost ${active} vs ${passive}`);
  await screenshot(page, 'failover-side-by-side');
  assert.deepEqual(page.problems, []);
});

test('active-active with a survivor smaller than the load: its queue fills and it sheds', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=failover&seed=1&p.mode=active-active&p.load=60`);
  await page.waitForSelector('[data-node="secondary-queue"]');
  await page.selectOption('.speed select', '25');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([3-9]\d|\d{3,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="kill-primary"]');
  await page.click('.play');
  await page.click('text=Run to 600 s');
  await page.waitForFunction(() => /t = 600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  const waiting = Number((await page.textContent('[data-node="secondary-queue"]')).match(/(\d+) waiting/)[1]);
  assert.ok(waiting > 150, `the survivor's queue is near its limit: ${waiting}`);
  assert.ok((await figure(page, 'rejected')) > 3000, 'the survivor sheds what it cannot serve');
  assert.equal(await figure(page, 'load_ratio'), 1.5);
  await screenshot(page, 'failover-survivor-saturated');
  assert.deepEqual(page.problems, []);
});
