// The chat page: sign-in, rooms, transcript, live emotion meter, mood timeline, status and toasts.
// All text from the network or the user goes into the page through textContent, never as HTML.

import { EmotiBotWebSocket, tokenExpiry } from './websocket.js';
import { EMOTIONS, describeScores, emotionSymbol, isEmotion, orderedScores, percent } from './emotions.js';
import { renderMoodTimeline } from './mood-timeline.js';

const BOT_ID = 'emotibot';
const ROOM_NAME = /^[a-z0-9_-]{1,64}$/;
const USER_ID = /[^A-Za-z0-9_.-]+/g;
const TOAST_MS = 6000;
// Typing indicators clear when the server says so (after typing_timeout_ms); this fallback, well
// past that, only matters if the word is lost.
const typingFallbackMs = (timeoutMs) => 2 * timeoutMs + 1000;
const NAME_STORAGE_KEY = 'emotibot.name';

const $ = (id) => document.getElementById(id);

const ui = {
  signinView: $('signin-view'),
  signinForm: $('signin-form'),
  signinButton: $('signin-button'),
  signinError: $('signin-error'),
  modeNote: $('mode-note'),
  nameInput: $('display-name'),
  tokenField: $('token-field'),
  tokenInput: $('token-input'),
  chatView: $('chat-view'),
  whoami: $('whoami'),
  whoamiName: $('whoami-name'),
  status: $('status'),
  statusText: $('status-text'),
  statusAnnouncer: $('status-announcer'),
  roomList: $('room-list'),
  joinForm: $('join-form'),
  joinInput: $('join-room'),
  roomTitle: $('room-title'),
  roomSubtitle: $('room-subtitle'),
  leaveButton: $('leave-room'),
  transcript: $('transcript'),
  transcriptLog: $('transcript-log'), // the scrolling container around the list
  typingIndicator: $('typing-indicator'),
  composer: $('composer'),
  draft: $('draft'),
  liveMeter: $('live-meter'),
  liveDominant: $('live-dominant'),
  liveBars: $('live-bars'),
  moodTimeline: $('mood-timeline'),
  moodSummary: $('mood-summary'),
  toasts: $('toasts'),
};

const state = {
  config: null, // /api/config
  client: null,
  user: null,
  displayName: null,
  activeRoom: null,
  rooms: new Map(), // room name -> Room
  outgoing: new Map(), // client id -> {room, element}
  statusTimer: null,
  lastStatus: { status: 'offline' },
  typingTimeoutMs: 2000,
};

// ---- startup and sign-in ----

init();

