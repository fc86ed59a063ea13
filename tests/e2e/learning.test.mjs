// The study tools around the lessons: glossary links inside a lesson's narrative open
// their definition in place; the glossary page jumps to a term and filters; the exam
// drill runs a full session and scores it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

test('a glossary link in the narrative opens its definition without leaving the lesson', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queue-load-leveling`);
  const term = page.locator('.narrative button.term[data-term="idempotency"]').first();
  await term.waitFor();
  assert.equal(await term.getAttribute('aria-expanded'), 'false');
  await term.click();
  assert.equal(await term.getAttribute('aria-expanded'), 'true');
  const definition = page.locator('.narrative .term-definition').first();
  assert.match(await definition.textContent(), /^Idempotency: .*twice/);
  assert.ok(await page.isVisible('.lesson-page'), 'still on the lesson');
  await term.press('Enter');
  assert.equal(await page.locator('.narrative .term-definition').count(), 0, 'closes again by keyboard');
  assert.deepEqual(page.problems, []);
});

test('the glossary page jumps to a term and filters', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?page=glossary#term-rpo`);
  await page.waitForSelector('[data-term="rpo"]');
  const total = await page.locator('.glossary-entry').count();
  assert.ok(total >= 30);
  await page.fill('#glossary-filter', 'jitter');
  const shown = await page.$$eval('.glossary-entry', (entries) => entries.map((entry) => entry.dataset.term));
  assert.ok(shown.includes('jitter'));
  assert.ok(shown.length < total);
  await page.fill('#glossary-filter', '');
  await page.click('text=Queue-based load leveling >> nth=0');
  await page.waitForSelector('.lesson-page');
  await screenshot(page, 'glossary-to-lesson');
  assert.deepEqual(page.problems, []);
});

test('the exam drill runs ten questions, explains each and scores the session', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?page=drill`);
  await page.click('text=Start the drill');
  let right = 0;
  for (let i = 1; i <= 10; i++) {
    await page.waitForSelector(`text=Question ${i} of 10`);
    // Answer the odd questions with the first option, the even ones with the last.
    const options = page.locator('.drill-question .options input');
    const count = await options.count();
    await options.nth(i % 2 ? 0 : count - 1).check();
    await page.click('.drill-question button:has-text("Check")');
    await page.waitForSelector('.drill-feedback');
    if (/Right\./.test(await page.textContent('.drill-feedback .verdict'))) right++;
    assert.equal(await page.locator('.drill-question .why').count(), count, 'every option explained');
    assert.ok((await page.locator('.drill-feedback .learn-links a').count()) >= 1, 'a link back to the lesson or term');
    if (i === 1) await screenshot(page, 'drill-question');
    await page.click(i === 10 ? 'text=See your score' : 'text=Next question');
  }
  const score = await page.textContent('[data-testid="drill-score"]');
  assert.match(score, new RegExp(`^${right} of 10 right`));
  await screenshot(page, 'drill-score');
  assert.deepEqual(page.problems, []);
});

test('timed drill shows a countdown', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?page=drill`);
  await page.check('.drill-timed input');
  await page.click('text=Start the drill');
  await page.waitForSelector('.drill-timer');
  const first = Number((await page.textContent('.drill-timer')).match(/(\d+) s left/)[1]);
  await page.waitForFunction(
    (start) => Number(document.querySelector('.drill-timer').textContent.match(/(\d+) s left/)[1]) < start,
    first,
    { timeout: 5_000 },
  );
  assert.deepEqual(page.problems, []);
});

test('a lesson whose text cannot be downloaded says so, keeps simulating, and retries', async () => {
  const page = await openPage(suite.browser);
  let refuse = true;
  await page.route('**/content/lessons/*.json*', (route) => (refuse ? route.abort() : route.continue()));
  await page.goto(`${suite.site.url}?lesson=bulkhead`);
  const alert = page.locator('.content-notice[role="alert"]');
  await alert.waitFor();
  assert.match(await alert.textContent(), /could not be downloaded.*simulation works without it/);
  assert.equal(await page.locator('.quiz').count(), 0, 'no quiz without its questions');
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.querySelector('.clock')?.textContent !== 't = 0.0 s');
  refuse = false;
  await alert.locator('button', { hasText: 'Try again' }).click();
  await page.locator('.narrative h2').first().waitFor();
  await page.locator('.quiz').first().waitFor();
  assert.equal(await page.locator('.content-notice').count(), 0);
});
