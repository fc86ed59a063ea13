// The saga lesson in a real browser: taking the car service down makes every trip that
// reaches step 3 compensated while no trip is left half-done; a crashed orchestrator
// shows as down, comes back and resumes its sagas; side by side on one seed with lossy
// best-effort delivery, choreography strands trips half-done and orchestration does not.
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
}

async function runToEnd(page) {
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('car service down: compensated trips rise and none is left half-done', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=saga&seed=3`);
  await page.waitForSelector('[data-node="orchestrator"]');
  await seek(page, 60);
  const before = await figure(page, 'trips_compensated');
  assert.ok(before < 20, `only the usual car rejections so far: ${before}`);
  assert.equal(await figure(page, 'half_done'), 0);
  await page.click('[data-injection="car-down"]');
  await page.waitForSelector('[data-node="car"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Car service is now down/);
  // Play a little at 0.25× so the compensations are visible as moving tokens.
  await page.selectOption('.speed select', '0.25');
  await page.click('.play');
  await page.waitForTimeout(2500);
  await page.click('.play');
  await screenshot(page, 'saga-car-down');
  await runToEnd(page);
  const after = await figure(page, 'trips_compensated');
  assert.ok(after > before + 200, `every trip reaching the car is compensated: ${before} → ${after}`);
  assert.equal(await figure(page, 'half_done'), 0, 'no trip left half-done');
  assert.ok((await figure(page, 'compensations')) >= 2 * (after - 5), 'hotel and flight cancelled');
  assert.deepEqual(page.problems, []);
});

test('a crashed orchestrator is down, restarts and resumes its sagas', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=saga&seed=3`);
  await page.waitForSelector('[data-node="orchestrator"]');
  await seek(page, 60);
  await page.click('[data-injection="crash-orchestrator"]');
  await page.waitForSelector('[data-node="orchestrator"][data-state="down"]');
  await seek(page, 70);
  await screenshot(page, 'saga-orchestrator-down');
  await runToEnd(page);
  assert.equal(await page.locator('[data-node="orchestrator"][data-state="healthy"]').count(), 1);
  assert.match(await page.textContent('.event-log'), /Orchestrator is now healthy/);
  assert.ok((await figure(page, 'sagas_resumed')) > 0, 'sagas resumed from saved state');
  assert.equal(await figure(page, 'half_done'), 0);
  assert.equal(await figure(page, 'trips_lost'), 0);
  assert.deepEqual(page.problems, []);
});

test('side by side with lossy best-effort delivery: choreography strands trips, orchestration does not', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=saga&seed=2&p.delivery=best-effort&p.message_loss_pct=5`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="coordination = choreographed"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .textContent(),
    );
  const orchestrated = await cell('coordination = orchestrated', 'Trips left half-done');
  const choreographed = await cell('coordination = choreographed', 'Trips left half-done');
  assert.equal(orchestrated, 0, 'the orchestrator times out and asks again');
  assert.ok(choreographed >= 20, `lost events strand trips: ${choreographed}`);
  const variant = (name) => page.locator(`[data-variant="coordination = ${name}"]`);
  assert.equal(await variant('orchestrated').locator('[data-node="saga-state"]').count(), 1);
  assert.equal(await variant('choreographed').locator('[data-node="orchestrator"]').count(), 0);
  await screenshot(page, 'saga-side-by-side');
  assert.deepEqual(page.problems, []);
});