async function init() {
  buildLiveMeter();
  ui.nameInput.value = readStoredName();
  ui.signinForm.addEventListener('submit', onSignIn);
  try {
    const response = await fetch('/api/config', { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    state.config = await response.json();
  } catch (err) {
    ui.signinError.textContent = `Cannot reach the EmotiBot server (${describe(err)}). Reload to try again.`;
    return;
  }
  if (state.config.dev_mode) {
    ui.modeNote.textContent =
      'Development mode: pick any name and the server issues you a short-lived token.';
  } else {
    ui.modeNote.textContent =
      'This server requires an access token. Paste yours below; your name comes from the token.';
    ui.tokenField.hidden = false;
    ui.nameInput.required = false;
    ui.nameInput.closest('form').querySelector('label[for="display-name"]').textContent =
      'Your name (optional, shown only on this page)';
  }
  ui.modeNote.hidden = false;
  ui.signinButton.disabled = false;
  ui.nameInput.focus();
}

async function onSignIn(event) {
  event.preventDefault();
  ui.signinError.textContent = '';
  const name = ui.nameInput.value.trim();
  let getToken;
  if (state.config.dev_mode) {
    if (!name) {
      ui.signinError.textContent = 'Please enter a name.';
      ui.nameInput.focus();
      return;
    }
    const user = userIdFromName(name);
    getToken = () => fetchDevToken(user, name);
  } else {
    const token = ui.tokenInput.value.trim();
    if (!token) {
      ui.signinError.textContent = 'Please paste your access token.';
      ui.tokenInput.focus();
      return;
    }
    // A pasted token cannot be renewed from here; once it runs out the person signs in again.
    getToken = async () => {
      if (tokenExpired(token)) {
        signOut('Your access token has expired. Paste a fresh one to continue.');
        throw new Error('the access token has expired');
      }
      return token;
    };
  }
  ui.signinButton.disabled = true;
  try {
    // Fetch once up front so a bad name or token is reported on the form, not as a toast later.
    const firstToken = await getToken();
    let handedOut = false;
    const tokenSource = async () => {
      if (!handedOut) {
        handedOut = true;
        return firstToken;
      }
      return getToken();
    };
    storeName(name);
    startChat(tokenSource, name);
  } catch (err) {
    ui.signinError.textContent = describe(err);
    ui.signinButton.disabled = false;
  }
}

async function fetchDevToken(user, name) {
  const response = await fetch('/api/dev/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ user, name }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || typeof body.token !== 'string') {
    throw new Error(body.message || body.error || `The server refused a token (${response.status}).`);
  }
  return body.token;
}

function startChat(getToken, name) {
  resetChatState();
  state.displayName = name || null;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}${state.config.ws_path || '/ws'}`;
  const client = new EmotiBotWebSocket(url, getToken);
  state.client = client;
  client.addEventListener('status', (e) => renderStatus(e.detail));
  client.addEventListener('ready', (e) => onReady(e.detail));
  client.addEventListener('emotion', (e) => onEmotion(e.detail));
  client.addEventListener('message', (e) => onMessage(e.detail));
  client.addEventListener('reply', (e) => onReply(e.detail));
  client.addEventListener('typing', (e) => onTyping(e.detail));
  client.addEventListener('presence', (e) => onPresence(e.detail));
  client.addEventListener('joined', (e) => onJoined(e.detail));
  client.addEventListener('left', (e) => removeRoom(e.detail.room));
  client.addEventListener('error', (e) => onServerError(e.detail));

  ui.signinView.hidden = true;
  ui.chatView.hidden = false;
  wireChatControls();
  client.connect();
}

// Forgets the previous session's rooms and messages (signing in again may be someone else).
function resetChatState() {
  for (const room of state.rooms.values()) {
    for (const typer of room.typers.values()) clearTimeout(typer.timer);
  }
  state.rooms.clear();
  state.outgoing.clear();
  state.activeRoom = null;
  state.user = null;
  ui.transcript.replaceChildren();
  ui.roomList.replaceChildren();
  ui.typingIndicator.textContent = '';
  ui.draft.value = '';
  resetLiveMeter();
}

function signOut(reason) {
  state.client?.close();
  ui.chatView.hidden = true;
  ui.signinView.hidden = false;
  ui.whoami.hidden = true;
  ui.signinButton.disabled = false;
  ui.signinError.textContent = reason;
}

let controlsWired = false;
function wireChatControls() {
  if (controlsWired) return;
  controlsWired = true;
  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    sendDraft();
  });
  ui.draft.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendDraft();
    }
  });
  ui.draft.addEventListener('input', () => {
    const draft = ui.draft.value;
    if (draft.trim() === '') resetLiveMeter();
    state.client.typing(draft, roomArgument(state.activeRoom));
  });
  ui.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = ui.joinInput.value.trim().toLowerCase();
    if (!ROOM_NAME.test(room)) {
      toast('Room names use 1 to 64 lowercase letters, digits, "-" or "_".', 'error');
      ui.joinInput.focus();
      return;
    }
    ui.joinInput.value = '';
    ensureRoom(room, 'shared');
    state.client.join(room);
    switchRoom(room);
    ui.draft.focus();
  });
  // Escape dismisses the newest toast.
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') ui.toasts.lastElementChild?.remove();
  });
  ui.leaveButton.addEventListener('click', () => {
    const room = state.activeRoom;
    if (!room || room === state.client.privateRoom) return;
    state.client.leave(room);
    removeRoom(room);
  });
}

// ---- rooms ----

// A room as the page keeps it: its transcript nodes, mood points, who is typing, who is here.
function ensureRoom(name, kind) {
  let room = state.rooms.get(name);
  if (room) return room;
  room = {
    name,
    kind,
    nodes: [],
    mood: [],
    typers: new Map(), // user -> {name, timer}
    // Who has shown up here since we joined (the protocol sends no member list on join):
    // user id -> display name, added on presence/message/typing, removed when they leave.
    active: new Map(),
    unread: 0,
  };
  state.rooms.set(name, room);
  renderRoomList();
  return room;
}

function removeRoom(name) {
  const room = state.rooms.get(name);
  if (!room || room.kind === 'private') return;
  for (const typer of room.typers.values()) clearTimeout(typer.timer);
  state.rooms.delete(name);
  if (state.activeRoom === name) switchRoom(state.client.privateRoom);
  else renderRoomList();
}

function switchRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  state.activeRoom = name;
  room.unread = 0;
  ui.transcript.replaceChildren(...room.nodes);
  ui.roomTitle.textContent = roomTitle(room);
  ui.leaveButton.hidden = room.kind === 'private';
  ui.draft.placeholder =
    room.kind === 'private' ? 'How are you feeling today?' : `Message #${room.name}`;
  resetLiveMeter();
  renderRoomSubtitle();
  renderRoomList();
  renderTyping();
  renderMood();
  scrollTranscriptToEnd();
}

function roomTitle(room) {
  return room.kind === 'private' ? 'EmotiBot (private)' : `#${room.name}`;
}

// The room argument for the client: undefined means the private room.
function roomArgument(name) {
  return name && name !== state.client.privateRoom ? name : undefined;
}

function renderRoomList() {
  const items = [...state.rooms.values()].map((room) => {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'room-button';
    button.dataset.room = room.name;
    const label = document.createElement('span');
    label.textContent = room.kind === 'private' ? 'EmotiBot' : `#${room.name}`;
    button.append(label);
    if (room.unread > 0 && room.name !== state.activeRoom) {
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.textContent = String(room.unread);
      button.append(badge);
      button.setAttribute('aria-label', `${label.textContent}, ${room.unread} unread`);
    }
    if (room.name === state.activeRoom) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => switchRoom(room.name));
    item.append(button);
    return item;
  });
  ui.roomList.replaceChildren(...items);
}

