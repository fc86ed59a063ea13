// The scaling lesson in a real browser: a deploy that patches instances in place takes
// them out of service (down in the picture) and fails requests, while a rolling
// replacement from a new image on the same seed fails none; killing the lone scale-up
// instance leaves it down until it is restored; run to the end, the sweep table shows the
// fixed fleet costing more than target tracking and scale-up failing requests at resizes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) => number(await page.getAttribute(`.figures [data-figure="${name}"]`, 'data-value'));
const log = (page) => page.textContent('.event-log');

async function seek(page, seconds) {
  await page.$eval(
    '.timeline-slider',
    (slider, value) => {
      slider.value = String(value);
      slider.dispatchEvent(new Event('input', { bubbles: true }));
    },
    seconds,
  );
  await page.waitForFunction(
    (t) => new RegExp(`t = ${t}\\.0 s`).test(document.querySelector('.clock').textContent),
    seconds,
    { timeout: 60_000 },
  );
}

async function runToEnd(page) {
  await page.click('text=Run to 3600 s');
  await page.waitForFunction(() => /t = 3600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 90_000,
  });
}

async function waitForState(page, state) {
  await page.waitForSelector(`[data-node^="instance-"][data-state="${state}"]`, { timeout: 30_000 });
}

async function deployAt1200(mode) {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=scaling&seed=1&p.deploy_mode=${mode}`);
  await page.waitForSelector('[data-node="instance-1"][data-state="healthy"]');
  await seek(page, 1200);
  assert.equal(await figure(page, 'failed'), 0, 'target tracking follows the day without errors');
  await page.click('[data-injection="deploy"]');
  return page;
}

test('patching in place takes instances down and fails requests; rolling replacement fails none', async () => {
  const patched = await deployAt1200('in-place');
  // The first batch stops serving at once; the health check takes it out after 20 s.
  await waitForState(patched, 'unhealthy');
  assert.match(await log(patched), /Instance \d+ is now unhealthy/);
  await seek(patched, 1260);
  assert.ok(await patched.isVisible('[data-node^="instance-"][data-state="down"]'), 'a patched instance is down');
  assert.ok((await figure(patched, 'failed_during_deploy')) > 50, 'requests fail while instances are patched');
  assert.ok((await figure(patched, 'outdated_instances')) > 0, 'the rest still run the old version');
  await screenshot(patched, 'scaling-in-place');
  await runToEnd(patched);
  const patchedFailed = await figure(patched, 'failed_during_deploy');
  assert.ok(patchedFailed > 200, `patching in place failed ${patchedFailed} requests`);
  assert.ok((await figure(patched, 'deploy_s')) > 0, 'the deploy completed');

  const rolling = await deployAt1200('rolling');
  // Replacements launch from the new image and warm up before any old instance drains.
  await waitForState(rolling, 'starting');
  assert.match(await log(rolling), /Instance \d+ is now starting/);
  await seek(rolling, 1500);
  assert.equal(await figure(rolling, 'failed_during_deploy'), 0);
  await screenshot(rolling, 'scaling-rolling');
  await runToEnd(rolling);
  assert.equal(await figure(rolling, 'failed_during_deploy'), 0);
  assert.equal(await figure(rolling, 'failed'), 0);
  assert.equal(await figure(rolling, 'outdated_instances'), 0);
  assert.ok((await figure(rolling, 'deploy_s')) > 0, 'the rolling deploy completed');
  assert.deepEqual(patched.problems, []);
  assert.deepEqual(rolling.problems, []);
});

test('a killed scale-up instance is a pet: it stays down until restored', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=scaling&seed=2&p.strategy=scale-up`);
  await page.waitForSelector('[data-node="instance-1"][data-state="healthy"]');
  await seek(page, 200);
  const before = await figure(page, 'failed');
  await page.click('[data-injection="kill-instance"]');
  await page.waitForSelector('[data-node="instance-1"][data-state="down"]');
  assert.match(await log(page), /Instance 1 is now down/);
  await seek(page, 500);
  assert.ok(await page.isVisible('[data-node="instance-1"][data-state="down"]'), 'nobody replaces a pet');
  assert.ok(await page.isVisible('[data-node="balancer"][data-state="unhealthy"]'), 'nothing left in rotation');
  const failed = (await figure(page, 'failed')) - before;
  assert.ok(failed > 1500, `every request fails while the pet is down (${failed})`);
  await page.click('[data-injection="restore"]');
  await seek(page, 600);
  await page.waitForSelector('[data-node="instance-1"][data-state="healthy"]');
  await screenshot(page, 'scaling-pet-restored');
  assert.deepEqual(page.problems, []);
});

test('the sweep: the fixed fleet costs more, scale-up fails requests while resizing', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=scaling&seed=1`);
  await page.waitForSelector('[data-node="balancer"]');
  await runToEnd(page);
  assert.ok((await figure(page, 'peak_instances')) >= 8);
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="target-tracking"]', { timeout: 120_000 });
  const cell = async (option, key) =>
    number(await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  const fixed = await cell('fixed', 'cost_per_day');
  const tracking = await cell('target-tracking', 'cost_per_day');
  assert.ok(fixed > 1.3 * tracking, `fixed $${fixed}/day vs target tracking $${tracking}/day`);
  assert.ok((await cell('scale-up', 'resizes')) >= 2);
  assert.ok((await cell('scale-up', 'resize_downtime_s')) >= 180);
  await page.locator('.sweep-panel').scrollIntoViewIfNeeded();
  await screenshot(page, 'scaling-sweep');
  assert.deepEqual(page.problems, []);
});
