// The microservices lesson in a real browser: a memory leak deployed in recommendations
// crashes the monolith's processes and with them cart pages and checkouts; side by side on
// the same seed, microservices lose only recommendations processes and serve every cart
// page, at the price of network time per page.
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
    timeout: 90_000,
  });
}

test('monolith: a leak in recommendations crashes whole processes and cart pages fail too', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=microservices&seed=3`);
  await page.waitForSelector('[data-node="monolith-3"]');
  await seek(page, 30);
  assert.equal(await figure(page, 'cart_success_pct'), 100, 'healthy before the leak');
  assert.equal(await figure(page, 'oom_crashes'), 0);
  await page.click('[data-injection="memory-leak"]');
  // Play at 10× until a process runs out of memory.
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForSelector('[data-node^="monolith-"][data-state="down"]', { timeout: 30_000 });
  await page.click('.play');
  assert.match(await page.textContent('.event-log'), /Monolith \d is now down/);
  await screenshot(page, 'microservices-monolith-crash');
  await runToEnd(page);
  const cart = await figure(page, 'cart_success_pct');
  const checkout = await figure(page, 'checkout_success_pct');
  assert.ok(cart < 90, `cart pages fail with the leaking process: ${cart}%`);
  assert.ok(checkout < 90, `so do checkouts: ${checkout}%`);
  assert.ok((await figure(page, 'oom_crashes')) >= 6);
  assert.equal(await figure(page, 'network_ms_mean'), 0, 'no hops inside one process');
  assert.deepEqual(page.problems, []);
});

test('side by side on one seed: microservices contain the leak to its own service', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=microservices&seed=3`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="architecture = microservices"]');
  await seek(page, 30);
  await page.click('[data-injection="memory-leak"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    number(
      await page
        .locator(`[data-variant="architecture = ${variant}"] dt`, { hasText: name })
        .locator('xpath=following-sibling::dd')
        .first()
        .textContent(),
    );
  const monoCart = await cell('monolith', 'Cart pages served');
  const microCart = await cell('microservices', 'Cart pages served');
  const microCheckout = await cell('microservices', 'Checkouts succeeded');
  assert.ok(monoCart < 90, `monolith: ${monoCart}%`);
  assert.equal(microCart, 100, 'microservices: cart untouched');
  assert.ok(microCheckout > 99, `microservices checkouts: ${microCheckout}%`);
  assert.ok((await cell('microservices', 'Catalog pages with recommendations')) < 90, 'degraded instead');
  const variant = (name) => page.locator(`[data-variant="architecture = ${name}"]`);
  for (const service of ['catalog', 'cart', 'checkout', 'payments']) {
    assert.equal(
      await variant('microservices').locator(`[data-node="${service}"][data-state="healthy"]`).count(),
      1,
      `${service} stays healthy`,
    );
  }
  assert.ok((await cell('microservices', 'Network time per page')) > 3, 'the price: hops');
  assert.equal(await cell('monolith', 'Network time per page'), 0, 'function calls are free');
  await screenshot(page, 'microservices-side-by-side');
  assert.deepEqual(page.problems, []);
});
