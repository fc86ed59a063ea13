// The multi-region lesson in a real browser: with latency-based routing Tokyo reads are
// served in Tokyo (tens of ms) while Tokyo writes still cross the Pacific. Losing the
// Tokyo Region takes its app tier down at once; the Tokyo health check turns unhealthy
// after its threshold of failed probes, Route 53 stops answering Tokyo, and once the
// cached answers expire every Tokyo user is on Virginia, reading across the Pacific.
// Losing Virginia (the writer) stops writes until the replica is promoted; the promotion
// makes Tokyo the writer and loses the acknowledged writes the replica had not applied.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.-]/g, ''));
const figure = async (page, name) =>
  number(await page.getAttribute(`.figures [data-figure="${name}"]`, 'data-value'));
const log = (page) => page.textContent('.event-log');

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
    (t) => new RegExp(`t = ${t}\\.0 s`).test(document.querySelector('.clock').textContent),
    seconds,
    { timeout: 60_000 },
  );
}

test('losing Tokyo: app down, check unhealthy, every Tokyo user moved to Virginia', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=multi-region&seed=1`);
  await page.waitForSelector('[data-node="tokyo-app"][data-state="healthy"]');
  assert.ok(await page.isVisible('[data-node="check-tokyo"][data-state="healthy"]'));
  assert.ok(await page.isVisible('[data-node="dns"]'));
  await seek(page, 100);
  // Reads stay in Tokyo; writes go to the writer in Virginia.
  const localRead = await figure(page, 'read_p50_tokyo_ms');
  assert.ok(localRead > 5 && localRead < 30, `Tokyo read p50 in Region: ${localRead} ms`);
  const tokyoWrite = await figure(page, 'write_p50_tokyo_ms');
  assert.ok(tokyoWrite > 160 && tokyoWrite < 200, `Tokyo write p50 crosses the Pacific: ${tokyoWrite} ms`);
  assert.equal(await figure(page, 'tokyo_users_on_virginia'), 0);
  assert.equal(await figure(page, 'failed_reads'), 0);

  await page.click('[data-injection="lose-tokyo"]');
  await page.waitForSelector('[data-node="tokyo-app"][data-state="down"]');
  await page.waitForSelector('[data-node="tokyo-db"][data-state="down"]');
  assert.match(await log(page), /App · Tokyo is now down/);
  // Play at 10× for a moment: Tokyo requests fail, the check counts failed probes.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForSelector('[data-node="check-tokyo"][data-state="unhealthy"]', { timeout: 30_000 });
  await page.click('.play');
  const detection = await figure(page, 'detection_s');
  assert.ok(detection > 20 && detection <= 30, `three probes 10 s apart: ${detection} s`);
  assert.match(await log(page), /Check Tokyo is now unhealthy/);
  assert.match(await log(page), /App · Tokyo was removed/);
  await screenshot(page, 'multi-region-tokyo-lost');

  // Within one TTL (60 s) of the switch every Tokyo user has moved.
  await seek(page, 250);
  assert.equal(await figure(page, 'tokyo_users_on_virginia'), 100);
  const reroute = await figure(page, 'reroute_s');
  assert.ok(reroute > detection && reroute <= detection + 61, `reroute ≈ detection + TTL: ${reroute} s`);
  assert.ok((await figure(page, 'failed_reads')) > 100, 'Tokyo reads failed until users moved');
  // Moved users read across the Pacific: the slow tail of Tokyo reads.
  assert.ok((await figure(page, 'read_p99_tokyo_ms')) > 160, 'rerouted Tokyo reads cross the Pacific');
  assert.ok((await figure(page, 'failed_writes')) > 0);
  await screenshot(page, 'multi-region-tokyo-rerouted');
  assert.deepEqual(page.problems, []);
});

test('losing the writer: writes fail until the Tokyo replica is promoted', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=multi-region&seed=2&p.replica_lag=2&p.promotion_time=30`);
  await page.waitForSelector('[data-node="virginia-db"][data-state="healthy"]');
  await seek(page, 60);
  assert.equal(await figure(page, 'writer_is_tokyo'), 0);
  const lag = await figure(page, 'replica_lag_s');
  assert.ok(lag > 1.5 && lag < 2.5, `the replica trails by the configured lag: ${lag} s`);
  assert.ok((await figure(page, 'stale_reads_tokyo')) > 0, 'a 2 s lag shows as stale reads in Tokyo');

  await page.click('[data-injection="lose-virginia"]');
  await page.waitForSelector('[data-node="virginia-db"][data-state="down"]');
  const lost = await figure(page, 'writes_lost');
  assert.ok(lost > 0, `acknowledged writes not yet on the replica: ${lost}`);
  await seek(page, 90);
  const failedWrites = await figure(page, 'failed_writes');
  assert.ok(failedWrites > 50, `writes fail everywhere without a writer: ${failedWrites}`);
  assert.equal(await figure(page, 'writer_is_tokyo'), 0);

  await page.click('[data-injection="promote"]');
  await page.waitForSelector('[data-node="tokyo-db"][data-state="starting"]');
  await screenshot(page, 'multi-region-promoting');
  await seek(page, 150);
  await page.waitForSelector('[data-node="tokyo-db"][data-state="healthy"]');
  assert.equal(await figure(page, 'writer_is_tokyo'), 1);
  // Writes stopped from the loss (60 s) to the end of the promotion (90 + 30 s).
  const outage = await figure(page, 'write_outage_s');
  assert.ok(Math.abs(outage - 60) < 0.5, `write outage ≈ 60 s: ${outage}`);
  // Once every Virginia user has been moved to Tokyo (detection + TTL after the loss),
  // nothing fails any more: reads and writes are served by the new writer.
  await seek(page, 170);
  const settled = [await figure(page, 'failed_reads'), await figure(page, 'failed_writes')];
  await seek(page, 220);
  assert.deepEqual([await figure(page, 'failed_reads'), await figure(page, 'failed_writes')], settled);
  assert.match(await log(page), /Tokyo replica is now starting/);
  assert.deepEqual(page.problems, []);
});
