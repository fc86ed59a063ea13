// Shared end-to-end support: serve the built dist/ under a sub-path on 127.0.0.1 (as a
// course site would), launch Debian's Chromium headless via playwright-core, and collect
// console errors and failed requests so every test can assert there were none.
import { createServer } from 'node:http';
import { readFile, mkdir } from 'node:fs/promises';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const distDir = join(repoRoot, 'dist');
export const screenshotDir = join(here, 'screenshots');
/** The sub-path the site is served under, to prove relative URLs work anywhere. */
export const subPath = '/course/unit-3/playground/';

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/** Starts a static server for dist/ under `subPath`; resolves to { url, close }. */
export async function serveDist() {
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, 'http://x').pathname);
    if (!path.startsWith(subPath)) {
      response.writeHead(404).end('outside the course sub-path');
      return;
    }
    let relative = path.slice(subPath.length) || 'index.html';
    const file = normalize(join(distDir, relative));
    if (!file.startsWith(distDir)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end('not found');
    }
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}${subPath}`,
    close: () => new Promise((done) => server.close(done)),
  };
}

/** Chromium flags that keep it quiet on a closed network (see TOOLCHAIN.md). */
const chromiumArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: chromiumArgs,
  });
}

/**
 * A new page that records console errors, uncaught exceptions and failed requests in
 * `page.problems` (an array of strings).
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') page.problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => page.problems.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) =>
    page.problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) page.problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return page;
}

/** Saves a full-page screenshot to tests/e2e/screenshots/<name>.png. */
export async function screenshot(page, name) {
  await mkdir(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Registers the usual before/after hooks of a test file: serve dist/ and launch one
 * browser for all its tests. Returns an object whose `site` and `browser` are set once
 * the hooks ran.
 */
export function useSiteAndBrowser({ before, after }) {
  const context = { site: undefined, browser: undefined };
  before(async () => {
    context.site = await serveDist();
    context.browser = await launchBrowser();
  });
  after(async () => {
    await context.browser?.close();
    await context.site?.close();
  });
  return context;
}
