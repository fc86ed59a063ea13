// The sessions lesson in a real browser: with sessions in instance memory (sticky),
// killing an instance logs out exactly the users it held; with the external session store
// the same kill logs out nobody. Side by side on one seed, the kill splits the two
// designs: about a third of the users logged out against none.
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

test('sticky sessions: killing an instance logs out exactly the users it held', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=sessions&seed=1`);
  await page.waitForSelector('[data-node="instance-3"][data-state="healthy"]');
  await page.waitForSelector('[data-node="instance-4"][data-state="off"]');
  assert.equal(await page.locator('[data-node="store"]').count(), 0, 'no session store');
  await seek(page, 120);
  assert.equal(await figure(page, 'users_logged_out'), 0);
  const held = await figure(page, 'instance_1_sessions');
  assert.ok(held > 120 && held < 260, `instance 1 holds about a third of 540 sessions: ${held}`);
  await page.click('[data-injection="kill-instance"]');
  await page.waitForSelector('[data-node="instance-1"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Instance 1 is now down/);
  assert.equal(await figure(page, 'users_logged_out'), held, 'every session it held is lost');
  // Play at 10× for a moment: the logged-out users log in again on the survivors.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(1500);
  await page.click('.play');
  assert.ok((await figure(page, 'instance_2_sessions')) > held, 'survivors took the users over');
  await screenshot(page, 'sessions-sticky-kill');
  assert.deepEqual(page.problems, []);
});

test('external session store: the same kill logs out nobody', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=sessions&seed=1&p.session_store=external`);
  await page.waitForSelector('[data-node="store"]');
  await seek(page, 120);
  await page.click('[data-injection="kill-instance"]');
  await page.waitForSelector('[data-node="instance-1"][data-state="down"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForTimeout(1500);
  await page.click('.play');
  assert.equal(await figure(page, 'users_logged_out'), 0);
  assert.ok((await figure(page, 'requests_failed')) < 20, 'only requests in flight on it fail');
  assert.equal(await figure(page, 'store_read_ms'), 5, 'every request reads its session');
  await screenshot(page, 'sessions-external-kill');
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: the kill logs out a third of the users only with sticky sessions', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=sessions&seed=1`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="session_store = external"]');
  await seek(page, 120);
  await page.click('[data-injection="kill-instance"]');
  await page.click('text=Run to 600 s');
  await page.waitForFunction(() => /t = 600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 90_000,
  });
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .first()
        .textContent(),
    );
  const local = await cell('session_store = local', 'Users logged out');
  const external = await cell('session_store = external', 'Users logged out');
  assert.ok(local > 120 && local < 260, `sticky: ${local} users logged out`);
  assert.equal(external, 0, 'stateless: nobody logged out');
  const variant = (name) => page.locator(`[data-variant="session_store = ${name}"]`);
  assert.equal(await variant('local').locator('[data-node="instance-1"][data-state="down"]').count(), 1);
  assert.equal(await variant('external').locator('[data-node="instance-1"][data-state="down"]').count(), 1);
  assert.equal(await variant('external').locator('[data-node="store"]').count(), 1);
  await screenshot(page, 'sessions-side-by-side');
  assert.deepEqual(page.problems, []);
});
