// Switchboard demo page: one WebSocket to /ws on this host, with a token (?token=, from the
// address or pasted) or in development mode with ?user_id=; one room, live messages, people
// online, who is typing, readable errors, reconnection with backoff, recovery of missed
// messages through `join` with `since`, and the token's expiry and refresh (PROTOCOL.md).
'use strict';

(function () {
  const IDENT = /^[A-Za-z0-9._:@-]{1,128}$/;
  const TYPING_IDLE_MS = 2000; // send typing:false after this pause
  const TYPING_SHOW_MS = 8000; // hide someone's indicator if their typing:false never comes
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const HISTORY_ON_JOIN = 50;
  const ROOM_RETRY_MS = 3000; // a join refused with room_not_found is tried again this often

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    joinView: $('join-view'),
    joinForm: $('join-form'),
    joinError: $('join-error'),
    name: $('name'),
    token: $('token'),
    room: $('room'),
    chatView: $('chat-view'),
    roomTitle: $('room-title'),
    leave: $('leave-btn'),
    online: $('online'),
    messages: $('messages'),
    typing: $('typing'),
    errors: $('errors'),
    composer: $('composer'),
    input: $('message-input'),
    refreshForm: $('refresh-form'),
    refreshToken: $('refresh-token'),
  };

  const state = {
    user: '',
    room: '',
    token: '', // the JWT we connect with ('' in development mode); never stored
    tokenFromUrl: false, // it came with the address: the page has no way to get a new one
    urlToken: '', // the ?token= of the address, if any
    opened: false, // the current socket got past the upgrade
    ws: null,
    wanted: false, // the person wants to be connected (reconnect on loss)
    backoff: BACKOFF_MIN_MS,
    retryTimer: null,
    lastSeq: 0, // highest seq shown in this room
    seen: new Set(), // message ids shown (dedupe across replay and history)
    people: new Map(), // user_id -> status
    typing: new Map(), // user_id -> hide timer
    amTyping: false,
    serverAway: false, // the data plane said `unavailable`: its control plane is away
    typingTimer: null,
    refs: 0,
    pending: new Map(), // ref -> what it was for
    roomMissing: false, // the last join said room_not_found: waiting for the room to exist
    joinTimer: null,
  };

  // ---------------------------------------------------------------- rendering

  function setStatus(text, kind) {
    el.status.textContent = text;
    el.status.className = `status status-${kind}`;
  }

  function fmtTime(ts) {
    const d = ts ? new Date(ts) : new Date();
    if (Number.isNaN(d.getTime())) return '';
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function atBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
  }

  function append(li) {
    const stick = atBottom();
    el.messages.appendChild(li);
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function dataText(data) {
    if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
    if (typeof data === 'string') return data;
    return JSON.stringify(data);
  }

  function renderMessage(m) {
    if (m.id && state.seen.has(m.id)) return;
    if (m.id) state.seen.add(m.id);
    const li = document.createElement('li');
    li.className = 'message';
    if (m.user_id === state.user) li.classList.add('mine');
    if (m.seq !== undefined) li.dataset.seq = String(m.seq);
    const head = document.createElement('div');
    head.className = 'msg-head';
    const who = document.createElement('span');
    who.className = 'msg-user';
    who.textContent = m.user_id || 'server';
    const when = document.createElement('time');
    when.className = 'msg-time';
    when.textContent = fmtTime(m.timestamp);
    if (m.timestamp) when.dateTime = m.timestamp;
    head.append(who, when);
    const body = document.createElement('div');
    body.className = 'msg-text';
    body.textContent = dataText(m.data);
    li.append(head, body);
    append(li);
  }

  function renderNotice(text, kind) {
    const li = document.createElement('li');
    li.className = `notice notice-${kind || 'info'}`;
    const t = document.createElement('time');
    t.className = 'msg-time';
    t.textContent = fmtTime();
    const s = document.createElement('span');
    s.textContent = text;
    li.append(s, t);
    append(li);
  }

  function renderPeople() {
    const order = { online: 0, away: 1, busy: 2, offline: 3 };
    const list = [...state.people.entries()].sort(
      (a, b) => (order[a[1]] ?? 4) - (order[b[1]] ?? 4) || a[0].localeCompare(b[0])
    );
    el.online.replaceChildren(
      ...list.map(([user, status]) => {
        const li = document.createElement('li');
        li.dataset.user = user;
        li.dataset.status = status;
        li.className = `person person-${status}`;
        const dot = document.createElement('span');
        dot.className = 'dot';
        dot.setAttribute('aria-hidden', 'true');
        const name = document.createElement('span');
        name.className = 'person-name';
        name.textContent = user === state.user ? `${user} (you)` : user;
        const st = document.createElement('span');
        st.className = 'person-status';
        st.textContent = status;
        li.append(dot, name, st);
        return li;
      })
    );
  }

  function setPerson(user, status) {
    if (!user) return;
    state.people.set(user, status);
    renderPeople();
  }

  function renderTyping() {
    const names = [...state.typing.keys()].filter((u) => u !== state.user);
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    el.typing.textContent = text;
    el.typing.classList.toggle('active', names.length > 0);
  }

  function setTyping(user, on) {
    const old = state.typing.get(user);
    if (old) clearTimeout(old);
    if (on) {
      state.typing.set(user, setTimeout(() => setTyping(user, false), TYPING_SHOW_MS));
    } else {
      state.typing.delete(user);
    }
    renderTyping();
  }

  const ERROR_TEXT = {
    invalid_message: 'The server did not understand a message we sent.',
    message_too_large: 'That message is too large.',
    rate_limited: 'Slow down: too many messages.',
    unauthorized: 'Not authorized.',
    permission_denied: 'This room is private.',
    room_not_found: 'This room does not exist.',
    room_full: 'This room is full.',
    not_room_member: 'You are not a member of this room.',
    banned: 'You are banned from this room.',
    history_gap: 'Some older messages are no longer available.',
    unavailable: 'The server is temporarily unavailable; retrying.',
    internal: 'The server had a problem.',
  };

  function showError(frame) {
    const code = frame.code || 'error';
    // The same error again (e.g. every frame while the server is away) bumps a counter.
    const last = el.errors.lastElementChild;
    if (last && last.dataset.code === code) {
      const n = Number(last.dataset.count || '1') + 1;
      last.dataset.count = String(n);
      last.querySelector('.count').textContent = ` ×${n}`;
      return;
    }
    const li = document.createElement('li');
    li.className = 'error';
    li.dataset.code = code;
    li.dataset.count = '1';
    const name = document.createElement('strong');
    name.textContent = code;
    const text = document.createElement('span');
    text.className = 'error-text';
    const friendly = ERROR_TEXT[code];
    text.textContent = friendly ? ` ${friendly} (${frame.message || ''})` : ` ${frame.message || ''}`;
    const count = document.createElement('span');
    count.className = 'count';
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'dismiss';
    close.setAttribute('aria-label', 'dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => li.remove());
    li.append(name, text, count, close);
    el.errors.appendChild(li);
    while (el.errors.children.length > 4) el.errors.firstElementChild.remove();
    setTimeout(() => li.remove(), 15000);
  }

  // ---------------------------------------------------------------- protocol

  function send(frame, purpose) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return null;
    const ref = `p${++state.refs}`;
    if (purpose) state.pending.set(ref, purpose);
    state.ws.send(JSON.stringify({ ...frame, ref }));
    return ref;
  }

  function credentials() {
    return state.token ? `token=${encodeURIComponent(state.token)}` : `user_id=${encodeURIComponent(state.user)}`;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/ws?${credentials()}`;
    setStatus('connecting…', 'wait');
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.opened = false;
    ws.addEventListener('open', () => {
      if (ws === state.ws) state.opened = true;
    });
    ws.addEventListener('message', (ev) => {
      if (ws !== state.ws) return;
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      onFrame(f);
    });
    ws.addEventListener('close', (ev) => {
      if (ws !== state.ws) return;
      state.ws = null;
      state.pending.clear();
      state.amTyping = false;
      for (const u of [...state.typing.keys()]) setTyping(u, false);
      el.refreshForm.hidden = true;
      if (ev.code === 1008) {
        setStatus('refused by the server', 'off');
        renderNotice(`Disconnected by the server: ${ev.reason || 'policy'} (1008).`, 'bad');
        state.wanted = false;
        return;
      }
      if (ev.code === 4001) {
        setStatus('token expired', 'off');
        renderNotice('Token expired: reload with a new token.', 'bad');
        state.wanted = false;
        return;
      }
      if (!state.opened && state.token && state.wanted) {
        whyRefused();
        return;
      }
      if (state.wanted) scheduleReconnect();
      else setStatus('not connected', 'off');
    });
  }

  // A WebSocket that never opened hides the HTTP status from the page. A refused token gets the
  // same 401 and sentence on GET /sse, which fetch can read; anything else (the server away)
  // is retried with backoff as usual.
  async function whyRefused() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    let refused = null;
    try {
      const res = await fetch(`/sse?token=${encodeURIComponent(state.token)}`, {
        headers: { Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: ctl.signal,
      });
      if (res.status === 401) {
        const body = await res.json().catch(() => ({}));
        refused = body.message || 'unauthorized';
      }
    } catch (_) {
      /* unreachable: retry below */
    } finally {
      clearTimeout(timer);
      ctl.abort(); // never keep a stream open
    }
    if (!state.wanted) return;
    if (refused === null) {
      scheduleReconnect();
      return;
    }
    state.wanted = false;
    setStatus('token refused', 'off');
    renderNotice(
      `The server refused the token (${refused}). ` +
        (state.tokenFromUrl ? 'Reload the page with a new ?token=.' : 'Leave and join again with a new token.'),
      'bad'
    );
  }

  function scheduleReconnect() {
    const wait = Math.round(state.backoff * (0.5 + Math.random() * 0.5));
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
    setStatus(`reconnecting in ${Math.ceil(wait / 1000)} s…`, 'wait');
    state.retryTimer = setTimeout(connect, wait);
  }

  function sendJoin() {
    const join = { type: 'join', room_id: state.room };
    if (state.lastSeq > 0) join.since = state.lastSeq; // recover what we missed
    send(join, 'join');
  }

  function onFrame(f) {
    switch (f.type) {
      case 'connected': {
        // With a token the server says who we are (the token's sub).
        if (f.user_id && f.user_id !== state.user) {
          state.people.delete(state.user);
          state.user = f.user_id;
          el.name.value = f.user_id;
        }
        setStatus(`connected as ${f.user_id}`, 'on');
        setPerson(state.user, 'online');
        sendJoin();
        break;
      }
      case 'token_expiring': {
        const when = fmtTime(f.expires_at);
        if (state.tokenFromUrl) {
          renderNotice(
            `Your token expires at ${when}. It came with the page address, so there is nothing to refresh it ` +
              'with: reload with a new ?token= before then.',
            'bad'
          );
        } else {
          renderNotice(`Your token expires at ${when}: paste a new one below to stay connected.`, 'bad');
          el.refreshForm.hidden = false;
        }
        break;
      }
      case 'ack': {
        const purpose = state.pending.get(f.ref);
        state.pending.delete(f.ref);
        if (state.serverAway) {
          state.serverAway = false;
          setStatus(`connected as ${state.user}`, 'on');
        }
        if (purpose && purpose.refresh !== undefined) {
          state.token = purpose.refresh; // reconnects use the new token
          el.refreshForm.hidden = true;
          renderNotice(`Token refreshed: it now expires at ${fmtTime(f.expires_at)}.`, 'info');
        }
        if (purpose === 'join') {
          state.backoff = BACKOFF_MIN_MS;
          if (state.roomMissing) {
            state.roomMissing = false;
            setStatus(`connected as ${state.user}`, 'on');
            renderNotice(`Room ${state.room} exists now: joined.`, 'info');
          }
          if (state.lastSeq === 0) send({ type: 'history', room_id: state.room, limit: HISTORY_ON_JOIN }, 'history');
        }
        break;
      }
      case 'history':
        state.pending.delete(f.ref);
        if (f.room_id === state.room) for (const m of f.messages || []) onRoomMessage(m);
        break;
      case 'message':
        if (f.room_id === state.room) onRoomMessage(f);
        else if (!f.room_id && !f.channel_id) renderNotice(`Direct message${f.user_id ? ` from ${f.user_id}` : ''}: ${dataText(f.data)}`, 'direct');
        break;
      case 'join':
        if (f.room_id === state.room) {
          setPerson(f.user_id, 'online');
          renderNotice(`${f.user_id} joined`, 'info');
        }
        break;
      case 'leave':
        if (f.room_id === state.room) {
          state.people.delete(f.user_id);
          renderPeople();
          setTyping(f.user_id, false);
          renderNotice(`${f.user_id} left`, 'info');
        }
        break;
      case 'presence':
        setPerson(f.user_id, f.status);
        if (f.status === 'offline') setTyping(f.user_id, false);
        break;
      case 'typing':
        if (f.room_id === state.room && f.user_id !== state.user) {
          if (f.typing === true && !state.people.has(f.user_id)) setPerson(f.user_id, 'online');
          setTyping(f.user_id, f.typing === true);
        }
        break;
      case 'system':
        renderNotice(`Announcement: ${dataText(f.data)}`, 'system');
        break;
      case 'kicked':
        renderNotice(`Removed by the server: ${f.reason || 'no reason given'}`, 'bad');
        break;
      case 'error': {
        const purpose = state.pending.get(f.ref);
        state.pending.delete(f.ref);
        // While waiting for a missing room, each retry's refusal is not news.
        if (!(purpose === 'join' && f.code === 'room_not_found' && state.roomMissing)) showError(f);
        if (f.code === 'unavailable') {
          state.serverAway = true;
          setStatus('server unavailable, retrying…', 'wait');
        }
        // A message that was not sent goes back into the box rather than being lost.
        if (purpose && purpose.text !== undefined && el.input.value === '') el.input.value = purpose.text;
        if (purpose === 'join' && f.code === 'room_not_found') {
          roomMissing();
        } else if (purpose === 'join' && f.code !== 'history_gap' && f.code !== 'unavailable') {
          setStatus(`could not join: ${f.code}`, 'off');
        }
        if (purpose === 'join' && f.code === 'unavailable') {
          // The control plane is away: retry the join a little later on the same socket.
          setTimeout(sendJoin, 2000);
        }
        break;
      }
      default:
        break; // pong and future frame types
    }
  }

  // Rooms are made by the backend (gRPC), or by the first join when the control plane runs with
  // --auto-create-rooms: say how once, and join again by ourselves until the room exists.
  function roomMissing() {
    setStatus(`room ${state.room} does not exist yet: waiting for it`, 'wait');
    if (!state.roomMissing) {
      state.roomMissing = true;
      renderNotice(
        `Room ${state.room} does not exist. Rooms are created by your backend over gRPC ` +
          `(switchboard.v1.Rooms/CreateRoom with {"id":"${state.room}"}), or by the first join ` +
          'when the control plane runs with --auto-create-rooms (as scripts/run.sh and ' +
          `deploy/local/cluster.sh start it). This page joins by itself once the room exists.`,
        'bad'
      );
    }
    clearTimeout(state.joinTimer);
    state.joinTimer = setTimeout(() => {
      if (state.wanted && state.roomMissing) sendJoin();
    }, ROOM_RETRY_MS);
  }

  function onRoomMessage(m) {
    if (typeof m.seq === 'number') {
      if (m.seq <= state.lastSeq && m.id && state.seen.has(m.id)) return;
      state.lastSeq = Math.max(state.lastSeq, m.seq);
    }
    if (m.user_id) {
      if (!state.people.has(m.user_id)) setPerson(m.user_id, 'online');
      setTyping(m.user_id, false);
    }
    renderMessage(m);
  }

  // ---------------------------------------------------------------- typing

  function typingStop() {
    clearTimeout(state.typingTimer);
    if (state.amTyping) {
      state.amTyping = false;
      send({ type: 'typing', room_id: state.room, typing: false });
    }
  }

  el.input.addEventListener('input', () => {
    if (el.input.value === '') {
      typingStop();
      return;
    }
    if (!state.amTyping && send({ type: 'typing', room_id: state.room, typing: true })) state.amTyping = true;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(typingStop, TYPING_IDLE_MS);
  });

  el.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = el.input.value.trim();
    if (!text) return;
    if (!send({ type: 'message', room_id: state.room, data: { text } }, { text })) {
      showError({ code: 'unavailable', message: 'not connected; the message was not sent' });
      return;
    }
    el.input.value = '';
    typingStop();
  });

  // ---------------------------------------------------------------- join / leave

  el.refreshForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = el.refreshToken.value.trim();
    if (!token) return;
    if (!send({ type: 'refresh', token }, { refresh: token })) {
      showError({ code: 'unavailable', message: 'not connected; reload with a new token' });
      return;
    }
    el.refreshToken.value = '';
  });

  el.joinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = el.token.value.trim();
    // With a token the name is the server's to say (it fills in on `connected`).
    const user = el.name.value.trim();
    const room = el.room.value.trim();
    if ((!token && !IDENT.test(user)) || (token && user && !IDENT.test(user)) || !IDENT.test(room)) {
      el.joinError.textContent = token
        ? 'Use 1 to 128 letters, digits or . _ : @ - for the room.'
        : 'Use 1 to 128 letters, digits or . _ : @ - for the name and the room (or give a token).';
      el.joinError.hidden = false;
      return;
    }
    el.joinError.hidden = true;
    try {
      // Never the token: it is a credential.
      localStorage.setItem('sb-demo', JSON.stringify(token ? { room } : { user, room }));
    } catch (_) {
      /* private mode */
    }
    if (token !== state.urlToken) state.tokenFromUrl = false; // pasted or edited by hand
    clearTimeout(state.joinTimer);
    el.refreshForm.hidden = true;
    Object.assign(state, { user, room, token, lastSeq: 0, wanted: true, backoff: BACKOFF_MIN_MS, roomMissing: false });
    state.seen.clear();
    state.people.clear();
    el.messages.replaceChildren();
    el.errors.replaceChildren();
    el.roomTitle.textContent = `#${room}`;
    el.joinView.hidden = true;
    el.chatView.hidden = false;
    document.title = `#${room} · Switchboard`;
    connect();
    el.input.focus();
  });

  el.leave.addEventListener('click', () => {
    typingStop();
    send({ type: 'leave', room_id: state.room });
    state.wanted = false;
    clearTimeout(state.retryTimer);
    clearTimeout(state.joinTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) setTimeout(() => ws.close(1000), 100);
    el.refreshForm.hidden = true;
    setStatus('not connected', 'off');
    el.chatView.hidden = true;
    el.joinView.hidden = false;
    document.title = 'Switchboard demo';
  });

  // Prefill from the last visit, or from ?user=&room= in the address.
  const params = new URLSearchParams(location.search);
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem('sb-demo') || '{}');
  } catch (_) {
    saved = {};
  }
  el.name.value = params.get('user') || saved.user || '';
  el.room.value = params.get('room') || saved.room || 'lobby';
  // ?token= in the address: connect with it (the page cannot refresh a token it did not get).
  state.urlToken = params.get('token') || '';
  if (state.urlToken) {
    el.token.value = state.urlToken;
    state.tokenFromUrl = true;
  }
})();
