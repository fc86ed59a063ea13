// The caching lesson in a real browser: under write-back, crashing the cache node between
// two flushes takes it down and loses exactly the writes it had not flushed (the lost
// writes figure rises to the unflushed count); the node comes back empty after the
// restart time. Under cache-aside, emptying the cache leaves it with no entries; run to
// the end, the sweep table shows cache-aside serving stale reads and write-through none,
// with write-back's writes the fastest.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
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
    { timeout: 30_000 },
  );
}

test('write-back: crashing the cache node loses the writes it had not flushed', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=caching&seed=1&p.strategy=write-back`);
  await page.waitForSelector('[data-node="cache"][data-state="healthy"]');
  // Two seconds after the flush at 60 s, the cache holds acknowledged writes the
  // database does not have yet.
  await seek(page, 62);
  const unflushed = await figure(page, 'unflushed_writes');
  assert.ok(unflushed > 10, `unflushed writes before the crash: ${unflushed}`);
  assert.equal(await figure(page, 'writes_lost'), 0);
  await page.click('[data-injection="crash-cache"]');
  await page.waitForSelector('[data-node="cache"][data-state="down"]');
  await page.waitForFunction(
    (n) => Number(document.querySelector('.figures [data-figure="writes_lost"]').getAttribute('data-value')) === n,
    unflushed,
    { timeout: 10_000 },
  );
  assert.equal(await figure(page, 'unflushed_writes'), 0);
  assert.match(await log(page), /Cache is now down/);
  // Play at 10× for a moment: every read goes to the database, which queues up.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(800);
  await page.click('.play');
  await screenshot(page, 'caching-write-back-crash');
  // The node restarts (empty) after 15 s; the lost writes stay lost.
  await seek(page, 80);
  await page.waitForSelector('[data-node="cache"][data-state="healthy"]');
  assert.match(await log(page), /Cache is now healthy/);
  assert.equal(await figure(page, 'writes_lost'), unflushed);
  assert.ok((await figure(page, 'stale_reads')) > 0, 'reads of the lost items return older values');
  assert.deepEqual(page.problems, []);
});

test('cache-aside: emptying the cache, then every strategy on the same seed', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=caching&seed=2`);
  await page.waitForSelector('[data-node="cache"]');
  assert.ok(await page.isVisible('[data-node="db"]'));
  await seek(page, 30);
  assert.equal(await figure(page, 'cache_entries'), 500, 'the cache is full');
  const hitsBefore = await figure(page, 'hit_ratio');
  assert.ok(hitsBefore > 55, `hit ratio ${hitsBefore}`);
  await page.click('[data-injection="flush-cache"]');
  await page.waitForFunction(
    () => document.querySelector('.figures [data-figure="cache_entries"]').getAttribute('data-value') === '0',
  );
  await seek(page, 32);
  assert.ok((await figure(page, 'hit_ratio')) < hitsBefore, 'misses while the cache refills');
  await screenshot(page, 'caching-emptied');
  await page.click('text=Run to 300 s');
  await page.waitForFunction(() => /t = 300\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  assert.ok((await figure(page, 'stale_reads')) > 1000);
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="write-back"]', { timeout: 60_000 });
  const cell = async (option, key) =>
    number(await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  assert.ok((await cell('cache-aside', 'stale_reads')) > 1000);
  assert.ok((await cell('read-through', 'stale_reads')) > 1000);
  assert.equal(await cell('write-through', 'stale_reads'), 0);
  assert.equal(await cell('write-back', 'stale_reads'), 0);
  const writeBack = await cell('write-back', 'write_ms');
  assert.ok(writeBack < 25, `write-back acknowledges from the cache: ${writeBack} ms`);
  assert.ok((await cell('write-through', 'write_ms')) > (await cell('cache-aside', 'write_ms')));
  await page.locator('.sweep-panel').scrollIntoViewIfNeeded();
  await screenshot(page, 'caching-sweep');
  assert.deepEqual(page.problems, []);
});
