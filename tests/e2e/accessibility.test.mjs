// Accessibility, end to end: axe-core finds no serious or critical WCAG 2.1 A/AA
// violations on the home page, the glossary, the drill and every lesson (light and dark
// themes, embed mode, open dialogs); a keyboard-only walk-through plays a lesson, injects
// a failure and answers a question; every page is usable 360 px wide; reduced motion
// draws discrete steps instead of gliding tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useSiteAndBrowser, openPage, screenshot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });
const axePath = join(dirname(fileURLToPath(import.meta.url)), 'node_modules', 'axe-core', 'axe.min.js');

/** Serious and critical axe violations on the page, as readable lines. */
async function axeProblems(page) {
  await page.addScriptTag({ path: axePath });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      resultTypes: ['violations'],
    });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  return violations;
}

async function lessonIds(page) {
  await page.goto(suite.site.url);
  await page.waitForSelector('[data-lesson]');
  return page.$$eval('[data-lesson]', (nodes) => [...new Set(nodes.map((n) => n.dataset.lesson))]);
}

test('axe: no serious or critical violations on any page, light and dark', async () => {
  for (const colorScheme of ['light', 'dark']) {
    const page = await openPage(suite.browser, { colorScheme });
    const ids = await lessonIds(page);
    assert.ok(ids.length >= 8, `lessons on the course map: ${ids}`);
    const problems = [];
    problems.push(...(await axeProblems(page)).map((p) => `home: ${p}`));
    for (const query of ['?page=glossary', '?page=drill']) {
      await page.goto(`${suite.site.url}${query}`);
      await page.waitForSelector('main');
      problems.push(...(await axeProblems(page)).map((p) => `${query}: ${p}`));
    }
    for (const id of ids) {
      await page.goto(`${suite.site.url}?lesson=${id}`);
      await page.waitForSelector('.play');
      // Some figures and charts only appear once the run has data.
      await page.click('.play');
      await page.waitForTimeout(400);
      await page.click('.play');
      problems.push(...(await axeProblems(page)).map((p) => `${id} (${colorScheme}): ${p}`));
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(page.problems, []);
  }
});

test('axe: embed mode, the embed dialog and the shortcuts dialog are clean too', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=circuit-breaker&embed=1&panels=topology,charts,quiz&locked=1`);
  await page.waitForSelector('.play');
  assert.deepEqual(await axeProblems(page), []);
  await page.goto(`${suite.site.url}?lesson=failover`);
  await page.click('[data-share="embed"]');
  assert.deepEqual(await axeProblems(page), []);
  await page.click('.shortcuts-button');
  await page.waitForSelector('[role="dialog"]');
  assert.deepEqual(await axeProblems(page), []);
  await screenshot(page, 'shortcuts-dialog');
  assert.deepEqual(page.problems, []);
});

/** Presses Tab until `selector` has focus (at most `limit` times). */
async function tabTo(page, selector, limit = 300) {
  for (let i = 0; i < limit; i += 1) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached ${selector}`);
}

async function focusIsVisible(page) {
  return page.evaluate(() => {
    const style = getComputedStyle(document.activeElement);
    return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  });
}

test('keyboard only: play, inject a failure, use the shortcuts, answer a question', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=failover&seed=3`);
  await page.waitForSelector('.play');
  await tabTo(page, '.play');
  assert.ok(await focusIsVisible(page), 'the focused control shows a focus ring');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /t = ([3-9]|\d{2,})\.\d s/.test(document.querySelector('.clock').textContent));
  await tabTo(page, '[data-injection="kill-primary"]');
  assert.ok(await focusIsVisible(page));
  // Everything the live region says from now on.
  await page.evaluate(() => {
    window.spoken = [];
    const live = document.querySelector('.live');
    new MutationObserver(() => window.spoken.push(live.textContent)).observe(live, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-node="primary"][data-state="down"]');
  // The live region says what happened, in words.
  await page.waitForFunction(() => window.spoken.some((text) => /AZ-a is now down/.test(text)));

  // Shortcuts: ? opens the help (focus inside), Esc closes it and focus returns.
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('?');
  await page.waitForSelector('[role="dialog"]');
  assert.ok(await page.evaluate(() => document.activeElement.closest('[role="dialog"]') !== null));
  assert.match(await page.textContent('[role="dialog"]'), /Space[\s\S]*Play or pause/);
  await page.keyboard.press('Escape');
  await page.waitForSelector('[role="dialog"]', { state: 'detached' });
  // Focus returns to the button that opens the help (waited for: it moves in the closing render).
  await page.waitForFunction(() => document.activeElement.classList.contains('shortcuts-button'), null, { timeout: 2000 });
  // Space pauses; "," steps back; "3" injects the third failure (kill one server).
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press(' ');
  await page.waitForFunction(() => document.querySelector('.play').getAttribute('aria-pressed') === 'false');
  await page.keyboard.press('3');
  await page.waitForFunction(() => /kill-server/.test(decodeURIComponent(location.search)));

  // A quiz question, by keyboard alone.
  const card = '[data-question]:first-of-type';
  await tabTo(page, `${card} input`);
  await page.keyboard.press('Space');
  await tabTo(page, `${card} button[type=submit]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${card} .feedback`);
  await screenshot(page, 'keyboard-walkthrough');
  assert.deepEqual(page.problems, []);
});

test('every page is usable 360 px wide: nothing scrolls sideways', async () => {
  const page = await openPage(suite.browser, { viewport: { width: 360, height: 740 } });
  const ids = await lessonIds(page);
  const wide = [];
  const check = async (name) => {
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    if (overflow > 1) wide.push(`${name}: ${overflow} px too wide`);
  };
  await check('home');
  for (const id of ids) {
    await page.goto(`${suite.site.url}?lesson=${id}`);
    await page.waitForSelector('.play');
    await check(id);
  }
  await page.goto(`${suite.site.url}?lesson=failover`);
  await page.waitForSelector('.play');
  await screenshot(page, 'failover-360px');
  assert.deepEqual(wide, []);
  assert.deepEqual(page.problems, []);
});

test('reduced motion: the picture updates in discrete steps, not every frame', async () => {
  const countUpdates = async (reducedMotion) => {
    const page = await openPage(suite.browser, { reducedMotion });
    await page.goto(`${suite.site.url}?lesson=queueing-basics&seed=2`);
    await page.waitForSelector('.play');
    await page.click('.play');
    const seen = await page.evaluate(
      () =>
        new Promise((done) => {
          const values = new Set();
          const start = performance.now();
          const sample = () => {
            values.add(document.querySelector('.clock').textContent);
            if (performance.now() - start < 2000) requestAnimationFrame(sample);
            else done(values.size);
          };
          requestAnimationFrame(sample);
        }),
    );
    assert.deepEqual(page.problems, []);
    await page.close();
    return seen;
  };
  const smooth = await countUpdates('no-preference');
  const discrete = await countUpdates('reduce');
  assert.ok(discrete <= 6, `reduced motion drew ${discrete} distinct clock values in 2 s`);
  assert.ok(smooth > discrete * 2, `smooth ${smooth} vs discrete ${discrete}`);
});
