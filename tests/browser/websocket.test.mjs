// Deterministic tests of EmotiBotWebSocket (static/js/websocket.js) with a simulated clock, fake
// timers and a fake WebSocket: backoff, auth, outbox, resume, heartbeat and token refresh.
// Run with: node --test tests/browser/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmotiBotWebSocket, tokenExpiry } from '../../static/js/websocket.js';

// ---- test doubles ----

class FakeClock {
  now = 1_700_000_000_000;
  timers = new Map();
  nextHandle = 1;
  setTimeout = (fn, ms) => {
    const handle = this.nextHandle++;
    this.timers.set(handle, { at: this.now + Math.max(0, ms), fn });
    return handle;
  };
  clearTimeout = (handle) => {
    this.timers.delete(handle);
  };
  /** Advances time, firing due timers in order (and letting promises settle between them). */
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      await settle();
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at || a[0] - b[0]);
      if (due.length === 0) break;
      const [handle, timer] = due[0];
      this.timers.delete(handle);
      this.now = Math.max(this.now, timer.at);
      timer.fn();
    }
    this.now = end;
    await settle();
  }
}

async function settle() {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

class FakeSocket {
  static instances = [];
  sent = [];
  closedWith = null;
  constructor(url) {
    this.url = url;
    FakeSocket.instances.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code) {
    this.closedWith = code;
  }
  // Server side of the fake:
  open() {
    this.onopen?.();
  }
  receive(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop(code = 1006) {
    this.onclose?.({ code });
  }
  sentOfType(type) {
    return this.sent.filter((m) => m.type === type);
  }
}

function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.signature`;
}

function setup({ random = () => 0.5, tokenTtlS = 3600, ...options } = {}) {
  FakeSocket.instances = [];
  const clock = new FakeClock();
  const network = new EventTarget();
  let tokensIssued = 0;
  const getToken = async () => {
    tokensIssued++;
    return jwt({ sub: 'alice', exp: Math.floor(clock.now / 1000) + tokenTtlS, n: tokensIssued });
  };
  const client = new EmotiBotWebSocket('ws://test/ws', getToken, {
    now: () => clock.now,
    random,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    WebSocket: FakeSocket,
    networkEvents: network,
    ...options,
  });
  const events = [];
  for (const type of ['status', 'ready', 'emotion', 'message', 'reply', 'typing', 'joined', 'error', 'presence']) {
    client.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
  }
  return { clock, client, events, network, tokens: () => tokensIssued, socket: () => FakeSocket.instances.at(-1) };
}

const READY = {
  type: 'ready',
  session: 's1',
  user: 'alice',
  room: 'user:alice',
  seq: 0,
  typing_timeout_ms: 2000,
  ping_interval_ms: 10_000,
};

async function connectReady(t, ready = READY) {
  t.client.connect();
  await settle();
  t.socket().open();
  t.socket().receive(ready);
  await settle();
  return t.socket();
}

// ---- tests ----

test('authenticates with a first-frame auth message, never with the token in the URL', async () => {
  const t = setup();
  t.client.connect();
  await settle();
  const socket = t.socket();
  assert.equal(socket.url, 'ws://test/ws');
  socket.open();
  assert.equal(socket.sent[0].type, 'auth');
  assert.match(socket.sent[0].token, /^[\w-]+\.[\w-]+\.signature$/);
  socket.receive(READY);
  assert.equal(t.client.status, 'online');
  assert.deepEqual(
    t.events.filter((e) => e.type === 'status').map((e) => e.detail.status),
    ['connecting', 'online'],
  );
});

test('backoff caps double from 0.5 s to 30 s with full jitter', async () => {
  const t = setup({ random: () => 1 }); // the top of each jitter range, to see the caps
  t.client.connect();
  const delays = [];
  for (let i = 0; i < 9; i++) {
    await settle();
    t.socket().drop(1006);
    const status = t.events.filter((e) => e.type === 'status').at(-1).detail;
    assert.equal(status.status, 'reconnecting');
    delays.push(status.retryAt - t.clock.now);
    await t.clock.advance(status.retryAt - t.clock.now);
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('jitter spreads the wait uniformly below the cap', async () => {
  const t = setup({ random: () => 0.25 });
  t.client.connect();
  await settle();
  t.socket().drop(1006);
  assert.equal(t.client.retryAt - t.clock.now, 125);
});

test('the browser online event reconnects at once instead of waiting out the backoff', async () => {
  const t = setup({ random: () => 1 });
  t.client.connect();
  await settle();
  t.socket().drop(1006);
  await t.clock.advance(500);
  t.socket().drop(1006); // now waiting 1 s
  const before = FakeSocket.instances.length;
  t.network.dispatchEvent(new Event('online'));
  await settle();
  assert.equal(FakeSocket.instances.length, before + 1);
  assert.equal(t.client.status, 'connecting');
  // The network changed, so the backoff starts over: a failure right now retries soon.
  t.socket().drop(1006);
  assert.equal(t.client.retryAt - t.clock.now, 500);
});

test('messages sent while offline wait in order and go out once the connection is ready', async () => {
  const t = setup();
  const ids = ['one', 'two', 'three'].map((text) => t.client.sendMessage(text));
  assert.equal(new Set(ids).size, 3);
  const socket = await connectReady(t);
  assert.deepEqual(
    socket.sentOfType('message').map((m) => [m.id, m.text]),
    ids.map((id, i) => [id, ['one', 'two', 'three'][i]]),
  );
  for (const [i, id] of ids.entries()) {
    socket.receive({ type: 'emotion', id, room: 'user:alice', seq: i + 1, dominant: 'neutral', confidence: 1, scores: {}, preview: false });
  }
  assert.equal(t.client.pendingMessages.length, 0);
  assert.equal(t.client.lastSeq('user:alice'), 3);
});

test('after a drop, unacknowledged messages are resent once, unless the replay shows them delivered', async () => {
  const t = setup();
  const socket = await connectReady(t);
  const delivered = t.client.sendMessage('made it before the drop');
  const lost = t.client.sendMessage('never reached the server');
  assert.equal(socket.sentOfType('message').length, 2);
  socket.drop(1006); // no emotion for either
  assert.equal(t.client.pendingMessages.length, 2);

  await t.clock.advance(t.client.retryAt - t.clock.now);
  const next = t.socket();
  next.open();
  // The room moved on to seq 2 while we were away (our first message and the bot's reply).
  next.receive({ ...READY, seq: 2 });
  assert.deepEqual(next.sentOfType('join'), [{ type: 'join', room: 'user:alice', since: 0 }]);
  const barrier = next.sentOfType('ping').at(-1);
  assert.equal(next.sentOfType('message').length, 0, 'nothing is resent before the replay is in');

  next.receive({ type: 'joined', room: 'user:alice', seq: 2 });
  next.receive({ type: 'message', room: 'user:alice', seq: 1, from: 'alice', id: delivered, text: 'made it before the drop', emotion: {} });
  next.receive({ type: 'reply', room: 'user:alice', seq: 2, in_reply_to: delivered, text: 'ok', emotion: 'neutral' });
  next.receive({ type: 'pong', t: barrier.t });
  assert.deepEqual(next.sentOfType('message').map((m) => m.id), [lost]);
  assert.equal(t.client.lastSeq('user:alice'), 2);
});

test('replayed events already seen are dropped, so nothing is shown twice', async () => {
  const t = setup();
  const socket = await connectReady(t);
  socket.receive({ type: 'reply', room: 'user:alice', seq: 1, in_reply_to: 'x', text: 'first', emotion: 'joy' });
  socket.receive({ type: 'reply', room: 'user:alice', seq: 1, in_reply_to: 'x', text: 'first', emotion: 'joy' });
  socket.receive({ type: 'reply', room: 'user:alice', seq: 2, in_reply_to: 'y', text: 'second', emotion: 'joy' });
  assert.deepEqual(
    t.events.filter((e) => e.type === 'reply').map((e) => e.detail.text),
    ['first', 'second'],
  );
});

test('shared rooms are rejoined with since = the last seq seen', async () => {
  const t = setup();
  let socket = await connectReady(t);
  t.client.join('lobby');
  assert.deepEqual(socket.sentOfType('join'), [{ type: 'join', room: 'lobby' }]);
  socket.receive({ type: 'joined', room: 'lobby', seq: 40 });
  socket.receive({ type: 'message', room: 'lobby', seq: 41, from: 'bob', id: 'b1', text: 'hi', emotion: {} });
  socket.drop(1006);
  await t.clock.advance(t.client.retryAt - t.clock.now);
  socket = t.socket();
  socket.open();
  socket.receive(READY);
  assert.deepEqual(socket.sentOfType('join'), [{ type: 'join', room: 'lobby', since: 41 }]);
});

test('after a server restart the room counters start over and new events are not taken for duplicates', async () => {
  const t = setup();
  let socket = await connectReady(t, { ...READY, seq: 7 });
  socket.drop(1006);
  await t.clock.advance(t.client.retryAt - t.clock.now);
  socket = t.socket();
  socket.open();
  socket.receive({ ...READY, seq: 0 }); // the restarted server knows nothing
  assert.deepEqual(socket.sentOfType('join'), [{ type: 'join', room: 'user:alice', since: 7 }]);
  // Another tab already talked to the new process: seq 1 and 2 exist there and are replayed.
  socket.receive({ type: 'joined', room: 'user:alice', seq: 2 });
  socket.receive({ type: 'error', code: 'history_gap', message: 'gone', room: 'user:alice' });
  socket.receive({ type: 'message', room: 'user:alice', seq: 1, from: 'alice', id: 'o1', text: 'other tab', emotion: {} });
  socket.receive({ type: 'reply', room: 'user:alice', seq: 2, in_reply_to: 'o1', text: 'replayed', emotion: 'joy' });
  socket.receive({ type: 'pong', t: socket.sentOfType('ping').at(-1).t });
  socket.receive({ type: 'reply', room: 'user:alice', seq: 3, in_reply_to: 'z', text: 'new', emotion: 'joy' });
  assert.deepEqual(
    t.events.filter((e) => e.type === 'message' || e.type === 'reply').map((e) => e.detail.text),
    ['other tab', 'replayed', 'new'],
  );
  assert.equal(t.events.filter((e) => e.type === 'error' && e.detail.code === 'history_gap').length, 1);
});

test('join() while the resume replay is still arriving is sent at once', async () => {
  const t = setup();
  let socket = await connectReady(t);
  t.client.join('lobby');
  socket.receive({ type: 'joined', room: 'lobby', seq: 3 });
  socket.drop(1006);
  await t.clock.advance(t.client.retryAt - t.clock.now);
  socket = t.socket();
  socket.open();
  socket.receive(READY); // resume of lobby starts; its barrier pong has not come back yet
  t.client.join('kitchen');
  assert.deepEqual(socket.sentOfType('join'), [
    { type: 'join', room: 'lobby', since: 3 },
    { type: 'join', room: 'kitchen' },
  ]);
});

test('a refused join forgets the room the error names', async () => {
  const t = setup();
  const socket = await connectReady(t);
  t.client.join('lobby');
  t.client.join('user:bob');
  socket.receive({ type: 'error', code: 'forbidden', message: 'private room', room: 'user:bob' });
  assert.deepEqual(t.client.rooms, ['lobby']);
  socket.receive({ type: 'joined', room: 'lobby', seq: 0 });
  assert.deepEqual(t.client.rooms, ['lobby']);
});

test('a dead link is noticed within one ping interval', async () => {
  const t = setup();
  const socket = await connectReady(t); // ping interval 10 s
  await t.clock.advance(3_000);
  assert.equal(socket.sentOfType('ping').length, 1, 'a ping after 0.3 of the interval of silence');
  socket.receive({ type: 'pong', t: socket.sentOfType('ping')[0].t });
  assert.equal(t.client.status, 'online');
  const lastHeard = t.clock.now;
  // From now on the server is silent (the OS does not report the dead link).
  while (t.client.status === 'online') await t.clock.advance(100);
  const noticedAfter = t.clock.now - lastHeard;
  assert.ok(noticedAfter <= 8_500, `noticed after ${noticedAfter} ms (0.85 of the interval at most)`);
  assert.ok(noticedAfter >= 8_000, `gave a live server time to answer (${noticedAfter} ms)`);
  assert.equal(socket.closedWith, 1000);
  assert.equal(t.client.status, 'reconnecting');
});

test('close 4001 makes the next attempt fetch a fresh token', async () => {
  const t = setup();
  const socket = await connectReady(t);
  assert.equal(t.tokens(), 1);
  socket.drop(1006);
  await t.clock.advance(t.client.retryAt - t.clock.now);
  assert.equal(t.tokens(), 1, 'a still-valid token is reused across ordinary reconnects');
  t.socket().drop(4001);
  assert.equal(t.events.at(-2).detail.code, 'token_rejected', 'the application is told');
  await t.clock.advance(t.client.retryAt - t.clock.now);
  assert.equal(t.tokens(), 2);
});

test('the token is refreshed on the live connection before it expires', async () => {
  const t = setup({ tokenTtlS: 600 });
  // A long ping interval keeps the heartbeat out of this test: the fake server never answers.
  const socket = await connectReady(t, { ...READY, ping_interval_ms: 3_600_000 });
  await t.clock.advance(539_000);
  assert.equal(socket.sentOfType('auth').length, 1);
  await t.clock.advance(2_000); // 60 s before expiry
  assert.equal(t.tokens(), 2);
  const auths = socket.sentOfType('auth');
  assert.equal(auths.length, 2);
  assert.notEqual(auths[1].token, auths[0].token);
});

test('typing is throttled and always ends with the latest draft', async () => {
  const t = setup();
  const socket = await connectReady(t);
  t.client.typing('I');
  t.client.typing('I a');
  t.client.typing('I am');
  assert.deepEqual(socket.sentOfType('typing').map((m) => m.text), ['I']);
  await t.clock.advance(250);
  assert.deepEqual(socket.sentOfType('typing').map((m) => m.text), ['I', 'I am']);
  t.client.typing('');
  await t.clock.advance(1000);
  assert.equal(socket.sentOfType('typing').length, 2, 'an empty draft sends nothing');
});

test('rate-limited messages are resent after a pause, in order', async () => {
  const t = setup();
  const socket = await connectReady(t);
  const id = t.client.sendMessage('hello');
  socket.receive({ type: 'error', code: 'rate_limited', message: 'slow down', id });
  assert.equal(socket.sentOfType('message').length, 1);
  await t.clock.advance(1_000);
  assert.deepEqual(socket.sentOfType('message').map((m) => m.id), [id, id]);
});

test('close() stops reconnecting and reports offline', async () => {
  const t = setup();
  const socket = await connectReady(t);
  t.client.close();
  assert.equal(socket.closedWith, 1000);
  assert.equal(t.client.status, 'offline');
  await t.clock.advance(60_000);
  assert.equal(FakeSocket.instances.length, 1);
});

test('malformed frames are ignored without breaking the connection', async () => {
  const t = setup();
  const socket = await connectReady(t);
  socket.onmessage({ data: 'not json' });
  socket.onmessage({ data: '42' });
  socket.onmessage({ data: '{"no":"type"}' });
  assert.equal(t.client.status, 'online');
});

test('tokenExpiry reads exp from a JWT and returns null for anything else', () => {
  assert.equal(tokenExpiry(jwt({ exp: 1_700_000_000 })), 1_700_000_000_000);
  assert.equal(tokenExpiry('opaque-token'), null);
  assert.equal(tokenExpiry('a.!!!.c'), null);
  assert.equal(tokenExpiry(jwt({ sub: 'x' })), null);
});
