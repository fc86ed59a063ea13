// The home page, opened from a course sub-path: it renders, lists the lessons, and the
// console stays clean.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

test('home page renders at a sub-path and lists queueing-basics', async () => {
  const page = await openPage(suite.browser);
  await page.goto(suite.site.url);
  await page.waitForSelector('h1');
  assert.equal(await page.textContent('h1'), 'Patterns Playground');
  const lesson = page.locator('[data-lesson="queueing-basics"]');
  await lesson.waitFor();
  assert.match(await lesson.textContent(), /Queueing basics/);
  await screenshot(page, 'home');
  assert.deepEqual(page.problems, []);
});

test('home page works on a phone-sized screen', async () => {
  const page = await openPage(suite.browser, { viewport: { width: 360, height: 740 } });
  await page.goto(suite.site.url);
  await page.waitForSelector('[data-lesson="queueing-basics"]');
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.equal(overflow, 0, 'no horizontal scrolling at 360 px');
  await screenshot(page, 'home-phone');
  assert.deepEqual(page.problems, []);
});

test('the course map finds lessons by problem, AWS service or pattern, and says when nothing matches', async () => {
  const page = await openPage(suite.browser);
  await page.goto(suite.site.url);
  await page.waitForSelector('[data-lesson="queueing-basics"]');
  assert.match(await page.textContent('[data-testid="overall-progress"]'), /0 of \d+ lessons mastered/);
  const visible = async () => page.$$eval('[data-lesson]', (items) => items.map((item) => item.dataset.lesson));
  const total = (await visible()).length;

  await page.fill('#lesson-search', 'traffic spikes');
  assert.deepEqual(await visible(), ['queue-load-leveling', 'scaling']);
  assert.match(await page.textContent('.search-count'), new RegExp(`2 of ${total} lessons match`));

  await page.fill('#lesson-search', 'SQS');
  assert.ok((await visible()).includes('queue-load-leveling'));

  await page.fill('#lesson-search', 'third-party API is down');
  assert.deepEqual(await visible(), ['circuit-breaker']);

  await page.fill('#lesson-search', 'zzzz unknown');
  assert.deepEqual(await visible(), []);
  assert.match(await page.textContent('.search-count'), /No lesson matches/);

  await page.fill('#lesson-search', '');
  assert.equal((await visible()).length, total);
  assert.match(await page.textContent('[data-lesson="circuit-breaker"] .lesson-number'), /^\d+\.$/);
  assert.deepEqual(page.problems, []);
});
