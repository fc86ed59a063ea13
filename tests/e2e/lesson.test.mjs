// The lesson page in a real browser: open it from the home page, play it, change a
// parameter, inject a failure, reload from the link, and survive a garbage link.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const clock = async (page) => Number((await page.textContent('.clock')).match(/t = ([\d.]+)/)[1]);
const figure = async (page, name) => Number(await page.getAttribute(`[data-figure="${name}"]`, 'data-value'));

test('open the lesson from home; it starts paused and plays with Space', async () => {
  const page = await openPage(suite.browser);
  await page.goto(suite.site.url);
  await page.click('[data-lesson="queueing-basics"] a');
  await page.waitForSelector('.lesson-page h1');
  assert.match(page.url(), /\?lesson=queueing-basics&seed=1$/);
  assert.equal(await clock(page), 0, 'starts paused at t = 0');
  await page.waitForTimeout(300);
  assert.equal(await clock(page), 0, 'still paused');

  await page.selectOption('.speed select', '25');
  await page.focus('.lesson-page h1');
  await page.keyboard.press('Space');
  await page.waitForFunction(() => /Pause/.test(document.querySelector('.play').textContent));
  await page.waitForTimeout(1500);
  const running = await clock(page);
  assert.ok(running > 5, `clock advanced to ${running}`);
  assert.ok((await figure(page, 'completed')) > 0, 'requests completed');
  assert.ok((await page.locator('.topology .token').count()) >= 0);
  await page.keyboard.press('Space');
  await page.waitForFunction(() => /Play/.test(document.querySelector('.play').textContent));
  const paused = await clock(page);
  await page.waitForTimeout(400);
  assert.equal(await clock(page), paused, 'pausing stops the clock');
  await screenshot(page, 'lesson-playing');
  assert.deepEqual(page.problems, []);
});

test('losing a server shows on the diagram and in the event log', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=3&p.servers=3&p.arrival_rate=2.5`);
  await page.waitForSelector('[data-node="server-3"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(800);
  await page.click('[data-injection="lose-server"]');
  await page.waitForFunction(() => {
    const state = document.querySelector('[data-node="server-3"]').dataset.state;
    return state === 'down' || state === 'draining';
  });
  await page.waitForFunction(() => document.querySelector('[data-node="server-3"]').dataset.state === 'down');
  assert.match(await page.textContent('.event-log'), /Server 3 is now down/);
  assert.match(await page.textContent('[data-node="server-3"]'), /down/, 'state in words, not colour alone');
  await page.click('.play');
  await screenshot(page, 'lesson-server-down');
  assert.deepEqual(page.problems, []);
});

test('a parameter change goes into the link and survives a reload', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=5`);
  await page.waitForSelector('#param-service_distribution-input');
  await page.selectOption('#param-service_distribution-input', 'deterministic');
  await page.waitForFunction(() => location.search.includes('p.service_distribution=deterministic'));
  await page.fill('.seed input', '77');
  await page.press('.seed input', 'Enter');
  await page.waitForFunction(() => location.search.includes('seed=77'));
  await page.reload();
  await page.waitForSelector('#param-service_distribution-input');
  assert.equal(await page.inputValue('#param-service_distribution-input'), 'deterministic');
  assert.equal(await page.inputValue('.seed input'), '77');
  assert.deepEqual(page.problems, []);
});

test('run to end fast-forwards the whole hour without freezing the page', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=9&p.arrival_rate=50&p.servers=60&p.service_rate=1`);
  await page.waitForSelector('.lesson-page');
  await page.click('text=Run to 3600 s');
  await page.waitForFunction(() => /t = 3600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  assert.ok((await figure(page, 'completed')) > 170_000);
  assert.deepEqual(page.problems, []);
});

test('a garbage link falls back to defaults with a visible notice', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=banana&p.servers=9999&p.arrival_rate=fast`);
  await page.waitForSelector('.url-notice');
  const notice = await page.textContent('.url-notice');
  assert.match(notice, /seed must be a whole number/);
  assert.match(notice, /servers' must be a whole number from 1 to 64/);
  assert.match(notice, /arrival_rate' must be a number from 0.01 to 1000/);
  assert.equal(await page.inputValue('#param-servers-input'), '1', 'default servers');
  await screenshot(page, 'lesson-garbage-link');
  const unknown = await openPage(suite.browser);
  await unknown.goto(`${suite.site.url}?lesson=no-such-lesson`);
  await unknown.waitForSelector('.url-notice');
  assert.match(await unknown.textContent('.url-notice'), /no lesson called 'no-such-lesson'/);
  assert.ok(await unknown.isVisible('[data-lesson="queueing-basics"]'));
  assert.deepEqual(page.problems, []);
  assert.deepEqual(unknown.problems, []);
});

test('queueing basics: measured points land on the Erlang C curve', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=2`);
  await page.waitForSelector('.utilisation-chart');
  await page.click('text=Measure 8 utilisations');
  await page.waitForFunction(() => document.querySelectorAll('.utilisation-chart rect.measured').length === 8);
  const items = await page.locator('.measured-list li').allTextContents();
  assert.equal(items.length, 8);
  // M/M/1 at 50%: mean wait = one service time (theory); allow simulation noise.
  const half = items.find((text) => text.startsWith('utilisation 50%'));
  const wait = Number(half.match(/mean wait ([\d.]+)/)[1]);
  assert.ok(Math.abs(wait - 1) < 0.15, `M/M/1 at 50% waited ${wait} service times`);
  await page.locator('.utilisation-chart').screenshot({ path: 'tests/e2e/screenshots/utilisation-chart.png' });
  assert.deepEqual(page.problems, []);
});
