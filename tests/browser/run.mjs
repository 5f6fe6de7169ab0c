// Runs the browser scenarios against a real EmotiBot server in Debian's headless Chromium.
//
// Started by tests/browser.rs, which launches the servers and passes:
//   --bin PATH            the emotibot binary (to restart the DEV MODE server in a scenario)
//   --dev-url URL         a DEV MODE server, e.g. http://127.0.0.1:PORT
//   --dev-pid PID         its process id
//   --dev-args JSON       the arguments it was started with (reused for the restart)
//   --secret-url URL      a server with a configured JWT secret
//   --secret-token JWT    a valid token for it
//   --screenshots DIR     where screenshots go
//   --only SUBSTRING      optional: run only scenarios whose name contains this
// Prints one line per scenario and a closing "N passed, N failed" line; exits 1 on any failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { watchPage } from './page-helpers.mjs';
import { scenarios } from './scenarios.mjs';
import { startServer, stopServer } from './server.mjs';

const CHROMIUM = '/usr/bin/chromium';
const SCENARIO_TIMEOUT_MS = 60_000;

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string' },
    'dev-url': { type: 'string' },
    'dev-pid': { type: 'string' },
    'dev-args': { type: 'string' },
    'secret-url': { type: 'string' },
    'secret-token': { type: 'string' },
    screenshots: { type: 'string' },
    only: { type: 'string' },
  },
});
for (const required of ['bin', 'dev-url', 'dev-pid', 'dev-args', 'secret-url', 'secret-token', 'screenshots']) {
  if (!args[required]) {
    console.error(`run.mjs: missing --${required}`);
    process.exit(2);
  }
}

const log = (line) => process.stdout.write(`${line}\n`);
fs.mkdirSync(args.screenshots, { recursive: true });
const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'emotibot-chromium-'));

const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

// The DEV MODE server: first the one the Rust test started (by pid), later ones started here.
let devServer = Number(args['dev-pid']);
const devArgs = JSON.parse(args['dev-args']);
const pingFlag = devArgs.indexOf('--ping-interval-ms');
const pingIntervalMs = pingFlag >= 0 ? Number(devArgs[pingFlag + 1]) : 25_000;

const ctx = {
  devUrl: args['dev-url'],
  secretUrl: args['secret-url'],
  secretToken: args['secret-token'],
  screenshotDir: args.screenshots,
  pingIntervalMs,
  log,
  async newPage(label) {
    const page = await context.newPage();
    const watcher = watchPage(page, label);
    return { page, watcher };
  },
  async stopDevServer() {
    await stopServer(devServer, ctx.devUrl);
  },
  async startDevServer() {
    devServer = await startServer(args.bin, devArgs, ctx.devUrl);
  },
  signalDevServer(signal) {
    process.kill(typeof devServer === 'number' ? devServer : devServer.pid, signal);
  },
  async fetchHead(url) {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.headers;
  },
  async expectClean(watcher) {
    const problems = watcher.problems();
    if (problems.length > 0) throw new Error(`page problems:\n      ${problems.join('\n      ')}`);
  },
};

let passed = 0;
let failed = 0;
const started = Date.now();
for (const [index, [name, scenario]] of scenarios.entries()) {
  if (args.only && !name.includes(args.only)) continue;
  const begin = Date.now();
  let timer;
  try {
    await Promise.race([
      scenario(ctx),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS);
      }),
    ]);
    passed++;
    log(`ok ${index + 1} - ${name} (${Date.now() - begin} ms)`);
  } catch (err) {
    failed++;
    log(`not ok ${index + 1} - ${name} (${Date.now() - begin} ms)`);
    log(`    ${String(err?.stack ?? err).split('\n').join('\n    ')}`);
    for (const page of context.pages()) await page.close().catch(() => {});
  } finally {
    clearTimeout(timer);
  }
}

await context.close();
fs.rmSync(profileDir, { recursive: true, force: true });
if (typeof devServer !== 'number') await stopServer(devServer, ctx.devUrl).catch(() => {});
log(`browser scenarios finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