function renderRoomSubtitle() {
  const room = state.rooms.get(state.activeRoom);
  if (!room) return;
  if (room.kind === 'private') {
    ui.roomSubtitle.textContent = 'Only you (on any of your devices) and EmotiBot are here.';
  } else {
    const names = [...room.active.values()];
    const shown = names.slice(0, 4).join(', ');
    const more = names.length > 4 ? ` and ${names.length - 4} more` : '';
    ui.roomSubtitle.textContent =
      names.length === 0
        ? 'Shared room: everyone in it sees your messages.'
        : `Active here since you joined: ${shown}${more}.`;
  }
}

// ---- server events ----

function onReady(ready) {
  state.user = ready.user;
  if (Number.isFinite(ready.typing_timeout_ms)) state.typingTimeoutMs = ready.typing_timeout_ms;
  ui.whoamiName.textContent = ready.name || state.displayName || ready.user;
  ui.whoami.hidden = false;
  ensureRoom(ready.room, 'private');
  if (!state.activeRoom) {
    switchRoom(ready.room);
    ui.draft.focus(); // signed in: keyboard users land in the message box
  }
}

function onJoined(joined) {
  ensureRoom(joined.room, joined.room === state.client.privateRoom ? 'private' : 'shared');
}

function onEmotion(emotion) {
  if (emotion.preview) {
    // A late preview for a draft that has since been sent or cleared would be misleading.
    if (ui.draft.value.trim() !== '') renderLiveMeter(emotion);
    return;
  }
  const outgoing = state.outgoing.get(emotion.id);
  if (!outgoing) return;
  state.outgoing.delete(emotion.id);
  markDelivered(outgoing.element, emotion);
  addMoodPoint(outgoing.room, emotion, 'You');
}

function onMessage(message) {
  const outgoing = state.outgoing.get(message.id);
  if (outgoing && message.from === state.user) {
    // Our own message, replayed after a reconnect: it was delivered before the link dropped.
    state.outgoing.delete(message.id);
    markDelivered(outgoing.element, message.emotion);
    addMoodPoint(outgoing.room, message.emotion, 'You');
    return;
  }
  const room = ensureRoom(message.room, message.room === state.client.privateRoom ? 'private' : 'shared');
  stopTyping(room, message.from);
  const own = message.from === state.user;
  if (!own) noteActive(room, message.from, message.name);
  const who = own ? 'You' : message.name || message.from;
  const element = messageElement({
    kind: own ? 'own' : 'other',
    who,
    text: message.text,
    id: message.id,
    from: message.from,
    ts: message.ts,
  });
  markDelivered(element, message.emotion);
  appendToRoom(room, element);
  addMoodPoint(room.name, message.emotion, who);
}

