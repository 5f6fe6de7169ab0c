// The browser scenarios of issue 5, each an async function of a shared context `ctx`:
// see `ctx` in run.mjs for what they can use (URLs, server control, pages, screenshot folder).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { assert, sendMessage, signInDev, signInWithToken, waitOnline } from './page-helpers.mjs';

const FEAR_TEXT = "I'm terrified of tomorrow's surgery";

export const scenarios = [
  ['page loads without console errors, sign in, status shows online', pageLoadsAndSignsIn],
  ['a server with a configured secret: a forged token is refused, a minted one signs in', secretModeSignsIn],
  ['fear message: chip shows fear, bot typing, reply, indicator clears', fearMessageGetsReply],
  ['typing a draft moves the live meter before sending', draftMovesLiveMeter],
  ['server restart: reconnecting, outbox waits, delivered once and in order', outboxSurvivesRestart],
  ["the browser's online event cuts the backoff short", onlineEventReconnectsAtOnce],
  ['frozen server: the heartbeat notices within one ping interval, then recovers', heartbeatNoticesFrozenServer],
  ['two tabs of one user see each other; shared room typing clears after 2 s', tabsAndSharedRoom],
  ['keyboard only: sign in, send, join a room and switch back', keyboardOnly],
  ['message text is rendered as text, never as HTML', textIsNotHtml],
  ['screenshots at desktop and phone sizes; reduced motion honoured', screenshots],
  ['accessibility audit (axe-core): no serious or critical violations', accessibilityAudit],
];

const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function pageLoadsAndSignsIn(ctx) {
  const { page, watcher } = await ctx.newPage('ann');
  await signInDev(page, ctx.devUrl, 'Ann');
  const statusText = await page.textContent('#status-text');
  assert(statusText.trim() === 'Online', `status text is "${statusText}"`);
  assert((await page.textContent('#whoami-name')) === 'Ann', 'display name shown');
  const csp = (await ctx.fetchHead(ctx.devUrl)).get('content-security-policy') ?? '';
  assert(/script-src[^;]*'self'/.test(csp) || /default-src[^;]*'self'/.test(csp), `page CSP: "${csp}"`);
  assert(!/unsafe-inline/.test(csp), `page CSP allows inline code: "${csp}"`);
  await ctx.expectClean(watcher);
  await page.close();
}

async function secretModeSignsIn(ctx) {
  const { page, watcher } = await ctx.newPage('secret');
  await page.goto(ctx.secretUrl);
  await page.locator('#signin-button:not([disabled])').waitFor();
  assert(await page.isVisible('#token-field'), 'token field shown when the server has a secret');
  // A token with a broken signature: the server closes with 4001 and the page says so.
  const forged = `${ctx.secretToken.slice(0, -4)}AAAA`;
  await page.fill('#token-input', forged);
  await page.click('#signin-button');
  await page.locator('#signin-error', { hasText: 'did not accept' }).waitFor({ timeout: 5000 });
  assert(await page.isVisible('#signin-view'), 'back on the sign-in form');
  await signInWithToken(page, ctx.secretUrl, ctx.secretToken);
  await ctx.expectClean(watcher);
  await page.close();
}

async function fearMessageGetsReply(ctx) {
  const { page, watcher } = await ctx.newPage('bea');
  await signInDev(page, ctx.devUrl, 'Bea');
  // Record the order in which the indicator and the reply appear, as the page sees it.
  await page.evaluate(() => {
    window.__order = [];
    const indicator = document.getElementById('typing-indicator');
    let shown = false;
    new MutationObserver(() => {
      const on = indicator.textContent.includes('EmotiBot is typing');
      if (on !== shown) window.__order.push(on ? 'typing-on' : 'typing-off');
      shown = on;
    }).observe(indicator, { childList: true, characterData: true, subtree: true });
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node.classList?.contains('message--bot')) window.__order.push('reply');
        }
      }
    }).observe(document.getElementById('transcript'), { childList: true });
  });
  const id = await sendMessage(page, FEAR_TEXT);
  const chip = page.locator(`#transcript .message[data-id="${id}"] .chip`);
  await chip.waitFor({ timeout: 5000 });
  assert((await chip.getAttribute('data-emotion')) === 'fear', `chip is ${await chip.textContent()}`);
  assert((await chip.textContent()).includes('fear'), 'chip names the emotion in text');
  await page.locator('#transcript .message--bot').waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => document.getElementById('typing-indicator').textContent === '', null, {
    timeout: 5000,
  });
  const order = await page.evaluate(() => window.__order);
  assert(
    JSON.stringify(order) === JSON.stringify(['typing-on', 'reply', 'typing-off']),
    `indicator/reply order was ${JSON.stringify(order)}`,
  );
  const reply = (await page.textContent('#transcript .message--bot .message-text')).trim();
  assert(reply.length > 0, 'reply has text');
  await ctx.expectClean(watcher);
  await page.close();
}

