// The client-server vs peer-to-peer lesson in a real browser: the lone server queues
// everyone and takes about N·F/u_s; the swarm finishes several times sooner; killing the
// server mid-run stops every client-server download, while the swarm finishes without it.
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
  await page.click('text=Run to 90 s');
  await page.waitForFunction(() => /t = 90\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

test('client-server: the server queue fills and ten copies take about 50 s', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=peer-to-peer&seed=1`);
  await page.waitForSelector('[data-node="server"]');
  await seek(page, 3);
  // Ten clients × four requests wait at the lone server.
  assert.ok((await page.locator('[data-node="server-queue"]').textContent()).match(/(\d+) waiting/)[1] >= 30);
  await screenshot(page, 'peer-to-peer-client-server');
  await runToEnd(page);
  assert.equal(await figure(page, 'peers_done'), 10);
  const done = await figure(page, 'all_done_s');
  assert.ok(done >= 50 && done < 51, `all done at ${done} s`);
  assert.equal(await figure(page, 'server_share_pct'), 100);
  assert.deepEqual(page.problems, []);
});

test('peer-to-peer: killing the server 10 s in stops nothing once every piece is out', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=peer-to-peer&seed=1&p.architecture=peer-to-peer`);
  await page.waitForSelector('[data-node="peer-10"]');
  await page.selectOption('.speed select', '10');
  await page.click('.play');
  await page.waitForFunction(() => /t = (9|\d{2,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('.play');
  // Peers trade pieces with each other: tokens travel between peers, not only from the server.
  await screenshot(page, 'peer-to-peer-swarm');
  await page.click('[data-injection="kill-server"]');
  await page.waitForSelector('[data-node="server"][data-state="down"]');
  assert.match(await page.textContent('.event-log'), /Server is now down/);
  await runToEnd(page);
  assert.equal(await figure(page, 'peers_done'), 10, 'the swarm finishes without its server');
  assert.ok((await figure(page, 'all_done_s')) < 30);
  assert.deepEqual(page.problems, []);
});

test('side by side: the same kill leaves every client-server download unfinished', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=peer-to-peer&seed=1`);
  await page.waitForSelector('.compare-toggle');
  await page.click('.compare-toggle');
  await page.waitForSelector('.comparison [data-variant="architecture = peer-to-peer"]');
  await seek(page, 10);
  await page.click('[data-injection="kill-server"]');
  await runToEnd(page);
  const cell = async (variant, name) =>
    Number(
      (
        await page
          .locator(`[data-variant="architecture = ${variant}"] dt`, { hasText: name })
          .locator('xpath=following-sibling::dd')
          .textContent()
      ).replace(/[^\d.]/g, ''),
    );
  assert.equal(await cell('client-server', 'Clients with the whole file'), 0);
  assert.equal(await cell('peer-to-peer', 'Clients with the whole file'), 10);
  await screenshot(page, 'peer-to-peer-side-by-side');
  assert.deepEqual(page.problems, []);
});