function onReply(reply) {
  const room = ensureRoom(reply.room, reply.room === state.client.privateRoom ? 'private' : 'shared');
  const element = messageElement({ kind: 'bot', who: 'EmotiBot', text: reply.text, from: BOT_ID, ts: reply.ts });
  if (isEmotion(reply.emotion)) {
    const note = document.createElement('span');
    note.className = 'reply-context';
    note.textContent = `answering ${emotionSymbol(reply.emotion)} ${reply.emotion}`;
    element.querySelector('.message-meta').append(note);
  }
  appendToRoom(room, element);
}

function onTyping(typing) {
  if (typing.from === state.user) return; // our own other tabs
  const room = state.rooms.get(typing.room);
  if (!room) return;
  if (!typing.active) {
    stopTyping(room, typing.from);
    return;
  }
  const existing = room.typers.get(typing.from);
  if (existing) clearTimeout(existing.timer);
  const who = typing.from === BOT_ID ? 'EmotiBot' : typing.name || typing.from;
  if (typing.from !== BOT_ID) noteActive(room, typing.from, typing.name);
  const timeout = typingFallbackMs(state.typingTimeoutMs);
  // The bot's indicator lasts as long as its reply takes; only people's indicators lapse.
  const timer = typing.from === BOT_ID ? null : setTimeout(() => stopTyping(room, typing.from), timeout);
  room.typers.set(typing.from, { name: who, timer });
  if (room.name === state.activeRoom) renderTyping();
}

function noteActive(room, user, name) {
  if (room.kind !== 'shared') return;
  const before = room.active.get(user);
  const after = name || before || user;
  room.active.set(user, after);
  if (after !== before && room.name === state.activeRoom) renderRoomSubtitle();
}

function stopTyping(room, from) {
  const typer = room.typers.get(from);
  if (!typer) return;
  clearTimeout(typer.timer);
  room.typers.delete(from);
  if (room.name === state.activeRoom) renderTyping();
}

function onPresence(presence) {
  if (presence.user === state.user) return;
  const room = state.rooms.get(presence.room);
  if (!room) return;
  if (presence.online) noteActive(room, presence.user, presence.name);
  else {
    room.active.delete(presence.user);
    stopTyping(room, presence.user);
  }
  const line = document.createElement('li');
  line.className = 'system-line';
  line.textContent = `${presence.user} ${presence.online ? 'joined' : 'left'}`;
  appendToRoom(room, line, { countsAsUnread: false });
  if (room.name === state.activeRoom) renderRoomSubtitle();
}

const ERROR_TEXT = {
  rate_limited: 'You are sending messages too quickly; slow down a little.',
  text_too_long: 'That message is too long to send.',
  history_gap: 'Some earlier messages are no longer available, so a few may be missing.',
  forbidden: 'That room is private.',
  bad_room: 'That is not a valid room name.',
  too_many_rooms: 'You are in too many rooms; leave one first.',
  not_member: 'You are not in that room any more.',
};

function onServerError(error) {
  if (error.code === 'token_rejected') {
    // DEV MODE tokens renew by themselves; a pasted token that the server refuses cannot.
    if (!state.config.dev_mode) {
      signOut('The server did not accept this access token (invalid or expired). Paste a fresh one.');
    }
    return;
  }
  const outgoing = typeof error.id === 'string' ? state.outgoing.get(error.id) : undefined;
  if (outgoing && error.code !== 'rate_limited') {
    // Final refusal: the client dropped it from its outbox.
    state.outgoing.delete(error.id);
    outgoing.element.dataset.state = 'failed';
    setDeliveryNote(outgoing.element, `Not sent: ${ERROR_TEXT[error.code] ?? error.message ?? error.code}`);
  }
  if (!outgoing && (error.code === 'forbidden' || error.code === 'bad_room' || error.code === 'too_many_rooms')) {
    // A refused join: the client has forgotten the room; drop it from the page too.
    for (const name of state.rooms.keys()) {
      const room = state.rooms.get(name);
      if (room.kind === 'shared' && !state.client.rooms.includes(name)) removeRoom(name);
    }
  }
  const text = ERROR_TEXT[error.code] ?? error.message ?? 'Something went wrong.';
  toast(text, error.code === 'history_gap' ? 'info' : 'error');
}

// ---- transcript ----