async function draftMovesLiveMeter(ctx) {
  const { page, watcher } = await ctx.newPage('cal');
  await signInDev(page, ctx.devUrl, 'Cal');
  assert((await page.getAttribute('#live-meter', 'data-dominant')) === '', 'meter starts empty');
  await page.locator('#draft').pressSequentially('I am so happy and grateful today', { delay: 15 });
  await page.waitForFunction(() => document.getElementById('live-meter').dataset.dominant !== '', null, {
    timeout: 5000,
  });
  const widths = await page.$$eval('#live-bars .meter-fill', (fills) => fills.map((f) => parseFloat(f.style.width) || 0));
  const total = widths.reduce((a, b) => a + b, 0);
  assert(total > 90 && total < 110, `meter bars sum to ${total}%`);
  const dominant = await page.getAttribute('#live-meter', 'data-dominant');
  assert(dominant === 'joy', `draft reads as ${dominant}`);
  assert((await page.locator('#transcript .message--own').count()) === 0, 'nothing was sent');
  await ctx.expectClean(watcher);
  await page.close();
}

async function outboxSurvivesRestart(ctx) {
  const { page, watcher } = await ctx.newPage('dora');
  await signInDev(page, ctx.devUrl, 'Dora');
  await sendMessage(page, 'before the outage');
  await page.locator('#transcript .message--own[data-state="delivered"]').waitFor();

  // While the server is down the browser reports refused connections; those are expected.
  watcher.excuse((text) => /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(text));
  await ctx.stopDevServer();
  await page.locator('#status[data-status="reconnecting"]').waitFor({ timeout: 5000 });
  const texts = ['first while offline', 'second while offline', 'third while offline'];
  for (const text of texts) await sendMessage(page, text);
  const queued = await page.locator('#transcript .message--own[data-state="queued"]').count();
  assert(queued === texts.length, `${queued} bubbles marked as waiting`);
  const pending = await page.evaluate(() => document.getElementById('status-text').textContent);
  assert(pending.includes(`${texts.length} waiting`), `status says "${pending}"`);

  await ctx.startDevServer();
  // The client comes back by itself on its backoff schedule (at most a few seconds here).
  await waitOnline(page, 35_000);
  await page.waitForFunction(
    (n) => document.querySelectorAll('#transcript .message--own[data-state="delivered"]').length === n,
    texts.length + 1,
    { timeout: 10_000 },
  );
  watcher.excuse(() => false);

  // Ask the restarted server what it received for this user: every outbox message exactly once,
  // in order. A raw socket from the page itself, so it runs under the page's own CSP.
  const received = await page.evaluate(probeRoomHistory, { user: 'dora' });
  assert(
    JSON.stringify(received) === JSON.stringify(texts),
    `server received ${JSON.stringify(received)}`,
  );
  await ctx.expectClean(watcher);
  await page.close();
}

