// The timeline in a real browser: markers for injected failures, scrubbing back shows
// the system exactly as it was (the crashed server is up again), scrubbing forward
// replays the recorded crash, and step back undoes a step.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const clock = async (page) => Number((await page.textContent('.clock')).match(/t = ([\d.]+)/)[1]);
const figure = async (page, name) => Number(await page.getAttribute(`[data-figure="${name}"]`, 'data-value'));

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

test('scrub back before a failure, then forward through it again', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=3&p.servers=3&p.arrival_rate=2`);
  await page.waitForSelector('.timeline-slider');
  await seek(page, 600);
  assert.equal(await clock(page), 600);
  const completedAt600 = await figure(page, 'completed');
  await page.click('[data-injection="lose-server"]');
  await page.waitForSelector('.timeline-markers .injected button');
  await seek(page, 1200);
  const completedAt1200 = await figure(page, 'completed');
  assert.match(await page.textContent('.event-log'), /Server 3 is now (down|draining)/);

  // Back before the failure: every server is up and the figures are those of t = 300.
  await seek(page, 300);
  assert.equal(await clock(page), 300);
  assert.equal(await page.locator('[data-node^="server-"][data-state="down"]').count(), 0);
  assert.ok((await figure(page, 'completed')) < completedAt600);
  assert.equal(await page.locator('.timeline-markers .future').count() > 0, true, 'the recorded future stays marked');
  await screenshot(page, 'timeline-scrubbed-back');

  // Forward again: the recorded failure happens again, identically.
  await seek(page, 1200);
  assert.equal(await figure(page, 'completed'), completedAt1200);
  assert.equal(await page.locator('[data-node="server-3"][data-state="down"]').count(), 1);

  // Jump with a marker, then step back.
  await page.click('.timeline-markers .injected button');
  assert.equal(await clock(page), 600);
  const events = await figure(page, 'events');
  await page.click('.transport >> text=Step');
  assert.equal(await figure(page, 'events'), events + 1, 'one event handled');
  await page.click('.step-back');
  assert.equal(await figure(page, 'events'), events, 'step back undoes it');
  assert.equal(await clock(page), 600);
  assert.deepEqual(page.problems, []);
});

test('the slider is keyboard-operable', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=1`);
  await page.focus('.timeline-slider');
  await page.keyboard.press('End');
  await page.waitForFunction(() => /t = 3600\.0 s/.test(document.querySelector('.clock').textContent));
  await page.keyboard.press('Home');
  await page.waitForFunction(() => /t = 0\.0 s/.test(document.querySelector('.clock').textContent));
  assert.deepEqual(page.problems, []);
});
