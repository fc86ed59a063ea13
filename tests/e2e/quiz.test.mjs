// The quiz in a real browser: answer, get graded with an explanation, retry, predict and
// see the simulation grade it, reload and find progress kept; damaged stored progress
// resets with a notice instead of breaking the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

test('answer, retry, predict; progress survives a reload and shows on the home page', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queueing-basics`);
  const card = page.locator('[data-question="hockey-stick"]');
  await card.waitFor();

  // Wrong first: graded in words with the explanation.
  await card.locator('label', { hasText: 'in step with the load' }).click();
  await card.locator('button[type=submit]').click();
  await card.locator('.feedback').waitFor();
  assert.match(await card.locator('.feedback').textContent(), /✗ Not quite/);
  assert.match(await card.locator('.feedback').textContent(), /ρ\/\(1−ρ\)/);

  // Retry and get it right.
  await card.locator('text=Try again').click();
  await card.locator('label', { hasText: 'about nine times' }).click();
  await card.locator('button[type=submit]').click();
  await card.locator('.feedback.correct').waitFor();

  // Predict, then observe: graded by running the scenario.
  const predict = page.locator('[data-question="predict-lost-server"]');
  await predict.locator('label', { hasText: 'About the same' }).click();
  await predict.locator('button[type=submit]').click();
  await predict.locator('.feedback').waitFor();
  const feedback = await predict.locator('.feedback').textContent();
  assert.match(feedback, /✗ Not quite/);
  assert.match(feedback, /The simulation ran this exact scenario and measured wait mean = \d+\.\d+/);
  await screenshot(page, 'quiz');

  await page.reload();
  await page.locator('[data-question="hockey-stick"]').waitFor();
  assert.match(await page.textContent('[data-testid="quiz-score"]'), /1 of 6 answered correctly/);
  assert.match(await page.textContent('[data-question="hockey-stick"] .question-history'), /answered correctly \(2 attempts\)/);

  await page.goto(suite.site.url);
  await page.waitForSelector('[data-lesson="queueing-basics"]');
  assert.match(
    await page.textContent('[data-lesson="queueing-basics"] [data-testid="lesson-status"]'),
    /In progress: 1 of 6 correct/,
  );
  assert.match(
    await page.textContent('[data-lesson="queue-load-leveling"] [data-testid="lesson-status"]'),
    /Not started/,
  );
  assert.deepEqual(page.problems, []);
});

test('damaged stored progress resets with a notice', async () => {
  const page = await openPage(suite.browser);
  await page.addInitScript(() => localStorage.setItem('patterns-playground/progress', '{oops'));
  await page.goto(suite.site.url);
  await page.waitForSelector('.url-notice');
  assert.match(await page.textContent('.url-notice'), /saved progress could not be read/);
  assert.ok(await page.isVisible('[data-lesson="queueing-basics"]'));
  assert.deepEqual(page.problems, []);
});

test('a try-this step sets the scene in one click', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=queue-load-leveling`);
  await page.waitForSelector('[data-step="1"]');
  await page.click('[data-step="1"] button');
  await page.waitForFunction(() => location.search.includes('p.launch_delay=5'));
  await page.waitForSelector('[data-node^="worker-"][data-state="down"]');
  assert.match(await page.textContent('.play'), /Pause/, 'the step starts playing');
  assert.deepEqual(page.problems, []);
});
