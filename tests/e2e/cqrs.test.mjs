// The CQRS lesson in a real browser: pausing the projector makes the projection lag and
// the stale reads climb while events pile up; resuming it lets the projection catch up
// (the projector turns healthy again and the catch-up time matches backlog / (projector
// rate - write rate)). Side by side on one seed, a read spike refuses writes in the
// single database but not in the CQRS write store, and more read replicas fix the reads
// without changing a single write figure.
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
  await page.waitForFunction(
    (value) => new RegExp(`t = ${value}\\.0 s`).test(document.querySelector('.clock').textContent),
    seconds,
    { timeout: 30_000 },
  );
}

test('a paused projector falls behind, stale reads climb, and after resuming it catches up', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=cqrs&seed=3`);
  await page.waitForSelector('[data-node="projector"][data-state="healthy"]');
  await seek(page, 60);
  const staleBefore = await figure(page, 'stale_read_pct');
  assert.ok(staleBefore > 0 && staleBefore < 5, `a few stale reads from normal lag: ${staleBefore}%`);
  assert.ok((await figure(page, 'max_lag_s')) < 1);

  await page.click('[data-injection="pause-projector"]');
  await page.waitForSelector('[data-node="projector"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Projector is now down/);
  // Play a little so the queue visibly fills, then jump ahead.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(
    () => Number(document.querySelector('[data-figure="events_waiting"]').getAttribute('data-value')) > 50,
    null,
    { timeout: 20_000 },
  );
  await page.click('.play');
  const clock = Number((await page.textContent('.clock')).match(/t = ([\d.]+) s/)[1]);
  await seek(page, Math.max(120, Math.ceil(clock) + 1));
  const waiting = await figure(page, 'events_waiting');
  const lag = await figure(page, 'projection_lag_s');
  assert.ok(waiting > 1000, `a minute of writes waits for the projector: ${waiting}`);
  assert.ok(lag > 55, `lag about the pause length: ${lag} s`);
  assert.ok((await figure(page, 'stale_read_pct')) > 2 * staleBefore, 'stale reads climb');
  await screenshot(page, 'cqrs-projector-paused');

  await page.click('[data-injection="resume-projector"]');
  await page.waitForSelector('[data-node="projector"][data-state="unhealthy"]');
  await seek(page, 220);
  await page.waitForSelector('[data-node="projector"][data-state="healthy"]');
  assert.match(await page.textContent('.event-log'), /Projector is now healthy/);
  assert.ok((await figure(page, 'events_waiting')) < 10, 'backlog drained');
  assert.ok((await figure(page, 'projection_lag_s')) < 1);
  const catchUp = await figure(page, 'catch_up_s');
  const expected = waiting / (50 - 20);
  assert.ok(Math.abs(catchUp - expected) < 0.2 * expected, `caught up in ${catchUp} s, about ${expected} s expected`);
  assert.ok((await figure(page, 'max_lag_s')) > 55);
  await screenshot(page, 'cqrs-caught-up');
  assert.deepEqual(page.problems, []);
});

test('side by side: a read spike refuses writes in the single database, not in CQRS', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=cqrs&seed=4`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="model = single"]');
  await seek(page, 60);
  await page.click('[data-injection="read-spike"]');
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  const cell = async (variant, name) =>
    Number(
      (
        await page
          .locator(`[data-variant="${variant}"] dt`, { hasText: name })
          .locator('xpath=following-sibling::dd')
          .textContent()
      ).replace(/[^\d.]/g, ''),
    );
  const single = await cell('model = single', 'Writes refused');
  const cqrs = await cell('model = cqrs', 'Writes refused');
  assert.ok(single > 100, `the single database refuses writes: ${single}`);
  assert.equal(cqrs, 0, 'the CQRS write store never sees the reads');
  assert.equal(await page.locator('[data-variant="model = single"] [data-node="database"]').count(), 1);
  assert.equal(await page.locator('[data-variant="model = cqrs"] [data-node="replica-2"]').count(), 1);
  await screenshot(page, 'cqrs-side-by-side');
  assert.deepEqual(page.problems, []);
});

test('more read replicas before a read spike: reads stay fast, writes do not change', async () => {
  const run = async (replicas) => {
    const page = await openPage(suite.browser);
    await page.goto(`${suite.site.url}?lesson=cqrs&seed=2`);
    await page.waitForSelector('[data-node="replica-1"]');
    await seek(page, 45);
    if (replicas !== 2) {
      const input = page.locator('#param-replicas-input');
      await input.fill(String(replicas));
      await input.dispatchEvent('change');
      await page.waitForSelector('[data-node="replica-3"][data-state="starting"]');
      assert.match(await page.textContent('.event-log'), /Read replica 3 is now starting/);
    }
    await seek(page, 60);
    if (replicas !== 2) {
      await page.waitForSelector('[data-node="replica-3"][data-state="healthy"]');
    }
    await page.click('[data-injection="read-spike"]');
    await seek(page, 90);
    await screenshot(page, `cqrs-read-spike-${replicas}-replicas`);
    await page.click('text=Run to 300 s');
    await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
      timeout: 60_000,
    });
    const result = {
      read: await figure(page, 'read_p99_ms'),
      write: await figure(page, 'write_p99_ms'),
      refused: await figure(page, 'reads_refused'),
    };
    assert.deepEqual(page.problems, []);
    return result;
  };
  const two = await run(2);
  const three = await run(3);
  assert.ok(two.read > 500 && two.refused > 0, `two replicas saturate: ${JSON.stringify(two)}`);
  assert.ok(three.read < two.read / 3, `three replicas: ${JSON.stringify(three)}`);
  assert.equal(three.write, two.write, 'the write side is untouched');
});