// Runs in the page: a fresh dev token, a raw WebSocket, `join` of the private room with since 0,
// and the texts of the user's retained messages, collected until a ping barrier comes back.
async function probeRoomHistory({ user }) {
  const response = await fetch('/api/dev/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  const { token } = await response.json();
  const ws = new WebSocket(`ws://${location.host}/ws`);
  return new Promise((resolve, reject) => {
    const texts = [];
    const timer = setTimeout(() => reject(new Error('probe timed out')), 5000);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === 'ready') {
        ws.send(JSON.stringify({ type: 'join', room: msg.room, since: 0 }));
        ws.send(JSON.stringify({ type: 'ping', t: 424242 }));
      } else if (msg.type === 'message' && msg.from === user) {
        texts.push(msg.text);
      } else if (msg.type === 'pong' && msg.t === 424242) {
        clearTimeout(timer);
        ws.close(1000);
        resolve(texts);
      }
    };
  });
}

async function onlineEventReconnectsAtOnce(ctx) {
  const { page, watcher } = await ctx.newPage('olga');
  await signInDev(page, ctx.devUrl, 'Olga');
  watcher.excuse((text) =>
    /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|ERR_INTERNET_DISCONNECTED/.test(text),
  );
  await ctx.stopDevServer();
  await page.context().setOffline(true);
  // Let the backoff grow until the next attempt is more than 3 s away.
  await page.waitForFunction(
    () => {
      const match = /Reconnecting in (\d+) s/.exec(document.getElementById('status-text').textContent);
      return match !== null && Number(match[1]) >= 4;
    },
    null,
    { timeout: 30_000, polling: 50 },
  );
  await ctx.startDevServer();
  const backAt = Date.now();
  await page.context().setOffline(false); // the browser fires `online`
  await waitOnline(page, 3000);
  const tookMs = Date.now() - backAt;
  ctx.log(`    online ${tookMs} ms after the online event`);
  // Without the event the client would still be waiting (3 s or more); the first attempt right
  // after the event may still meet the emulated outage, and the retry after it starts small.
  assert(tookMs < 1500, `online ${tookMs} ms after the network came back`);
  watcher.excuse(() => false);
  await ctx.expectClean(watcher);
  await page.close();
}

async function heartbeatNoticesFrozenServer(ctx) {
  const { page, watcher } = await ctx.newPage('hal');
  await signInDev(page, ctx.devUrl, 'Hal');
  const interval = ctx.pingIntervalMs;
  // The page notes the moment its status leaves `online` (same clock as ours), so the measure
  // does not include how often Playwright polls.
  await page.evaluate(() => {
    const status = document.getElementById('status');
    new MutationObserver(() => {
      if (status.dataset.status !== 'online' && window.__offlineAt === undefined) window.__offlineAt = Date.now();
    }).observe(status, { attributes: true, attributeFilter: ['data-status'] });
  });
  // A stopped process keeps its sockets open: the browser's socket never reports the loss, only
  // the client's own heartbeat can.
  ctx.signalDevServer('SIGSTOP');
  const frozenAt = Date.now();
  try {
    await page.locator('#status:not([data-status="online"])').waitFor({ timeout: interval * 2 });
  } finally {
    ctx.signalDevServer('SIGCONT');
  }
  const noticedAfter = (await page.evaluate(() => window.__offlineAt)) - frozenAt;
  ctx.log(`    dead link noticed ${noticedAfter} ms after the freeze (ping interval ${interval} ms)`);
  assert(noticedAfter <= interval, `noticed after ${noticedAfter} ms (ping interval ${interval} ms)`);
  await waitOnline(page, 20_000);
  await sendMessage(page, 'still here after the freeze');
  await page.locator('#transcript .message--own[data-state="delivered"]').waitFor({ timeout: 5000 });
  await ctx.expectClean(watcher);
  await page.close();
}

