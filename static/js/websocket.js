// EmotiBotWebSocket: a self-healing client for the EmotiBot chat protocol (docs/PROTOCOL.md).
//
// It authenticates with a first-frame `auth` (tokens never appear in URLs or logs), reconnects by
// itself with exponential backoff and full jitter, refreshes its token before it expires, resumes
// every room with `join {since}` so missed events arrive, keeps messages typed while offline in an
// ordered outbox that is delivered exactly once, and detects dead links with an app-level heartbeat.
//
// Every event is a CustomEvent whose `detail` is the server message as received; `status` events
// carry `{status, retryAt?}`. See docs/CLIENT.md.

const DEFAULT_OPTIONS = {
  // Backoff cap doubles from minBackoffMs to maxBackoffMs; the actual wait is uniform in [0, cap].
  minBackoffMs: 500,
  maxBackoffMs: 30_000,
  // A connection must stay ready this long before the backoff starts over from its minimum, so a
  // server that accepts and immediately drops us cannot cause a reconnect loop.
  stableAfterMs: 5_000,
  // Give up on a socket that has not reached `ready` in this time (e.g. a black-holed SYN).
  connectTimeoutMs: 10_000,
  // Fetch a fresh token this long before the current one expires (or at 80% of its life if shorter).
  tokenRefreshMarginMs: 60_000,
  // At most one `typing` frame per room in this window; the latest draft always goes out.
  typingThrottleMs: 250,
  // Messages on the wire awaiting their `emotion` acknowledgement; keeps outbox flushes paced.
  maxInflight: 8,
  // Pause before resending messages the server rejected with `rate_limited`.
  rateLimitPauseMs: 1_000,
  // Used when the server has not told us its ping interval yet.
  defaultPingIntervalMs: 25_000,
  // Injection points for tests: clock, randomness, timers, WebSocket class, and the `window`
  // whose `online`/`offline` events trigger reconnects.
  now: () => Date.now(),
  random: () => Math.random(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
  WebSocket: globalThis.WebSocket,
  networkEvents: typeof window === 'undefined' ? null : window,
};

// Close codes with a meaning for the client (see the protocol's close-code table).
const CLOSE_NORMAL = 1000;
const CLOSE_TOKEN_REJECTED = 4001;

// Server error codes that answer a `join` rather than a message.
const JOIN_REFUSALS = new Set(['forbidden', 'bad_room', 'too_many_rooms']);

// Heartbeat tuning, as fractions of the server's ping interval P. A ping goes out after 0.3 P of
// silence; the link is declared dead after 0.8 P of silence; the check runs every 0.05 P. So a
// dead link is noticed within 0.85 P, and a live one has over 0.4 P to answer a ping.
const PING_AFTER_SILENCE = 0.3;
const DEAD_AFTER_SILENCE = 0.8;
const HEARTBEAT_TICK = 0.05;

export class EmotiBotWebSocket extends EventTarget {
  #url;
  #getToken;
  #opt;

  #wanted = false; // connect() called and close() not since
  #status = 'offline';
  #retryAt = null;
  #attempt = 0; // consecutive failed connections, drives the backoff cap
  #timers = new Map(); // name -> handle: retry, connect, heartbeat, refresh, pump

  #ws = null;
  #socketGeneration = 0; // ignores callbacks from sockets we already gave up on
  #ready = null; // the `ready` message of the live connection
  #readyAt = null;
  #resumed = false; // resume barrier passed: replays are in, the outbox may flow

  #token = null;
  #tokenExpiresAt = null; // ms since epoch, when known

  #user = null;
  #privateRoom = null;
  #sharedRooms = new Set(); // rooms the application asked to be in (private room excluded)
  #lastSeq = new Map(); // room -> highest seq seen (or the room's seq when we joined)
  #pendingJoins = []; // rooms whose `join` awaits `joined` or a refusal, in send order

  #outbox = []; // {id, text, room} not yet on the wire, in send order
  #inflight = []; // {id, text, room} on the wire, awaiting their `emotion`
  #pumpPausedUntil = 0;
  #clientIdPrefix;
  #clientIdCounter = 0;

  #pingIntervalMs;
  #lastHeardAt = 0;
  #pingOutstanding = false;
  #pingCounter = 0;
  #barrierPingT = null;

  #typingByRoom = new Map(); // room key -> {lastSentAt, timer, draft}

  #onBrowserOnline = () => this.#reconnectNow();
  #onBrowserOffline = () => this.#probeLink();

  /**
   * @param {string} url WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`.
   * @param {() => Promise<string>} getToken returns a fresh, valid token each time it is called.
   * @param {object} [options] tuning and test seams; see DEFAULT_OPTIONS.
   */
  constructor(url, getToken, options = {}) {
    super();
    this.#url = url;
    this.#getToken = getToken;
    this.#opt = { ...DEFAULT_OPTIONS, ...options };
    this.#pingIntervalMs = this.#opt.defaultPingIntervalMs;
    this.#clientIdPrefix = randomPrefix(this.#opt.random);
  }

  /** Current status: `connecting`, `online`, `reconnecting` or `offline`. */
  get status() {
    return this.#status;
  }

  /** When the next connection attempt is due (ms since epoch), while `reconnecting`. */
  get retryAt() {
    return this.#retryAt;
  }

  /** The authenticated user id (`sub`), once known. */
  get user() {
    return this.#user;
  }

  /** The user's private room `user:<sub>`, once known. */
  get privateRoom() {
    return this.#privateRoom;
  }

  /** Shared rooms this client is in or is rejoining. */
  get rooms() {
    return [...this.#sharedRooms];
  }

  /** Messages accepted by sendMessage() and not yet acknowledged by the server. */
  get pendingMessages() {
    return [...this.#inflight, ...this.#outbox].map((m) => ({ ...m }));
  }

  /** The highest `seq` seen in a room, or null. */
  lastSeq(room) {
    return this.#lastSeq.get(room) ?? null;
  }

  /** Starts connecting (and keeps reconnecting until close()). */
  connect() {
    if (this.#wanted) return;
    this.#wanted = true;
    const net = this.#opt.networkEvents;
    if (net) {
      net.addEventListener('online', this.#onBrowserOnline);
      net.addEventListener('offline', this.#onBrowserOffline);
    }
    this.#open();
  }

  /** Closes the connection and stops reconnecting; the outbox is kept for a later connect(). */
  close() {
    this.#wanted = false;
    const net = this.#opt.networkEvents;
    if (net) {
      net.removeEventListener('online', this.#onBrowserOnline);
      net.removeEventListener('offline', this.#onBrowserOffline);
    }
    this.#cancelTimer('retry');
    this.#dropSocket(CLOSE_NORMAL);
    this.#socketGeneration++; // a connection attempt in progress must not come back to life
    this.#afterSocketGone();
    this.#setStatus('offline');
  }

  /**
   * Sends a chat message, now or as soon as the connection is back. Returns its client id, which
   * the server echoes in the `emotion` answer (and other tabs see in their `message` event).
   */
  sendMessage(text, room) {
    const id = `${this.#clientIdPrefix}-${++this.#clientIdCounter}`;
    const message = { id, text: String(text) };
    if (room !== undefined && room !== null) message.room = room;
    this.#cancelTyping(room);
    this.#outbox.push(message);
    this.#pump();
    return id;
  }

  /**
   * Reports the current draft (throttled). Other members see a typing indicator; the sender gets
   * a preview `emotion` for the draft. An empty draft sends nothing: the indicator lapses by itself.
   */
  typing(draft, room) {
    if (!this.#isResumed()) return;
    const key = room ?? '';
    let state = this.#typingByRoom.get(key);
    if (!state) {
      state = { lastSentAt: -Infinity, timer: null, draft: '' };
      this.#typingByRoom.set(key, state);
    }
    state.draft = String(draft ?? '');
    if (state.draft.trim() === '') {
      this.#cancelTyping(room);
      return;
    }
    if (state.timer !== null) return; // a trailing send is already scheduled with the latest draft
    const wait = state.lastSentAt + this.#opt.typingThrottleMs - this.#opt.now();
    const flush = () => {
      state.timer = null;
      if (!this.#isResumed() || state.draft.trim() === '') return;
      state.lastSentAt = this.#opt.now();
      const frame = { type: 'typing', text: state.draft };
      if (room !== undefined && room !== null) frame.room = room;
      this.#send(frame);
    };
    if (wait <= 0) flush();
    else state.timer = this.#opt.setTimeout(flush, wait);
  }

  /** Joins a shared room; it is rejoined (with resume) after every reconnect until leave(). */
  join(room) {
    if (room === this.#privateRoom || this.#sharedRooms.has(room)) return;
    this.#sharedRooms.add(room);
    // While offline the room is joined on the next `ready`, with everything else.
    if (this.#ready) this.#sendJoin(room);
  }

  /** Leaves a shared room. */
  leave(room) {
    if (!this.#sharedRooms.delete(room)) return;
    this.#lastSeq.delete(room);
    this.#cancelTyping(room);
    if (this.#ready) this.#send({ type: 'leave', room });
  }

  // ---- connection lifecycle ----

  async #open() {
    this.#cancelTimer('retry');
    this.#retryAt = null;
    const generation = ++this.#socketGeneration;
    this.#setStatus('connecting');
    this.#startTimer('connect', this.#opt.connectTimeoutMs, () => {
      if (generation === this.#socketGeneration) this.#abandonSocket();
    });

    let token;
    try {
      token = await this.#currentToken();
    } catch (err) {
      if (generation !== this.#socketGeneration || !this.#wanted) return;
      this.#emit('error', {
        type: 'error',
        code: 'token_unavailable',
        message: `Could not get a sign-in token: ${describe(err)}`,
      });
      this.#handleSocketGone(generation, null);
      return;
    }
    if (generation !== this.#socketGeneration || !this.#wanted) return;

    let ws;
    try {
      ws = new this.#opt.WebSocket(this.#url);
    } catch (err) {
      this.#emit('error', { type: 'error', code: 'connect_failed', message: describe(err) });
      this.#handleSocketGone(generation, null);
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      if (generation !== this.#socketGeneration) return;
      this.#lastHeardAt = this.#opt.now();
      this.#send({ type: 'auth', token });
    };
    ws.onmessage = (event) => {
      if (generation === this.#socketGeneration) this.#onFrame(event.data);
    };
    ws.onclose = (event) => this.#handleSocketGone(generation, event.code);
    // An `error` is always followed by `close`, which does the bookkeeping.
    ws.onerror = () => {};
  }

  // The cached token while it has time left; otherwise a fresh one from the application.
  async #currentToken() {
    const margin = this.#opt.tokenRefreshMarginMs;
    const expiresAt = this.#tokenExpiresAt;
    const stillGood = this.#token && (expiresAt === null || expiresAt - this.#opt.now() > margin);
    if (stillGood) return this.#token;
    this.#adoptToken(await this.#getToken());
    return this.#token;
  }

  #adoptToken(token) {
    if (typeof token !== 'string' || token === '') throw new Error('getToken() returned no token');
    this.#token = token;
    this.#tokenExpiresAt = tokenExpiry(token);
  }

  #handleSocketGone(generation, closeCode) {
    if (generation !== this.#socketGeneration) return;
    this.#socketGeneration++; // anything still arriving from that socket is stale
    const wasStable =
      this.#readyAt !== null && this.#opt.now() - this.#readyAt >= this.#opt.stableAfterMs;
    this.#ws = null;
    this.#afterSocketGone();
    if (!this.#wanted) {
      this.#setStatus('offline');
      return;
    }
    if (closeCode === CLOSE_TOKEN_REJECTED) {
      // The token was refused or expired: the next attempt must fetch a fresh one.
      this.#token = null;
      this.#tokenExpiresAt = null;
      this.#emit('error', {
        type: 'error',
        code: 'token_rejected',
        message: 'The server did not accept the token (invalid or expired); getting a fresh one.',
      });
    }
    if (wasStable) this.#attempt = 0;
    this.#scheduleRetry();
  }

  // Gives up on the current socket without waiting for the OS to notice it is dead.
  #abandonSocket() {
    this.#dropSocket(CLOSE_NORMAL);
    this.#handleSocketGone(this.#socketGeneration, null);
  }

  // Detaches and closes the socket; its late callbacks are ignored.
  #dropSocket(code) {
    const ws = this.#ws;
    this.#ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code);
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone anyway.
    }
  }

  // Per-connection state is reset; unacknowledged messages go back to the front of the outbox.
  #afterSocketGone() {
    this.#cancelTimer('connect');
    this.#cancelTimer('heartbeat');
    this.#cancelTimer('refresh');
    this.#cancelTimer('pump');
    for (const key of [...this.#typingByRoom.keys()]) this.#cancelTyping(key || undefined);
    this.#ready = null;
    this.#readyAt = null;
    this.#resumed = false;
    this.#barrierPingT = null;
    this.#pendingJoins = [];
    this.#outbox = [...this.#inflight, ...this.#outbox];
    this.#inflight = [];
  }

  #scheduleRetry() {
    const cap = Math.min(this.#opt.maxBackoffMs, this.#opt.minBackoffMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    const delay = Math.round(this.#opt.random() * cap);
    this.#retryAt = this.#opt.now() + delay;
    this.#startTimer('retry', delay, () => this.#open());
    this.#setStatus('reconnecting', this.#retryAt);
  }

  // The browser says the network is back: no point waiting out the backoff, and the failures
  // that grew it happened on a network that has since changed, so it starts over.
  #reconnectNow() {
    if (!this.#wanted || !this.#timers.has('retry')) return;
    this.#attempt = 0;
    this.#open();
  }

  // The browser says the network is gone: check the link now instead of at the next heartbeat.
  #probeLink() {
    if (this.#ready && !this.#pingOutstanding) this.#sendPing();
  }

  // ---- incoming frames ----

  #onFrame(data) {
    this.#lastHeardAt = this.#opt.now();
    this.#pingOutstanding = false;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // not ours to interpret; the protocol only sends JSON text frames
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') return;

    switch (msg.type) {
      case 'ready':
        this.#onReady(msg);
        return;
      case 'authed':
        if (Number.isFinite(msg.exp)) this.#tokenExpiresAt = msg.exp * 1000;
        this.#scheduleTokenRefresh();
        break;
      case 'pong':
        if (this.#barrierPingT !== null && msg.t === this.#barrierPingT) {
          this.#barrierPingT = null;
          this.#onResumed();
          return;
        }
        break;
      case 'emotion':
        if (!msg.preview) this.#onAcknowledged(msg);
        break;
      case 'message':
      case 'reply':
        if (!this.#acceptRoomEvent(msg)) return;
        break;
      case 'joined':
        this.#onJoined(msg);
        break;
      case 'error':
        this.#onServerError(msg);
        break;
      default:
        break;
    }
    this.#emit(msg.type, msg);
  }

  #onReady(msg) {
    this.#cancelTimer('connect');
    this.#ready = msg;
    this.#readyAt = this.#opt.now();
    if (this.#user !== null && this.#user !== msg.user) {
      // A different account: nothing we remember about rooms applies any more.
      this.#lastSeq.clear();
      this.#sharedRooms.clear();
    }
    this.#user = msg.user;
    this.#privateRoom = msg.room;
    if (Number.isFinite(msg.ping_interval_ms) && msg.ping_interval_ms > 0) {
      this.#pingIntervalMs = msg.ping_interval_ms;
    }
    this.#startHeartbeat();
    this.#scheduleTokenRefresh();
    this.#setStatus('online');
    this.#emit('ready', msg);

    // Resume: ask for what we missed in every room, then a ping as a barrier. The server handles
    // frames in order, so its `pong` arrives after every replayed event; only then do we know
    // which outbox messages already made it before the link dropped.
    let resuming = false;
    const privateSeen = this.#lastSeq.get(msg.room);
    if (privateSeen === undefined) {
      if (Number.isFinite(msg.seq)) this.#lastSeq.set(msg.room, msg.seq);
    } else if (msg.seq !== privateSeen) {
      this.#sendJoin(msg.room, privateSeen);
      resuming = true;
    }
    for (const room of this.#sharedRooms) {
      this.#sendJoin(room, this.#lastSeq.get(room));
      resuming = true;
    }
    if (resuming) {
      this.#barrierPingT = this.#sendPing();
    } else {
      this.#onResumed();
    }
  }

  #onResumed() {
    this.#resumed = true;
    this.#pump();
  }

  #sendJoin(room, since) {
    const frame = { type: 'join', room };
    if (Number.isFinite(since)) frame.since = since;
    this.#pendingJoins.push(room);
    this.#send(frame);
  }

  #onJoined(msg) {
    const index = this.#pendingJoins.indexOf(msg.room);
    if (index >= 0) this.#pendingJoins.splice(index, 1);
    if (!Number.isFinite(msg.seq)) return;
    const seen = this.#lastSeq.get(msg.room);
    if (seen === undefined) {
      // A first join: we follow the room from its current seq on.
      this.#lastSeq.set(msg.room, msg.seq);
    } else if (msg.seq < seen) {
      // The counter went backwards: the server restarted. Everything it replays (after its
      // history_gap error) happened since, so none of it may be taken for a duplicate.
      this.#lastSeq.set(msg.room, 0);
    }
  }

  // Drops duplicates (seq already seen), records the seq, and settles our own outbox messages
  // that turn out to have been delivered before a disconnect.
  #acceptRoomEvent(msg) {
    if (typeof msg.room === 'string' && Number.isFinite(msg.seq)) {
      const seen = this.#lastSeq.get(msg.room);
      if (seen !== undefined && msg.seq <= seen) return false;
      this.#lastSeq.set(msg.room, msg.seq);
    }
    if (msg.type === 'message' && msg.from === this.#user && typeof msg.id === 'string') {
      this.#settle(msg.id);
    }
    return true;
  }

  #onAcknowledged(msg) {
    if (typeof msg.room === 'string' && Number.isFinite(msg.seq)) {
      const seen = this.#lastSeq.get(msg.room);
      if (seen === undefined || msg.seq > seen) this.#lastSeq.set(msg.room, msg.seq);
    }
    if (typeof msg.id === 'string' && this.#settle(msg.id)) this.#pump();
  }

  // Removes a message from the inflight list or the outbox; true when it was there.
  #settle(id) {
    for (const list of [this.#inflight, this.#outbox]) {
      const index = list.findIndex((m) => m.id === id);
      if (index >= 0) {
        list.splice(index, 1);
        return true;
      }
    }
    return false;
  }

  #onServerError(msg) {
    if (typeof msg.id === 'string') {
      const index = this.#inflight.findIndex((m) => m.id === msg.id);
      if (index >= 0) {
        const [message] = this.#inflight.splice(index, 1);
        if (msg.code === 'rate_limited') {
          // Not delivered: back to the front of the outbox, resent after a pause.
          this.#outbox.unshift(message);
          this.#pumpPausedUntil = this.#opt.now() + this.#opt.rateLimitPauseMs;
        }
        // Any other refusal (e.g. text_too_long) is final: the application shows it.
        this.#pump();
      }
      return;
    }
    if (JOIN_REFUSALS.has(msg.code)) {
      // The server names the room; the order of our pending joins is the fallback.
      const room = typeof msg.room === 'string' ? msg.room : this.#pendingJoins[0];
      const index = this.#pendingJoins.indexOf(room);
      if (index < 0) return;
      this.#pendingJoins.splice(index, 1);
      this.#sharedRooms.delete(room);
      this.#lastSeq.delete(room);
    }
    // history_gap needs no bookkeeping: #onJoined already reset the room's seq if the server
    // restarted; the lost events cannot be had, and the application learns it from this event.
  }

  // ---- outgoing ----

  #isResumed() {
    return this.#resumed && this.#ws !== null;
  }

  #send(frame) {
    const ws = this.#ws;
    if (!ws) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false; // the close event follows and handles reconnection
    }
  }

  // Moves outbox messages onto the wire, in order, while the window allows.
  #pump() {
    if (!this.#isResumed()) return;
    const wait = this.#pumpPausedUntil - this.#opt.now();
    if (wait > 0) {
      if (!this.#timers.has('pump')) this.#startTimer('pump', wait, () => this.#pump());
      return;
    }
    while (this.#outbox.length > 0 && this.#inflight.length < this.#opt.maxInflight) {
      const message = this.#outbox.shift();
      this.#inflight.push(message);
      this.#send({ type: 'message', ...message });
    }
  }

  #cancelTyping(room) {
    const key = room ?? '';
    const state = this.#typingByRoom.get(key);
    if (!state) return;
    if (state.timer !== null) this.#opt.clearTimeout(state.timer);
    this.#typingByRoom.delete(key);
  }

  // ---- heartbeat and token refresh ----

  #startHeartbeat() {
    this.#cancelTimer('heartbeat');
    this.#lastHeardAt = this.#opt.now();
    this.#pingOutstanding = false;
    const tick = Math.max(50, Math.round(this.#pingIntervalMs * HEARTBEAT_TICK));
    const check = () => {
      if (!this.#ready) return;
      const silence = this.#opt.now() - this.#lastHeardAt;
      if (silence >= this.#pingIntervalMs * DEAD_AFTER_SILENCE) {
        this.#abandonSocket();
        return;
      }
      if (silence >= this.#pingIntervalMs * PING_AFTER_SILENCE && !this.#pingOutstanding) {
        this.#sendPing();
      }
      this.#startTimer('heartbeat', tick, check);
    };
    this.#startTimer('heartbeat', tick, check);
  }

  #sendPing() {
    const t = ++this.#pingCounter;
    this.#pingOutstanding = true;
    this.#send({ type: 'ping', t });
    return t;
  }

  #scheduleTokenRefresh() {
    this.#cancelTimer('refresh');
    if (this.#tokenExpiresAt === null || !this.#ready) return;
    const left = this.#tokenExpiresAt - this.#opt.now();
    const margin = Math.min(this.#opt.tokenRefreshMarginMs, left / 5);
    const delay = Math.max(1_000, left - margin);
    this.#startTimer('refresh', delay, () => this.#refreshToken());
  }

  async #refreshToken() {
    const generation = this.#socketGeneration;
    try {
      this.#adoptToken(await this.#getToken());
    } catch {
      // Try again shortly; if the token runs out first, the server closes with 4001 and the
      // reconnect path fetches one.
      if (generation === this.#socketGeneration && this.#ready) {
        this.#startTimer('refresh', 10_000, () => this.#refreshToken());
      }
      return;
    }
    if (generation !== this.#socketGeneration || !this.#ready) return;
    this.#send({ type: 'auth', token: this.#token });
    // `authed` confirms and reschedules; until then, plan from the token's own expiry.
    this.#scheduleTokenRefresh();
  }

  // ---- helpers ----

  #startTimer(name, ms, fn) {
    this.#cancelTimer(name);
    const handle = this.#opt.setTimeout(() => {
      this.#timers.delete(name);
      fn();
    }, ms);
    this.#timers.set(name, handle);
  }

  #cancelTimer(name) {
    const handle = this.#timers.get(name);
    if (handle === undefined) return;
    this.#opt.clearTimeout(handle);
    this.#timers.delete(name);
  }

  #setStatus(status, retryAt) {
    const detail = retryAt === undefined ? { status } : { status, retryAt };
    if (this.#status === status && retryAt === undefined) return;
    this.#status = status;
    this.#emit('status', detail);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The `exp` claim of a JWT in ms since epoch, or null when the token is not a readable JWT. */
export function tokenExpiry(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const claims = JSON.parse(atob(padded));
    return Number.isFinite(claims?.exp) ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

function randomPrefix(random) {
  let prefix = '';
  for (let i = 0; i < 8; i++) prefix += Math.floor(random() * 36).toString(36);
  return `c${prefix}`;
}

function describe(err) {
  return err instanceof Error ? err.message : String(err);
}