// `ts` is the server's timestamp (ms since epoch) when the event has one: replayed history then
// shows when it was said, not when it arrived.
function messageElement({ kind, who, text, id, from, ts }) {
  const item = document.createElement('li');
  item.className = `message message--${kind}`;
  if (id) item.dataset.id = id;
  if (from) item.dataset.from = from;

  const meta = document.createElement('p');
  meta.className = 'message-meta';
  const author = document.createElement('span');
  author.className = 'message-author';
  author.textContent = who;
  const time = document.createElement('time');
  const when = Number.isFinite(ts) ? new Date(ts) : new Date();
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  meta.append(author, time);

  const body = document.createElement('p');
  body.className = 'message-text';
  body.textContent = text;

  item.append(meta, body);
  return item;
}

function appendToRoom(room, element, { countsAsUnread = true } = {}) {
  room.nodes.push(element);
  if (room.name === state.activeRoom) {
    const log = ui.transcriptLog;
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    ui.transcript.append(element);
    if (nearBottom) scrollTranscriptToEnd();
  } else if (countsAsUnread) {
    room.unread += 1;
    renderRoomList();
  }
}

function scrollTranscriptToEnd() {
  ui.transcriptLog.scrollTop = ui.transcriptLog.scrollHeight;
}

// Adds the emotion chip and the small score chart to a message.
function markDelivered(element, emotion) {
  element.dataset.state = 'delivered';
  element.querySelector('.delivery-note')?.remove();
  if (!emotion || element.querySelector('.emotion')) return;
  const label = isEmotion(emotion.dominant) ? emotion.dominant : 'neutral';
  element.dataset.emotion = label;

  const figure = document.createElement('div');
  figure.className = 'emotion';

  const chip = document.createElement('span');
  chip.className = `chip emotion-${label}`;
  chip.dataset.emotion = label;
  const symbol = document.createElement('span');
  symbol.setAttribute('aria-hidden', 'true');
  symbol.textContent = emotionSymbol(label);
  const text = document.createElement('span');
  text.textContent = `${label} ${percent(emotion.confidence)}%`;
  chip.append(symbol, text);

  const chart = document.createElement('span');
  chart.className = 'score-chart';
  chart.setAttribute('role', 'img');
  chart.setAttribute('aria-label', `Scores: ${describeScores(emotion.scores)}`);
  for (const { label: barLabel, score } of orderedScores(emotion.scores)) {
    const bar = document.createElement('span');
    bar.className = `score-bar emotion-${barLabel}`;
    bar.title = `${barLabel} ${percent(score)}%`;
    // CSSOM writes are allowed under a CSP without 'unsafe-inline' (style attributes are not).
    bar.style.height = `${Math.max(2, percent(score))}%`;
    chart.append(bar);
  }

  figure.append(chip, chart);
  element.append(figure);
}

function setDeliveryNote(element, text) {
  let note = element.querySelector('.delivery-note');
  if (!note) {
    note = document.createElement('p');
    note.className = 'delivery-note';
    element.append(note);
  }
  note.textContent = text;
}

function refreshPendingNotes() {
  const online = state.client?.status === 'online';
  for (const { element } of state.outgoing.values()) {
    if (element.dataset.state === 'failed') continue;
    element.dataset.state = online ? 'sending' : 'queued';
    setDeliveryNote(element, online ? 'Sending…' : 'Waiting for the connection; it will be sent automatically.');
  }
}

// ---- composer and live meter ----

function sendDraft() {
  const text = ui.draft.value.trim();
  if (!text || !state.activeRoom) return;
  const roomName = state.activeRoom;
  const id = state.client.sendMessage(text, roomArgument(roomName));
  const element = messageElement({ kind: 'own', who: 'You', text, id, from: state.user });
  state.outgoing.set(id, { room: roomName, element });
  appendToRoom(state.rooms.get(roomName), element);
  renderStatus(state.lastStatus);
  scrollTranscriptToEnd();
  ui.draft.value = '';
  resetLiveMeter();
}

function buildLiveMeter() {
  const rows = EMOTIONS.map((label) => {
    const row = document.createElement('li');
    row.className = 'meter-row';
    row.dataset.emotion = label;
    const name = document.createElement('span');
    name.className = 'meter-label';
    name.textContent = `${emotionSymbol(label)} ${label}`;
    const track = document.createElement('span');
    track.className = 'meter-track';
    const fill = document.createElement('span');
    fill.className = `meter-fill emotion-${label}`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'meter-value';
    value.textContent = '0%';
    row.append(name, track, value);
    return row;
  });
  ui.liveBars.replaceChildren(...rows);
  resetLiveMeter();
}

