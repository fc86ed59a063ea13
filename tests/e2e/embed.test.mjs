// Embedding and sharing, end to end: the example host page (docs/examples/host.html),
// served from a different origin, embeds a lesson in an iframe, receives ready, resize,
// quiz-answered and lesson-complete, and sends commands that take effect; malformed and
// foreign-origin messages are ignored. A shared link with a schedule reproduces the run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useSiteAndBrowser, openPage, screenshot, repoRoot } from './support.mjs';

const suite = useSiteAndBrowser({ before, after });
let host;

before(async () => {
  const page = await readFile(join(repoRoot, 'docs', 'examples', 'host.html'));
  const server = createServer((request, response) => {
    const path = new URL(request.url, 'http://x').pathname;
    if (path === '/favicon.ico') {
      response.writeHead(204).end();
      return;
    }
    if (path !== '/host.html') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  host = { port: server.address().port, close: () => new Promise((done) => server.close(done)) };
});
after(async () => host?.close());

/** Opens the host page (at `hostName`, a different origin from the site) embedding `lesson`. */
async function openHost(hostName, lesson, extra = '', { trusted = true } = {}) {
  const page = await openPage(suite.browser);
  page.warnings = [];
  page.on('console', (message) => {
    if (message.type() === 'warning') page.warnings.push(message.text());
  });
  const playground = encodeURIComponent(suite.site.url);
  await page.goto(`http://${hostName}:${host.port}/host.html?playground=${playground}&lesson=${lesson}${extra}`);
  if (trusted) {
    await page.waitForFunction(() => window.received.some((m) => m.type === 'ready'), null, { timeout: 30_000 });
  }
  const frame = await (await page.waitForSelector('iframe#lesson')).contentFrame();
  assert.ok(frame, 'the lesson frame');
  await frame.locator('.play').waitFor({ timeout: 30_000 });
  return { page, frame };
}

async function runToEnd(page) {
  await page.click('text=Run to 600 s');
  await page.waitForFunction(() => /t = 600\.0 s/.test(document.querySelector('.clock').textContent), null, {
    timeout: 60_000,
  });
}

const types = (page) => page.evaluate(() => window.received.map((m) => m.type));

test('a host page on another origin gets ready and resize, and its commands take effect', async () => {
  const { page, frame } = await openHost('127.0.0.1', 'failover');
  const ready = await page.evaluate(() => window.received.find((m) => m.type === 'ready'));
  assert.equal(ready.lesson, 'failover');
  assert.ok(ready.injections.includes('kill-primary'));
  await page.waitForFunction(() => window.received.some((m) => m.type === 'resize' && m.height > 300));
  // Embed mode: minimal chrome, no lesson list link, a way out to the full site.
  assert.equal(await frame.locator('.breadcrumb').count(), 0);
  await frame.locator('.open-full').waitFor();

  await page.evaluate(() => window.send('set-params', { params: { dns_ttl: 10 } }));
  await frame.waitForFunction(() => /dns_ttl=10/.test(decodeURIComponent(location.search)));
  await page.evaluate(() => window.send('play'));
  await frame.waitForFunction(() => /t = ([3-9]|\d{2,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.evaluate(() => window.send('inject', { id: 'kill-primary' }));
  await frame.waitForSelector('[data-node="primary"][data-state="down"]');
  await page.evaluate(() => window.send('pause'));
  await frame.waitForFunction(() => document.querySelector('.play').textContent.includes('Play'));
  // Refused commands come back as error messages.
  await page.evaluate(() => window.send('inject', { id: 'meteor-strike' }));
  await page.waitForFunction(() => window.received.some((m) => m.type === 'error' && /meteor-strike/.test(m.message)));

  // Malformed messages: ignored, reported once on the console, the lesson keeps working.
  await page.evaluate(() => {
    const target = document.getElementById('lesson').contentWindow;
    const origin = new URL(document.getElementById('lesson').src).origin;
    target.postMessage({ target: 'patterns-playground', command: 'explode' }, origin);
    target.postMessage({ target: 'patterns-playground', command: 'set-params', params: [1, 2] }, origin);
    target.postMessage('not even an object', origin);
  });
  await page.evaluate(() => window.send('reset'));
  await frame.waitForFunction(() => /t = 0\.0 s/.test(document.querySelector('.clock').textContent));
  assert.equal(await frame.locator('[data-node="primary"][data-state="down"]').count(), 0);
  const malformed = page.warnings.filter((w) => /malformed command/.test(w));
  assert.equal(malformed.length, 1, page.warnings.join('\n'));
  await screenshot(page, 'embed-host-page');
  assert.deepEqual(page.problems, []);
});

test('commands from an origin the link does not trust are ignored', async () => {
  // The host is served as "localhost", but tells the lesson to trust only 127.0.0.1.
  const { page, frame } = await openHost('localhost', 'failover', `&trust=http://127.0.0.1:${host.port}`, {
    trusted: false,
  });
  await page.evaluate(() => window.send('inject', { id: 'kill-primary' }));
  await page.evaluate(() => window.send('play'));
  await page.waitForTimeout(1500);
  assert.equal(await frame.locator('[data-node="primary"][data-state="down"]').count(), 0);
  assert.match(await frame.textContent('.clock'), /t = 0\.0 s/);
  assert.equal(page.warnings.filter((w) => /ignored a command from http:\/\/localhost/.test(w)).length, 1);
  // With origins set, the lesson posts only to those origins: this host hears nothing.
  assert.deepEqual(await types(page), []);
  assert.deepEqual(page.problems, []);
});

test('answers reach the host as quiz-answered, and the last one as lesson-complete', async () => {
  const { page, frame } = await openHost('127.0.0.1', 'circuit-breaker');
  const answer = async (id, labels) => {
    const card = frame.locator(`[data-question="${id}"]`);
    for (const label of labels) await card.locator('label', { hasText: label }).click();
    await card.locator('button[type=submit]').click();
    await card.locator('.feedback').waitFor({ timeout: 30_000 });
  };
  await answer('why-breaker', ['Once open, it refuses calls at once']);
  await page.waitForFunction(() => window.received.some((m) => m.type === 'quiz-answered'));
  const first = await page.evaluate(() => window.received.find((m) => m.type === 'quiz-answered'));
  assert.equal(first.question, 'why-breaker');
  assert.equal(first.correct, true);
  assert.equal(first.statement.verb.id, 'http://adlnet.gov/expapi/verbs/answered');
  assert.equal(first.statement.result.score.scaled, 1);
  assert.equal(first.statement.actor, undefined);

  await answer('half-open', ['Moves to HALF_OPEN']);
  const numeric = frame.locator('[data-question="minimum-failures"]');
  await numeric.locator('input').fill('3');
  await numeric.locator('button[type=submit]').click();
  await numeric.locator('.feedback').waitFor();
  await answer('open-state', ['Requests get the fallback answer almost at once.']);
  await answer('slow-not-failed', ['It stays closed while the slow calls fill the thread pool']);
  await answer('predict-no-breaker', ['Between 30% and 60%.']);
  await answer('predict-opens', ['6 to 15 times.']);
  assert.ok(!(await types(page)).includes('lesson-complete'), 'not complete before the last answer');
  await answer('predict-slow-default', ['Over 60 s: nearly the whole incident.']);
  await page.waitForFunction(() => window.received.some((m) => m.type === 'lesson-complete'));
  const complete = await page.evaluate(() => window.received.find((m) => m.type === 'lesson-complete'));
  // The numeric and the multiple-choice answers were wrong on purpose.
  assert.deepEqual(
    [complete.score.raw, complete.score.max, complete.statement.result.completion],
    [6, 8, true],
  );
  assert.equal(complete.statement.verb.id, 'http://adlnet.gov/expapi/verbs/completed');
  assert.match(await page.textContent('#score'), /6 of 8 \(75%\)/);
  assert.deepEqual(page.problems, []);
});

test('a copied link reproduces the run: same schedule, same figures', async () => {
  const page = await openPage(suite.browser);
  await page.goto(`${suite.site.url}?lesson=failover&seed=5`);
  await page.locator('.play').waitFor();
  await page.click('.play');
  await page.waitForFunction(() => /t = ([3-9]\d|\d{3,})\.\d s/.test(document.querySelector('.clock').textContent));
  await page.click('[data-injection="kill-primary"]');
  // The injection is now part of the address.
  await page.waitForFunction(() => /schedule=\d+(\.\d+)?:kill-primary/.test(decodeURIComponent(location.search)));
  await runToEnd(page);
  const link = await page.evaluate(() => location.href);
  const figures = async (p) =>
    p.$$eval('[data-figure]', (nodes) => nodes.map((n) => `${n.dataset.figure}=${n.dataset.value}`).join(' '));
  const authorFigures = await figures(page);

  const other = await openPage(suite.browser);
  await other.goto(link);
  await other.locator('.play').waitFor();
  // The scheduled failure is on the timeline before it happens.
  assert.ok((await other.locator('.timeline-markers li').count()) > 0);
  await runToEnd(other);
  assert.equal(await figures(other), authorFigures);

  // The share bar: embed code for the same run, in embed mode, with chosen panels.
  await other.click('[data-share="embed"]');
  await other.uncheck('[data-panel="narrative"]');
  await other.fill('[data-embed-origin]', 'https://course.example');
  const code = await other.inputValue('[data-embed-code]');
  assert.match(code, /^<iframe src="http:\/\/127\.0\.0\.1:\d+\/course\/unit-3\/playground\/\?lesson=failover&amp;seed=5&amp;schedule=[\d.]+%3Akill-primary&amp;embed=1&amp;panels=topology%2Ccontrols%2Ccharts%2Cquiz&amp;origins=https%3A%2F%2Fcourse\.example"/);
  await screenshot(other, 'share-embed-dialog');
  assert.deepEqual(page.problems, []);
  assert.deepEqual(other.problems, []);
});

test('charts export as SVG and PNG, metrics as CSV and JSON', async () => {
  const page = await openPage(suite.browser, { acceptDownloads: true });
  await page.goto(`${suite.site.url}?lesson=failover&seed=4&schedule=60:kill-primary`);
  await page.locator('.play').waitFor();
  await runToEnd(page);
  const download = async (kind) => {
    const [file] = await Promise.all([page.waitForEvent('download'), page.click(`[data-export="${kind}"]`)]);
    return { name: file.suggestedFilename(), body: await readFile(await file.path()) };
  };
  const csv = await download('MetricsCsv');
  assert.equal(csv.name, 'failover-seed4-t600-series.csv');
  const rows = csv.body.toString().trim().split('\n');
  assert.equal(rows[0], 'chart,line,time_s,value');
  assert.ok(rows.length > 50, `${rows.length} rows`);
  assert.ok(rows.some((row) => row.startsWith('Latency,p99,')));

  const json = JSON.parse((await download('MetricsJson')).body.toString());
  assert.equal(json.lesson, 'failover');
  assert.equal(json.seed, 4);
  assert.deepEqual(json.schedule, ['60:kill-primary']);
  const shown = await page.getAttribute('[data-figure="rto_s"]', 'data-value');
  assert.equal(json.figures.rto_s, Number(shown));
  assert.equal(json.completed, Number(await page.getAttribute('[data-figure="completed"]', 'data-value')));

  const svg = (await download('ChartsSvg')).body.toString();
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<polyline/);
  assert.match(svg, /Throughput and errors/);
  const png = await download('ChartsPng');
  assert.match(png.name, /\.png$/);
  assert.deepEqual([...png.body.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.deepEqual(page.problems, []);
});
