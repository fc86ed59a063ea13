// The home page, opened from a course sub-path: it renders, lists the lessons, and the
// console stays clean.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launchBrowser, openPage, screenshot } from './support.mjs';

let site;
let browser;

before(async () => {
  site = await serveDist();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await site?.close();
});

test('home page renders at a sub-path and lists queueing-basics', async () => {
  const page = await openPage(browser);
  await page.goto(site.url);
  await page.waitForSelector('h1');
  assert.equal(await page.textContent('h1'), 'Patterns Playground');
  const lesson = page.locator('[data-lesson="queueing-basics"]');
  await lesson.waitFor();
  assert.match(await lesson.textContent(), /Queueing basics/);
  await screenshot(page, 'home');
  assert.deepEqual(page.problems, []);
});

test('home page works on a phone-sized screen', async () => {
  const page = await openPage(browser, { viewport: { width: 360, height: 740 } });
  await page.goto(site.url);
  await page.waitForSelector('[data-lesson="queueing-basics"]');
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.equal(overflow, 0, 'no horizontal scrolling at 360 px');
  await screenshot(page, 'home-phone');
  assert.deepEqual(page.problems, []);
});
