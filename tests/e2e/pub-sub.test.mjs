// The pub/sub lesson in a real browser: slowing the analytics consumer grows only the
// analytics queue's backlog while the e-mail and thumbnail queues stay current; an audit
// service subscribed mid-run gets only the messages published from then on; side by side
// on one seed, fan-out processes each message once per subscriber and point-to-point once.
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
  await page.waitForFunction(
    (value) => new RegExp(`t = ${value}\\.0 s`).test(document.querySelector('.clock').textContent),
    seconds,
    { timeout: 30_000 },
  );
}

async function runToEnd(page) {
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('a slow subscriber backs up only its own queue', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=pub-sub&seed=7`);
  await page.waitForSelector('[data-node="queue-analytics"]');
  await seek(page, 60);
  for (const queue of ['email', 'thumbnail', 'analytics']) {
    assert.ok((await figure(page, `backlog_${queue}`)) <= 8, `${queue} keeps up before the slowdown`);
  }
  await page.click('[data-injection="slow-analytics"]');
  await page.waitForSelector('[data-node="analytics"][data-state="unhealthy"]');
  assert.match(await page.textContent('.event-log'), /Analytics is now unhealthy/);
  await seek(page, 150);
  const middle = await figure(page, 'backlog_analytics');
  await screenshot(page, 'pub-sub-slow-analytics');
  await seek(page, 240);
  const late = await figure(page, 'backlog_analytics');
  assert.ok(middle > 60, `the analytics backlog grows: ${middle} at 150 s`);
  assert.ok(late > middle + 60, `and keeps growing: ${late} at 240 s`);
  for (const queue of ['email', 'thumbnail']) {
    assert.ok((await figure(page, `backlog_${queue}`)) <= 8, `${queue} stays current`);
  }
  assert.match(await page.textContent('[data-node="queue-analytics"]'), new RegExp(`${late} waiting`));
  assert.equal(await figure(page, 'backlog_max'), late);
  assert.deepEqual(page.problems, []);
});

test('an audit subscriber added mid-run gets the messages published from then on', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=pub-sub&seed=3`);
  await page.waitForSelector('[data-node="queue-audit"][data-state="off"]');
  await seek(page, 100);
  const publishedBefore = await figure(page, 'published');
  await page.fill('#param-subscribers-input', '4');
  await page.press('#param-subscribers-input', 'Enter');
  await page.waitForSelector('[data-node="queue-audit"][data-state="healthy"]');
  await page.waitForSelector('[data-node="audit"][data-state="healthy"]');
  await runToEnd(page);
  const published = await figure(page, 'published');
  const audit = await figure(page, 'deliveries_audit');
  const email = await figure(page, 'deliveries_email');
  assert.ok(published - email <= 3, `e-mail still gets every message: ${email} of ${published}`);
  const expected = published - publishedBefore;
  assert.ok(audit <= expected && audit >= expected - 3, `audit ${audit}, published since ${expected}`);
  await screenshot(page, 'pub-sub-audit-subscribed');
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: fan-out processes each message per subscriber, point-to-point once', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=pub-sub&seed=1`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="delivery = point-to-point"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .textContent(),
    );
  const fanOut = await cell('delivery = fan-out', 'Processed per published');
  const p2p = await cell('delivery = point-to-point', 'Processed per published');
  assert.ok(fanOut > 2.9 && fanOut <= 3, `fan-out: ${fanOut}`);
  assert.ok(p2p > 0.95 && p2p <= 1, `point-to-point: ${p2p}`);
  assert.equal(
    await cell('delivery = fan-out', 'Messages published'),
    await cell('delivery = point-to-point', 'Messages published'),
    'the same publications',
  );
  await screenshot(page, 'pub-sub-side-by-side');
  assert.deepEqual(page.problems, []);
});
