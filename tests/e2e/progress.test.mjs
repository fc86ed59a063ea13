// Progress across the site: completing a lesson's whole quiz marks it mastered on the
// course map; progress exports to a file, resets, and imports back (merged); a foreign
// file is refused with a reason and changes nothing; damaged stored progress is set aside.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

async function answerChoice(page, id, labels) {
  const card = page.locator(`[data-question="${id}"]`);
  for (const label of labels) await card.locator('label', { hasText: label }).click();
  await card.locator('button[type=submit]').click();
  await card.locator('.feedback.correct').waitFor({ timeout: 30_000 });
}

test('completing the circuit-breaker quiz marks the lesson mastered on the course map', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=circuit-breaker`);
  await page.locator('[data-question="why-breaker"]').waitFor();
  await answerChoice(page, 'why-breaker', ['Once open, it refuses calls at once']);
  await answerChoice(page, 'half-open', ['Moves to HALF_OPEN']);
  const numeric = page.locator('[data-question="minimum-failures"]');
  await numeric.locator('input').fill('5');
  await numeric.locator('button[type=submit]').click();
  await numeric.locator('.feedback.correct').waitFor();
  await answerChoice(page, 'open-state', [
    'Requests get the fallback answer almost at once.',
    'The dependency receives no calls from this service.',
    'Requests that would have succeeded also get the fallback.',
  ]);
  await answerChoice(page, 'slow-not-failed', ['It stays closed while the slow calls fill the thread pool']);
  // Predictions: graded by running each scenario in the page.
  await answerChoice(page, 'predict-no-breaker', ['Between 30% and 60%.']);
  await answerChoice(page, 'predict-opens', ['6 to 15 times.']);
  await answerChoice(page, 'predict-slow-default', ['Over 60 s: nearly the whole incident.']);
  assert.match(await page.textContent('[data-testid="quiz-score"]'), /8 of 8 answered correctly/);

  await page.click('text=← All lessons');
  await page.waitForSelector('[data-lesson="circuit-breaker"]');
  assert.match(
    await page.textContent('[data-lesson="circuit-breaker"] [data-testid="lesson-status"]'),
    /Mastered/,
  );
  assert.match(await page.textContent('[data-testid="overall-progress"]'), /^1 of \d+ lessons mastered · 8 of \d+ questions/);
  await screenshot(page, 'course-map-mastered');
  assert.deepEqual(page.problems, []);
});

test('export, reset and import bring progress back; a foreign file changes nothing', async () => {
  const page = await openPage(suite.browser, { acceptDownloads: true });
  await page.goto(`${suite.site.url}?lesson=circuit-breaker`);
  const numeric = page.locator('[data-question="minimum-failures"]');
  await numeric.locator('input').fill('5');
  await numeric.locator('button[type=submit]').click();
  await numeric.locator('.feedback.correct').waitFor();
  await page.click('text=← All lessons');
  const status = () => page.textContent('[data-lesson="circuit-breaker"] [data-testid="lesson-status"]');
  await page.waitForSelector('[data-lesson="circuit-breaker"]');
  assert.match(await status(), /In progress: 1 of 8 correct/);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Export progress')]);
  assert.equal(download.suggestedFilename(), 'patterns-playground-progress.json');
  const exported = await readFile(await download.path(), 'utf8');
  assert.equal(JSON.parse(exported).lessons['circuit-breaker']['minimum-failures'].correct, true);

  await page.click('text=Reset progress');
  await page.click('text=Yes, reset');
  assert.match(await status(), /Not started/);

  await page.setInputFiles('[data-testid="import-progress"]', {
    name: 'notes.json',
    mimeType: 'application/json',
    buffer: Buffer.from('{"name": "my shopping list"}'),
  });
  await page.waitForSelector('.progress-message.problem');
  assert.match(await page.textContent('.progress-message'), /not a progress export.*Nothing was changed/);
  assert.match(await status(), /Not started/);

  await page.setInputFiles('[data-testid="import-progress"]', {
    name: 'patterns-playground-progress.json',
    mimeType: 'application/json',
    buffer: Buffer.from(exported),
  });
  await page.waitForSelector('.progress-message.ok');
  assert.match(await page.textContent('.progress-message'), /Imported 1 answer from 1 lesson/);
  assert.match(await status(), /In progress: 1 of 8 correct/);
  await page.reload();
  await page.waitForSelector('[data-lesson="circuit-breaker"]');
  assert.match(await status(), /In progress: 1 of 8 correct/, 'the import was stored');
  await screenshot(page, 'progress-tools');
  assert.deepEqual(page.problems, []);
});

test('damaged stored progress is set aside, not destroyed', async () => {
  const page = await openPage(suite.browser);
  await page.addInitScript(() => {
    if (!sessionStorage.getItem('seeded')) {
      localStorage.setItem('patterns-playground/progress', '{oops');
      sessionStorage.setItem('seeded', '1');
    }
  });
  await page.goto(suite.site.url);
  await page.waitForSelector('.url-notice');
  assert.equal(await page.evaluate(() => localStorage.getItem('patterns-playground/progress.unreadable')), '{oops');
  assert.deepEqual(page.problems, []);
});

test('missed questions come back in review mode until they are right', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=circuit-breaker`);
  const card = page.locator('[data-question="why-breaker"]');
  await card.waitFor();
  await card.locator('label', { hasText: 'It makes the dependency answer faster.' }).click();
  await card.locator('button[type=submit]').click();
  await card.locator('.feedback.wrong').waitFor();
  await answerChoice(page, 'half-open', ['Moves to HALF_OPEN']);

  await page.click('[data-testid="review-missed"]');
  assert.equal(await page.locator('.quiz [data-question]:visible').count(), 1, 'only the missed question');
  await card.locator('text=Try again').click();
  await answerChoice(page, 'why-breaker', ['Once open, it refuses calls at once']);
  assert.match(await page.textContent('.review-bar'), /Reviewing 1 missed question: 1 now right/);
  await page.click('text=Show all questions');
  assert.equal(await page.locator('.quiz [data-question]:visible').count(), 8);
  assert.equal(await page.locator('[data-testid="review-missed"]').count(), 0, 'nothing left to review');
  assert.deepEqual(page.problems, []);
});
