// The replication lesson in a real browser: killing the primary under asynchronous
// replication shows it down, a replica starting and then serving as the new primary after
// the detection delay, and the acknowledged writes lost (about write rate × lag) as a
// figure; side by side on one seed, synchronous replication has no stale reads but a
// write p99 higher by about the replica round trip; read-your-writes routing removes the
// violations.
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

async function runToEnd(page) {
  await page.click('text=Run to 180 s');
  await page.waitForFunction(() => /t = 180\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('kill the primary under async replication: a replica is promoted, recent writes are lost', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=replication&seed=7&p.replica_lag=1000`);
  await page.waitForSelector('[data-node="primary"][data-state="healthy"]');
  assert.equal(await page.locator('[data-node^="replica-"]').count(), 2);
  await seek(page, 60);
  const lag = await figure(page, 'max_replica_lag_s');
  assert.ok(lag > 0.9 && lag < 1.15, `replicas trail by about the lag: ${lag} s`);
  assert.ok((await figure(page, 'stale_reads')) > 0);
  assert.ok((await figure(page, 'ryw_violations')) > 0);

  await page.click('[data-injection="kill-primary"]');
  await page.waitForSelector('[data-node="primary"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Primary is now down/);
  await seek(page, 71);
  await page.waitForSelector('[data-node^="replica-"][data-state="starting"]');
  assert.match(await page.textContent('.event-log'), /Replica \d is now starting/);
  await screenshot(page, 'replication-promoting');

  await seek(page, 90);
  assert.equal(await figure(page, 'time_to_promote_s'), 15, 'detection 10 s + promotion 5 s');
  const lost = await figure(page, 'lost_writes');
  assert.ok(lost >= 25 && lost <= 75, `about 50 writes/s × 1 s lost: ${lost}`);
  assert.ok((await figure(page, 'writes_failed')) > 500, 'writes fail while no primary is up');
  assert.match(await page.textContent('.event-log'), /Replica \d is now healthy/);
  assert.equal(await page.locator('[data-node^="replica-"][data-state="healthy"]').count(), 2);
  await screenshot(page, 'replication-promoted');
  assert.deepEqual(page.problems, []);
});

test('side by side: synchronous replication has no stale reads and slower writes', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=replication&seed=1`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="replication = synchronous"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    Number(
      (
        await page
          .locator(`[data-variant="replication = ${variant}"] dt`, { hasText: name })
          .first()
          .locator('xpath=following-sibling::dd')
          .textContent()
      ).replace(/[^\d.]/g, ''),
    );
  const staleAsync = await cell('asynchronous', 'Stale reads');
  const staleSync = await cell('synchronous', 'Stale reads');
  assert.ok(staleAsync > 1000, `async replicas serve stale reads: ${staleAsync}`);
  assert.equal(staleSync, 0, 'a synchronous write is on every replica before it is acknowledged');
  const p99Async = await cell('asynchronous', 'Write p99');
  const p99Sync = await cell('synchronous', 'Write p99');
  assert.ok(p99Sync - p99Async >= 20, `sync writes pay the 20 ms round trip: ${p99Async} → ${p99Sync}`);
  assert.equal(await page.locator('[data-variant="replication = synchronous"] [data-node="replica-2"]').count(), 1);
  await screenshot(page, 'replication-side-by-side');
  assert.deepEqual(page.problems, []);
});

test('read-your-writes routing: no violations, fresh reads go to the primary', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=replication&seed=2&p.read_your_writes=true`);
  await page.waitForSelector('[data-node="primary"][data-state="healthy"]');
  await runToEnd(page);
  assert.equal(await figure(page, 'ryw_violations'), 0);
  assert.ok((await figure(page, 'reads_to_primary')) > 1000);
  assert.ok((await figure(page, 'stale_reads')) > 0, 'other clients can still read stale data');
  assert.deepEqual(page.problems, []);
});
