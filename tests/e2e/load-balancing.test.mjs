// The load-balancing lesson in a real browser: a crashed server shows down at once, its
// target counts failed probes and leaves rotation (draining) after the threshold, with the
// detection time as a figure; it returns after the healthy threshold once restored.
// Breaking every health check makes the load balancer fail open; the sweep table ranks
// the algorithms on one seed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const figure = async (page, name) =>
  Number((await page.getAttribute(`[data-figure="${name}"]`, 'data-value')).replace(/[^\d.]/g, ''));

const clockSeconds = async (page) =>
  Number((await page.textContent('.clock')).match(/t = ([\d.]+) s/)[1]);

async function runToEnd(page) {
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('a crashed server: down at once, out of rotation after 3 failed probes, back after 5 passes', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=load-balancing&seed=1&p.check_interval=10&p.unhealthy_threshold=3`);
  await page.waitForSelector('[data-node="target-1"][data-state="healthy"]');
  for (const key of ['lb', 'queue-5', 'server-5', 'target-5']) {
    assert.ok(await page.isVisible(`[data-node="${key}"]`), key);
  }
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([2-9]\d|\d{3,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="kill-server"]');
  const killedAt = await clockSeconds(page);
  await page.waitForSelector('[data-node="server-1"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Server 1 is now down/);
  // Before detection the target still says healthy while it counts failed probes.
  await page.waitForFunction(
    () => /healthy · [12]\/3/.test(document.querySelector('[data-node="target-1"]').textContent),
    null,
    { timeout: 30_000 },
  );
  assert.equal(await page.getAttribute('[data-node="target-1"]', 'data-state'), 'healthy');
  await page.waitForSelector('[data-node="target-1"][data-state="draining"]', { timeout: 40_000 });
  await page.click('.play');
  const detection = await figure(page, 'detection_s');
  assert.ok(detection > 20 && detection <= 30, `three probes 10 s apart: ${detection}`);
  assert.match(await page.textContent('.event-log'), /Target 1 is now draining/);
  assert.ok((await figure(page, 'errors_during_detection')) > 50, 'requests sent to it meanwhile failed');
  assert.equal(await figure(page, 'targets_in_rotation'), 4);
  await screenshot(page, 'load-balancing-detected');

  await page.click('[data-injection="restore"]');
  await page.waitForSelector('[data-node="server-1"][data-state="healthy"]');
  assert.equal(await page.getAttribute('[data-node="target-1"]', 'data-state'), 'draining');
  await runToEnd(page);
  assert.ok(await page.isVisible('[data-node="target-1"][data-state="healthy"]'));
  const back = await figure(page, 'return_s');
  assert.ok(back > 40 && back <= 50.1, `five passed probes 10 s apart: ${back}`);
  assert.ok(killedAt > 0);
  assert.deepEqual(page.problems, []);
});

test('every health check failing: the load balancer fails open and requests still succeed', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=load-balancing&seed=2`);
  await page.waitForSelector('[data-node="lb"][data-state="healthy"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(() => /t = ([1-9]\d|\d{3,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="fail-checks"]');
  await page.waitForSelector('[data-node="lb"][data-state="unhealthy"]', { timeout: 30_000 });
  await page.click('.play');
  for (let target = 1; target <= 5; target += 1) {
    assert.equal(await page.getAttribute(`[data-node="target-${target}"]`, 'data-state'), 'draining');
  }
  assert.match(await page.textContent('.event-log'), /Load balancer is now unhealthy/);
  await runToEnd(page);
  assert.equal(await figure(page, 'failed'), 0);
  assert.ok((await figure(page, 'fail_open_s')) > 200);
  await screenshot(page, 'load-balancing-fail-open');
  assert.deepEqual(page.problems, []);
});

test('the sweep ranks the algorithms on one seed: least outstanding and power of two have the lowest p99', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=load-balancing&seed=1`);
  await page.waitForSelector('[data-node="lb"]');
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="power-of-two"]', { timeout: 60_000 });
  const p99 = async (option) =>
    Number((await page.textContent(`table.sweep tr[data-option="${option}"] td:nth-of-type(3)`)).replace(/[^\d.]/g, ''));
  const share = async (option, server) =>
    Number(await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="share_server_${server}"]`, 'data-value'));
  assert.ok((await p99('least-outstanding')) < (await p99('round-robin')));
  assert.ok((await p99('power-of-two')) < (await p99('random')));
  // Round robin gives the half-speed server 5 a full fifth; least outstanding much less.
  assert.ok(Math.abs((await share('round-robin', 5)) - 20) < 0.1);
  assert.ok((await share('least-outstanding', 5)) < 17);
  await page.locator('.sweep-panel').scrollIntoViewIfNeeded();
  await screenshot(page, 'load-balancing-sweep');
  assert.deepEqual(page.problems, []);
});