async function tabsAndSharedRoom(ctx) {
  // Two tabs of the same user.
  const tabA = await ctx.newPage('eve-a');
  const tabB = await ctx.newPage('eve-b');
  await signInDev(tabA.page, ctx.devUrl, 'Eve');
  await signInDev(tabB.page, ctx.devUrl, 'Eve');
  await sendMessage(tabA.page, 'hello from tab A');
  await tabB.page.locator('#transcript .message', { hasText: 'hello from tab A' }).waitFor({ timeout: 5000 });
  await sendMessage(tabB.page, 'and hello from tab B');
  await tabA.page.locator('#transcript .message', { hasText: 'and hello from tab B' }).waitFor({ timeout: 5000 });

  // Two users in a shared room.
  const room = `lobby-${Date.now().toString(36)}`;
  const erin = await ctx.newPage('erin');
  const finn = await ctx.newPage('finn');
  await signInDev(erin.page, ctx.devUrl, 'Erin');
  await signInDev(finn.page, ctx.devUrl, 'Finn');
  for (const { page } of [erin, finn]) {
    await page.fill('#join-room', room);
    await page.press('#join-room', 'Enter');
    await page.locator(`.room-button[data-room="${room}"][aria-current="true"]`).waitFor();
  }
  await sendMessage(erin.page, 'hi Finn, welcome to the room');
  await finn.page.locator('#transcript .message', { hasText: 'hi Finn, welcome' }).waitFor({ timeout: 5000 });
  await sendMessage(finn.page, 'thanks Erin, glad to be here');
  await erin.page.locator('#transcript .message', { hasText: 'thanks Erin' }).waitFor({ timeout: 5000 });
  const subtitle = await erin.page.textContent('#room-subtitle');
  assert(subtitle.includes('Finn'), `Erin's room header says "${subtitle}"`);

  // Finn types without sending: Erin sees it, and it clears by itself after the 2 s timeout.
  await finn.page.locator('#draft').pressSequentially('I was just thinking', { delay: 10 });
  await erin.page.waitForFunction(() => /finn is typing/i.test(document.getElementById('typing-indicator').textContent), null, {
    timeout: 5000,
  });
  const shownAt = Date.now();
  await erin.page.waitForFunction(() => document.getElementById('typing-indicator').textContent === '', null, {
    timeout: 6000,
  });
  const clearedAfter = Date.now() - shownAt;
  ctx.log(`    typing indicator cleared ${clearedAfter} ms after it appeared`);
  // The server's 2 s timeout clears it; the page's own fallback would take 5 s.
  assert(clearedAfter >= 1500 && clearedAfter < 4000, `indicator cleared after ${clearedAfter} ms`);

  for (const tab of [tabA, tabB, erin, finn]) await ctx.expectClean(tab.watcher);
  for (const tab of [tabA, tabB, erin, finn]) await tab.page.close();
}

async function keyboardOnly(ctx) {
  const { page, watcher } = await ctx.newPage('kim');
  await page.goto(ctx.devUrl);
  await page.locator('#signin-button:not([disabled])').waitFor();
  // The name field has focus on load; Enter submits the form.
  await page.keyboard.type('Kim');
  await page.keyboard.press('Enter');
  await waitOnline(page);
  // Signed in, the message box has focus; Enter sends.
  await page.waitForFunction(() => document.activeElement?.id === 'draft');
  await page.keyboard.type('typed without a mouse');
  await page.keyboard.press('Enter');
  await page.locator('#transcript .message--own[data-state="delivered"]').waitFor({ timeout: 5000 });
  // Shift+Tab from the message box reaches the join field; Enter joins.
  assert(await shiftTabTo(page, () => document.activeElement?.id === 'join-room'), 'join field reachable');
  await page.keyboard.type('keyboard-club');
  await page.keyboard.press('Enter');
  await page.locator('.room-button[data-room="keyboard-club"][aria-current="true"]').waitFor();
  assert(await page.evaluate(() => document.activeElement?.id === 'draft'), 'focus back in the message box');
  // Shift+Tab walks back through the room buttons; Enter on the private room switches to it.
  const reached = await shiftTabTo(page, () => document.activeElement?.dataset?.room?.startsWith('user:') ?? false);
  assert(reached, 'the private room button is reachable with Shift+Tab');
  await page.keyboard.press('Enter');
  await page.locator('.room-button[data-room^="user:"][aria-current="true"]').waitFor();
  assert((await page.textContent('#transcript')).includes('typed without a mouse'), 'private transcript back');
  await ctx.expectClean(watcher);
  await page.close();
}

