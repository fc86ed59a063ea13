// The sharding lesson in a real browser: with consistent hashing over 8 shards, adding a
// shard turns on the ninth slot and moves about 1/9 of the keys (the keys-moved figure),
// and the new shard fetches its keys; a hot key then saturates one shard. Run to the end
// at the defaults (a fifth shard joins at 60 s), the sweep table shows modulo hashing
// moving about 80% of the keys against about a fifth for the ring.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });

const number = (text) => Number(text.replace(/[^\d.]/g, ''));
const figure = async (page, name) =>
  number(await page.getAttribute(`.figures [data-figure="${name}"]`, 'data-value'));

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

test('consistent hashing: adding a ninth shard moves about 1/9 of the keys', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=sharding&seed=2&p.shards=8&p.resize_at=0`);
  await page.waitForSelector('[data-node="shard-8"][data-state="healthy"]');
  await page.waitForSelector('[data-node="shard-9"][data-state="off"]');
  await seek(page, 20);
  assert.equal(await figure(page, 'keys_moved_pct'), 0);
  await page.click('[data-injection="add-shard"]');
  await page.waitForSelector('[data-node="shard-9"][data-state="healthy"]');
  await page.waitForFunction(
    () => Number(document.querySelector('.figures [data-figure="keys_moved_pct"]').getAttribute('data-value')) > 0,
  );
  const moved = await figure(page, 'keys_moved_pct');
  assert.ok(moved > 6 && moved < 18, `keys moved ${moved}% (1/9 = 11.1%)`);
  assert.equal(Math.round(await figure(page, 'ideal_moved_pct') * 10) / 10, 11.1);
  assert.equal(await figure(page, 'shards'), 9);
  // Play at 10× for a moment: the new shard fetches the keys it took over.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(1200);
  await page.click('.play');
  assert.ok((await figure(page, 'key_fetches')) > 0, 'moved keys are fetched on first use');
  await screenshot(page, 'sharding-add-shard');
  // A hot key: one shard takes far more than its ninth of the requests.
  await page.click('[data-injection="hot-key"]');
  await seek(page, 60);
  const share = await figure(page, 'hottest_shard_share');
  assert.ok(share > 25, `the hot shard's share of requests: ${share}% (a fair share is 11%)`);
  assert.ok((await figure(page, 'max_util_pct')) > 70, 'the hot shard runs near flat out');
  await screenshot(page, 'sharding-hot-key');
  assert.deepEqual(page.problems, []);
});

test('the sweep: modulo moves most keys, the ring about a fifth', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=sharding&seed=2`);
  await page.waitForSelector('[data-node="router"]');
  await page.click('text=Run to 120 s');
  await page.waitForFunction(() => /t = 120\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
  const ring = await figure(page, 'keys_moved_pct');
  assert.ok(ring > 10 && ring < 35, `ring moved ${ring}%`);
  await page.click('.sweep-run');
  await page.waitForSelector('table.sweep tbody tr[data-option="modulo"]', { timeout: 60_000 });
  const cell = async (option, key) =>
    number(await page.getAttribute(`table.sweep tr[data-option="${option}"] [data-figure="${key}"]`, 'data-value'));
  assert.ok((await cell('modulo', 'keys_moved_pct')) > 70);
  assert.ok((await cell('consistent-hash', 'keys_moved_pct')) < 35);
  assert.ok((await cell('modulo', 'key_fetches')) > 2 * (await cell('consistent-hash', 'key_fetches')));
  await page.locator('.sweep-panel').scrollIntoViewIfNeeded();
  await screenshot(page, 'sharding-sweep');
  assert.deepEqual(page.problems, []);
});
