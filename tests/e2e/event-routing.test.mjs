// The event-routing lesson in a real browser: taking the Indexer down shows it down,
// its deliveries are retried and then dead-lettered while Orders stays healthy; a burst
// above the bus's throughput limit backs the bus up (it turns unhealthy and the chain's
// p99 soars); side by side on one seed, direct calls pay no broker hop and have no
// backlog, but lose the deliveries to a down target that the broker dead-letters.
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

async function runToEnd(page) {
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('a down target is retried, then dead-lettered; the other targets carry on', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=event-routing&seed=2`);
  await page.waitForSelector('[data-node="event-bus"]');
  await seek(page, 60);
  assert.equal(await figure(page, 'dead_letters'), 0);
  const ordersBefore = await figure(page, 'routed_orders');
  await page.click('[data-injection="target-down"]');
  await page.waitForSelector('[data-node="indexer"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Indexer is now down/);
  // Play a little at 10× so retries fill the retry queue visibly.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(() => Number(document.querySelector('[data-figure="retries"]').dataset.value) > 50, null, {
    timeout: 20_000,
  });
  await page.click('.play');
  await screenshot(page, 'event-routing-indexer-down');
  await runToEnd(page);
  const dead = await figure(page, 'dead_letters');
  assert.ok(dead > 300, `deliveries to the down indexer end in the DLQ: ${dead}`);
  assert.equal(await figure(page, 'events_lost'), 0, 'the DLQ keeps them');
  assert.ok((await figure(page, 'routed_orders')) > ordersBefore + 1500, 'orders keep flowing');
  assert.equal(await page.locator('[data-node="orders"][data-state="healthy"]').count(), 1);
  assert.equal(await page.locator('[data-node="thumbnailer"][data-state="healthy"]').count(), 1);
  assert.deepEqual(page.problems, []);
});

test('a burst above the bus limit backs the bus up and slows the chain', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=event-routing&seed=3`);
  await page.waitForSelector('[data-node="bus-backlog"]');
  await seek(page, 60);
  const calmP99 = await figure(page, 'chain_p99');
  assert.ok(calmP99 < 2, `calm chain p99 ${calmP99}`);
  await page.click('[data-injection="burst"]');
  await seek(page, 78);
  await page.waitForSelector('[data-node="event-bus"][data-state="unhealthy"]');
  assert.match(await page.textContent('.event-log'), /Event bus is now unhealthy/);
  assert.ok((await figure(page, 'bus_backlog')) > 200, 'events pile up at the bus');
  await screenshot(page, 'event-routing-burst');
  await runToEnd(page);
  assert.ok((await figure(page, 'bus_backlog_peak')) > 300);
  assert.ok((await figure(page, 'chain_p99')) > 10 * calmP99);
  assert.equal(await page.locator('[data-node="event-bus"][data-state="healthy"]').count(), 1, 'drained by the end');
  assert.deepEqual(page.problems, []);
});

test('side by side: the broker adds a hop and dead-letters; direct calls lose deliveries', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=event-routing&seed=2`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="routing = direct"]');
  await seek(page, 60);
  await page.click('[data-injection="target-down"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    Number(
      (
        await page
          .locator(`[data-variant="${variant}"] dt`, { hasText: name })
          .locator('xpath=following-sibling::dd')
          .textContent()
      ).replace(/[^\d.]/g, ''),
    );
  const brokerHop = await cell('routing = broker', 'Broker hop adds (p50)');
  const directHop = await cell('routing = direct', 'Broker hop adds (p50)');
  assert.ok(brokerHop > 80, `broker hop ${brokerHop} ms`);
  assert.equal(directHop, 0);
  assert.equal(await cell('routing = broker', 'Deliveries lost'), 0);
  assert.ok((await cell('routing = direct', 'Deliveries lost')) > 300);
  const variant = (name) => page.locator(`[data-variant="routing = ${name}"]`);
  assert.equal(await variant('broker').locator('[data-node="indexer"][data-state="down"]').count(), 1);
  assert.equal(await variant('direct').locator('[data-node="indexer"][data-state="down"]').count(), 1);
  assert.equal(await variant('direct').locator('[data-node="event-bus"]').count(), 0, 'no bus in direct mode');
  await screenshot(page, 'event-routing-side-by-side');
  assert.deepEqual(page.problems, []);
});