// Presses Shift+Tab until `isThere` (run in the page) holds, at most 15 times.
async function shiftTabTo(page, isThere) {
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press('Shift+Tab');
    if (await page.evaluate(isThere)) return true;
  }
  return false;
}

async function textIsNotHtml(ctx) {
  const { page, watcher } = await ctx.newPage('gus');
  await signInDev(page, ctx.devUrl, 'Gus');
  const payload = '<img src=x onerror="window.__pwned=1"><b>bold?</b>';
  const id = await sendMessage(page, payload);
  const bubble = page.locator(`#transcript .message[data-id="${id}"]`);
  await bubble.locator('.chip').waitFor({ timeout: 5000 });
  assert((await bubble.locator('.message-text').textContent()) === payload, 'text shown verbatim');
  assert((await page.locator('#transcript img, #transcript b').count()) === 0, 'no markup created');
  assert((await page.evaluate(() => window.__pwned)) === undefined, 'no script ran');
  await ctx.expectClean(watcher);
  await page.close();
}

async function screenshots(ctx) {
  const sizes = [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ];
  for (const [name, viewport] of sizes) {
    const { page, watcher } = await ctx.newPage(`shot-${name}`);
    await page.setViewportSize(viewport);
    await signInDev(page, ctx.devUrl, name === 'desktop' ? 'Harper' : 'Ivy');
    for (const text of ['Good morning! I finally slept well.', FEAR_TEXT]) {
      const id = await sendMessage(page, text);
      await page.locator(`#transcript .message[data-id="${id}"] .chip`).waitFor({ timeout: 5000 });
      await page.waitForFunction(
        (n) => document.querySelectorAll('#transcript .message--bot').length >= n,
        text === FEAR_TEXT ? 2 : 1,
        { timeout: 10_000 },
      );
    }
    await page.locator('#draft').pressSequentially('This is wonderful news', { delay: 5 });
    await page.waitForFunction(() => document.getElementById('live-meter').dataset.dominant !== '');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `${name}: page scrolls sideways by ${overflow}px`);
    const file = path.join(ctx.screenshotDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: false });
    ctx.log(`    screenshot: ${file}`);

    if (name === 'desktop') {
      await page.emulateMedia({ reducedMotion: 'reduce' });
      const animation = await page.$eval('#transcript .message', (el) => getComputedStyle(el).animationName);
      assert(animation === 'none', `reduced motion: message animation is ${animation}`);
    }
    await ctx.expectClean(watcher);
    await page.close();
  }
}

async function accessibilityAudit(ctx) {
  const sizes = [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ];
  for (const [name, viewport] of sizes) {
    const { page, watcher } = await ctx.newPage(`a11y-${name}`);
    await page.setViewportSize(viewport);
    await page.goto(ctx.devUrl);
    await page.locator('#signin-button:not([disabled])').waitFor();
    const findings = await audit(page, `${name} sign-in`);
    await signInDev(page, ctx.devUrl, `Axe ${name}`);
    const id = await sendMessage(page, 'I am a little nervous but mostly excited');
    await page.locator(`#transcript .message[data-id="${id}"] .chip`).waitFor({ timeout: 5000 });
    await page.locator('#transcript .message--bot').waitFor({ timeout: 10_000 });
    await page.locator('#draft').pressSequentially('so happy', { delay: 5 });
    await page.waitForFunction(() => document.getElementById('live-meter').dataset.dominant !== '');
    findings.push(...(await audit(page, `${name} chat`)));
    const serious = findings.filter((f) => f.impact === 'serious' || f.impact === 'critical');
    for (const finding of findings) ctx.log(`    axe ${finding.where}: ${finding.impact} ${finding.id} (${finding.nodes} nodes)`);
    assert(serious.length === 0, `serious accessibility violations: ${JSON.stringify(serious)}`);
    await ctx.expectClean(watcher);
    await page.close();
  }
}

// Runs axe-core in the page (evaluated through DevTools, so the page's CSP stays as it is).
async function audit(page, where) {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  return violations.map((v) => ({ ...v, where }));
}
