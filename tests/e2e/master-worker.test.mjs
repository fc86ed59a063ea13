// The master-worker lesson in a real browser: a busy worker crashes, the master notices
// after its missed heartbeats (3 × 1 s) and re-runs the task; killing the master stops
// everything and refuses the next job until it is restored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

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

test('a crashed worker is noticed after its missed heartbeats and its task re-runs', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=master-worker&seed=1`);
  await page.waitForSelector('[data-node="worker-6"]');
  await seek(page, 25);
  await page.click('[data-injection="kill-worker"]');
  await page.waitForSelector('[data-node="worker-1"][data-state="down"]');
  await page.selectOption('.speed select', '2');
  await page.click('.play');
  await page.waitForFunction(() => /Worker 1 was removed/.test(document.querySelector('.event-log').textContent), null, {
    timeout: 20_000,
  });
  await page.click('.play');
  await screenshot(page, 'master-worker-crash');
  assert.equal(await figure(page, 'detection_s'), 3);
  assert.equal(await figure(page, 'tasks_reassigned'), 1);
  assert.ok((await figure(page, 'work_lost_s')) > 0);
  assert.deepEqual(page.problems, []);
});

test('with the master down nothing moves and the next job is refused', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=master-worker&seed=1`);
  await page.waitForSelector('[data-node="master"]');
  await seek(page, 25);
  await page.click('[data-injection="kill-master"]');
  await page.waitForSelector('[data-node="master"][data-state="down"]');
  await seek(page, 50);
  assert.equal(await figure(page, 'tasks_refused'), 24, 'the job at 40 s is refused');
  await screenshot(page, 'master-worker-master-down');
  await page.click('[data-injection="restore"]');
  await page.waitForSelector('[data-node="master"][data-state="healthy"]');
  await page.click('text=Run to 120 s');
  await page.waitForFunction(() => /t = 120\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  assert.ok((await figure(page, 'jobs_done')) >= 4);
  assert.ok((await figure(page, 'job_max_s')) > 30, 'the interrupted job waited for the master');
  assert.deepEqual(page.problems, []);
});