function renderLiveMeter(emotion) {
  const label = isEmotion(emotion.dominant) ? emotion.dominant : 'neutral';
  ui.liveMeter.dataset.dominant = label;
  ui.liveDominant.textContent = `${emotionSymbol(label)} ${label} (${percent(emotion.confidence)}%)`;
  for (const { label: rowLabel, score } of orderedScores(emotion.scores)) {
    const row = ui.liveBars.querySelector(`[data-emotion="${rowLabel}"]`);
    row.querySelector('.meter-fill').style.width = `${percent(score)}%`;
    row.querySelector('.meter-value').textContent = `${percent(score)}%`;
    row.classList.toggle('is-dominant', rowLabel === label);
  }
}

function resetLiveMeter() {
  ui.liveMeter.dataset.dominant = '';
  ui.liveDominant.textContent = '… start typing';
  for (const row of ui.liveBars.children) {
    row.querySelector('.meter-fill').style.width = '0%';
    row.querySelector('.meter-value').textContent = '0%';
    row.classList.remove('is-dominant');
  }
}

// ---- typing indicator and mood timeline ----

function renderTyping() {
  const room = state.rooms.get(state.activeRoom);
  const names = room ? [...room.typers.values()].map((t) => t.name) : [];
  ui.typingIndicator.textContent =
    names.length === 0
      ? ''
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`;
  ui.typingIndicator.classList.toggle('is-active', names.length > 0);
}

function addMoodPoint(roomName, emotion, who) {
  const room = state.rooms.get(roomName);
  if (!room || !emotion) return;
  room.mood.push({ dominant: emotion.dominant, confidence: emotion.confidence, who });
  if (roomName === state.activeRoom) renderMood();
}

function renderMood() {
  const room = state.rooms.get(state.activeRoom);
  renderMoodTimeline(ui.moodTimeline, ui.moodSummary, room ? room.mood : []);
}

// ---- connection status and toasts ----

function renderStatus(detail) {
  const { status, retryAt } = detail;
  if (status !== state.lastStatus.status) ui.statusAnnouncer.textContent = `Connection ${status}`;
  state.lastStatus = detail;
  clearInterval(state.statusTimer);
  state.statusTimer = null;
  ui.status.dataset.status = status;
  const describeNow = () => {
    const waiting = state.client?.pendingMessages.length ?? 0;
    const suffix = waiting > 0 ? ` · ${waiting} waiting to send` : '';
    if (status === 'online') return 'Online';
    if (status === 'connecting') return `Connecting…${suffix}`;
    if (status === 'reconnecting') {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      return `${seconds > 0 ? `Reconnecting in ${seconds} s` : 'Reconnecting…'}${suffix}`;
    }
    return `Offline${suffix}`;
  };
  ui.statusText.textContent = describeNow();
  if (status === 'reconnecting' && retryAt) {
    // The visible countdown; screen readers hear only the change of state (statusAnnouncer).
    state.statusTimer = setInterval(() => {
      ui.statusText.textContent = describeNow();
    }, 1000);
  }
  refreshPendingNotes();
}

function toast(text, kind = 'info') {
  const box = document.createElement('div');
  box.className = `toast toast--${kind}`;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const message = document.createElement('p');
  message.textContent = text;
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.className = 'toast-dismiss';
  dismiss.setAttribute('aria-label', 'Dismiss');
  dismiss.textContent = '×';
  const remove = () => box.remove();
  dismiss.addEventListener('click', remove);
  box.append(message, dismiss);
  ui.toasts.append(box);
  setTimeout(remove, TOAST_MS);
}

// ---- helpers ----

function userIdFromName(name) {
  const id = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(USER_ID, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return id || `guest-${Math.floor(Math.random() * 1e6)}`;
}

// A token we cannot read is not judged here: the server decides.
function tokenExpired(token) {
  const expiresAt = tokenExpiry(token);
  return expiresAt !== null && expiresAt <= Date.now();
}

function readStoredName() {
  try {
    return localStorage.getItem(NAME_STORAGE_KEY) ?? '';
  } catch {
    return ''; // storage may be disabled; the name is only a convenience
  }
}

function storeName(name) {
  try {
    if (name) localStorage.setItem(NAME_STORAGE_KEY, name);
  } catch {
    // Storage disabled: nothing to remember.
  }
}

function describe(err) {
  return err instanceof Error ? err.message : String(err);
}
