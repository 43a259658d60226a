// app.js - the coldchain web dashboard: log in, cells with their latest temperature, a cell
// page with its chart, active alerts with acknowledge and resolve, live updates.
// Plain ES module, no framework, no build step. Every piece of data reaches the DOM through
// textContent or setAttribute (h() below), never innerHTML.

import { addReading, drawChart, fmtTemp } from './chart.js';

const POLL_MS = 5000; // polling interval while the live feed is unavailable
const WS_RETRY_MIN_MS = 5000;
const WS_RETRY_MAX_MS = 60000;
const SESSION_KEY = 'coldchain.session';
const RANGES = ['24h', '7d', '30d'];

// ---------------------------------------------------------------------------------------
// DOM helpers

/** h('a', {href: '#/', class: 'x'}, 'text', child, ...): strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const $main = () => document.getElementById('main');

function toast(msg, kind = 'info') {
  const t = document.getElementById('toast');
  t.dataset.kind = kind;
  t.textContent = msg;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.textContent = ''), 6000);
}

const fmtTime = new Intl.DateTimeFormat(undefined, {
  day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

function fmtWhen(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? fmtTime.format(new Date(t)) : '–';
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// ---------------------------------------------------------------------------------------
// Session and API client

let session = null; // {accessToken, refreshToken, user}

function loadSession() {
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  } catch {
    session = null;
  }
}

function saveSession(s) {
  session = s;
  if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION_KEY);
}

class ApiError extends Error {
  constructor(status, body, headers) {
    const err = body && body.error ? body.error : {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || '';
    this.details = err.details || [];
    this.retryAfter = Number(headers?.get('Retry-After')) || 0;
  }
}

async function rawFetch(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store', credentials: 'omit',
  });
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers);
  return data;
}

let refreshing = null; // one refresh at a time, shared by every caller that met a 401

function refreshTokens() {
  if (!refreshing) {
    const rt = session?.refreshToken;
    refreshing = (async () => {
      if (!rt) throw new ApiError(401, null);
      const out = await rawFetch('POST', '/api/auth/refresh', { refreshToken: rt });
      saveSession({ ...session, accessToken: out.accessToken, refreshToken: out.refreshToken,
        user: out.user || session?.user });
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** Calls the API as the signed-in user; one refresh and retry on 401 TOKEN_EXPIRED. */
async function api(method, path, body) {
  try {
    return await rawFetch(method, path, body, session?.accessToken);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    if (e.code === 'TOKEN_EXPIRED') {
      try {
        await refreshTokens();
      } catch {
        signedOut('Your session has ended. Please log in again.');
        throw e;
      }
      return rawFetch(method, path, body, session?.accessToken).catch((e2) => {
        if (e2 instanceof ApiError && e2.status === 401) signedOut('Please log in again.');
        throw e2;
      });
    }
    signedOut('Please log in again.');
    throw e;
  }
}

function signedOut(msg) {
  saveSession(null);
  live.stop();
  if (msg) toast(msg, 'error');
  if (location.hash !== '#/login') location.hash = '#/login';
  else route();
}

// ---------------------------------------------------------------------------------------
// Live feed: WebSocket /api/ws (docs/websocket.md), polling while it is unavailable.

const live = {
  mode: 'off', // 'off' | 'connecting' | 'websocket' | 'polling'
  ws: null,
  retryMs: WS_RETRY_MIN_MS,
  retryTimer: 0,
  pollTimer: 0,
  pausedUntil: 0, // after a 429, no poll before this time

  setMode(m) {
    this.mode = m;
    const b = document.querySelector('[data-testid="live-mode"]');
    if (b) {
      b.dataset.mode = m;
      b.textContent = { websocket: 'Live', polling: 'Polling', connecting: 'Connecting…', off: '' }[m];
      b.title = m === 'websocket' ? 'Live updates over WebSocket'
        : m === 'polling' ? `Live feed unavailable: refreshing every ${POLL_MS / 1000} s` : '';
    }
  },

  start() {
    if (this.mode !== 'off') return;
    this.retryMs = WS_RETRY_MIN_MS;
    this.connect();
  },

  stop() {
    clearTimeout(this.retryTimer);
    this.stopPolling();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onerror = ws.onmessage = ws.onopen = null;
      ws.close();
    }
    this.setMode('off');
  },

  connect() {
    if (!session?.accessToken) return;
    this.setMode(this.mode === 'polling' ? 'polling' : 'connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/api/ws?token=${encodeURIComponent(session.accessToken)}`);
    } catch {
      this.fallback();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retryMs = WS_RETRY_MIN_MS;
      this.stopPolling();
      this.setMode('websocket');
      view?.resync?.(); // catch up with what happened while disconnected
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg === 'object') view?.onEvent?.(msg);
    };
    ws.onclose = async (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4401 && opened) {
        try { await refreshTokens(); } catch { signedOut('Your session has ended.'); return; }
        this.connect();
        return;
      }
      this.fallback();
    };
  },

  fallback() {
    this.setMode('polling');
    this.startPolling();
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, WS_RETRY_MAX_MS);
  },

  startPolling() {
    if (this.pollTimer) return;
    const tick = async () => {
      if (this.mode !== 'polling') { this.pollTimer = 0; return; }
      if (!document.hidden && Date.now() >= this.pausedUntil && view?.poll) {
        try {
          await view.poll();
        } catch (e) {
          if (e instanceof ApiError && e.status === 429) {
            this.pausedUntil = Date.now() + (e.retryAfter || 30) * 1000;
          }
        }
      }
      if (this.pollTimer) this.pollTimer = setTimeout(tick, POLL_MS);
    };
    this.pollTimer = setTimeout(tick, POLL_MS);
  },

  stopPolling() {
    clearTimeout(this.pollTimer);
    this.pollTimer = 0;
  },
};

// ---------------------------------------------------------------------------------------
// Shared data helpers

/** Status of a cell from its latest reading and devices: 'ok' | 'out' | 'nodata'. */
function cellStatus(cell, latest, devices) {
  if (!latest || typeof latest.temperature !== 'number') return 'nodata';
  if (devices && devices.length && !devices.some((d) => d.status === 'ONLINE')) return 'nodata';
  if (latest.temperature < cell.minTemp || latest.temperature > cell.maxTemp) return 'out';
  return 'ok';
}

function statusText(status, devices) {
  if (status === 'ok') return 'In range';
  if (status === 'out') return 'Out of range';
  if (devices && devices.length && !devices.some((d) => d.status === 'ONLINE')) return 'Offline';
  return 'No data';
}

function newer(a, b) {
  // true if reading a is newer (by timestamp) than b
  if (!b) return true;
  return Date.parse(a.ts) >= Date.parse(b.ts);
}

const ALERT_LABELS = {
  HIGH_TEMP: 'High temperature', LOW_TEMP: 'Low temperature',
  POWER_LOSS: 'Power loss', SENSOR_ERROR: 'Sensor offline',
};

/** Loads the cells the user may see: the customer dashboard, else the plain endpoints. */
async function loadOverview() {
  try {
    const d = await api('GET', '/api/dashboard/customer');
    if (d && Array.isArray(d.locations)) {
      return d.locations.map((l) => ({
        ...l,
        coldCells: (l.coldCells || []).map((c) => ({ ...c, latest: c.latest || null, devices: c.devices || [] })),
      }));
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status === 401 || e.status === 429) throw e;
    // 404 (not there yet) or 403 (not for this role): build it from the plain endpoints
  }
  const [locs, cells, devs] = await Promise.all([
    api('GET', '/api/locations'),
    api('GET', '/api/coldcells'),
    api('GET', '/api/devices').catch(() => ({ items: [] })),
  ]);
  const byLoc = new Map((locs.items || []).map((l) => [l.id, { ...l, coldCells: [] }]));
  const latest = await Promise.all(
    (cells.items || []).map((c) => api('GET', `/api/coldcells/${c.id}/latest`).catch(() => null)),
  );
  (cells.items || []).forEach((c, i) => {
    let loc = byLoc.get(c.locationId);
    if (!loc) {
      loc = { id: c.locationId, name: `Location ${c.locationId}`, coldCells: [] };
      byLoc.set(c.locationId, loc);
    }
    loc.coldCells.push({ ...c, latest: latest[i], devices: (devs.items || []).filter((d) => d.coldCellId === c.id) });
  });
  return [...byLoc.values()].filter((l) => l.coldCells.length);
}

async function loadAlerts(cellId) {
  const q = cellId ? `&coldCellId=${encodeURIComponent(cellId)}` : '';
  const a = await api('GET', `/api/alerts?status=ACTIVE&limit=200${q}`);
  return (a?.items || []).filter((x) => x.status === 'ACTIVE');
}

// ---------------------------------------------------------------------------------------
// Alerts panel (used by both pages)

class AlertsPanel {
  constructor(cellNames) {
    this.items = [];
    this.pending = []; // one Map per load in flight: live changes seen meanwhile
    this.cellNames = cellNames; // Map id -> name
    this.error = '';
    this.root = h('section', { class: 'panel alerts', 'aria-labelledby': 'alerts-h', 'data-testid': 'alerts' });
  }

  set(items) {
    this.items = items.slice().sort((a, b) => Date.parse(b.firstTriggeredAt) - Date.parse(a.firstTriggeredAt));
    this.error = '';
    this.render();
  }

  // Replaces the list with what fetch() answers, then re-applies the live changes that
  // arrived while it was in flight (the answer may predate them).
  async load(fetch) {
    const seen = new Map();
    this.pending.push(seen);
    try {
      const items = await fetch();
      this.set(items);
      for (const a of seen.values()) this.upsert(a);
    } finally {
      this.pending = this.pending.filter((m) => m !== seen);
    }
  }

  upsert(alert) {
    for (const m of this.pending) m.set(alert.id, alert);
    const i = this.items.findIndex((a) => a.id === alert.id);
    if (alert.status !== 'ACTIVE') {
      if (i >= 0) this.items.splice(i, 1);
    } else if (i >= 0) this.items[i] = alert;
    else this.items.unshift(alert);
    this.render();
  }

  async act(alert, what, body) {
    try {
      const out = await api('PATCH', `/api/alerts/${alert.id}/${what}`, body);
      this.upsert(out && out.id ? out : { ...alert, status: what === 'resolve' ? 'RESOLVED' : alert.status, acknowledgedAt: alert.acknowledgedAt || new Date().toISOString() });
      toast(what === 'resolve' ? 'Alert resolved.' : 'Alert acknowledged.');
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        this.upsert({ ...alert, status: 'RESOLVED' });
        toast('That alert was already resolved.');
      } else {
        toast(`Could not ${what} the alert: ${e.message}`, 'error');
      }
    }
  }

  render() {
    const list = h('ul', { class: 'alert-list' });
    for (const a of this.items) {
      const note = h('input', { type: 'text', maxlength: 500, placeholder: 'Note (optional)', 'aria-label': 'Resolution note', 'data-testid': 'alert-note' });
      const acked = !!a.acknowledgedAt;
      list.append(
        h('li', { class: `alert${acked ? ' acked' : ''}`, 'data-testid': 'alert-item', dataset: { alertId: a.id, type: a.type || '' } },
          h('div', { class: 'alert-main' },
            h('strong', {}, ALERT_LABELS[a.type] || a.type || 'Alert'),
            ' · ',
            h('a', { href: `#/cells/${a.coldCellId}` }, this.cellNames.get(a.coldCellId) || `Cell ${a.coldCellId}`),
            a.escalatedAt ? h('span', { class: 'tag esc' }, 'escalated') : null,
            acked ? h('span', { class: 'tag', 'data-testid': 'alert-acked' }, 'acknowledged') : null,
            h('div', { class: 'alert-msg' }, a.message || ''),
            h('div', { class: 'muted small' },
              typeof a.value === 'number' ? `value ${fmtTemp(a.value)} · ` : '',
              `since ${fmtWhen(a.firstTriggeredAt)}`,
              a.triggerCount > 1 ? ` · ${a.triggerCount} triggers` : ''),
          ),
          h('div', { class: 'alert-actions' },
            h('button', { type: 'button', class: 'btn', disabled: acked, 'data-testid': 'alert-ack',
              onclick: (ev) => { ev.currentTarget.disabled = true; this.act(a, 'acknowledge'); } }, 'Acknowledge'),
            note,
            h('button', { type: 'button', class: 'btn primary', 'data-testid': 'alert-resolve',
              onclick: (ev) => { ev.currentTarget.disabled = true; this.act(a, 'resolve', note.value.trim() ? { note: note.value.trim() } : {}); } }, 'Resolve'),
          ),
        ),
      );
    }
    this.root.replaceChildren(
      h('h2', { id: 'alerts-h' }, 'Active alerts ', h('span', { class: 'count', 'data-testid': 'alert-count' }, String(this.items.length))),
      this.error ? h('p', { class: 'muted' }, this.error)
        : this.items.length ? list : h('p', { class: 'muted', 'data-testid': 'no-alerts' }, 'No active alerts.'),
    );
  }
}

// ---------------------------------------------------------------------------------------
// Views. A view has render(), and optionally onEvent(msg), poll(), resync(), destroy().

let view = null;

function loginView() {
  const err = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'login-error' });
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true, 'data-testid': 'login-email' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const submit = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'login-submit' }, 'Log in');
  const form = h('form', { class: 'login', 'data-testid': 'login-form', novalidate: true },
    h('h1', {}, 'Log in'),
    h('label', { for: 'email' }, 'Email'), email,
    h('label', { for: 'password' }, 'Password'), password,
    err, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (!email.value || !password.value) {
      err.textContent = 'Enter your email and password.';
      return;
    }
    submit.disabled = true;
    try {
      const out = await rawFetch('POST', '/api/auth/login', { email: email.value.trim(), password: password.value });
      saveSession({ accessToken: out.accessToken, refreshToken: out.refreshToken, user: out.user });
      password.value = '';
      location.hash = '#/';
    } catch (e) {
      err.textContent = e.code === 'INVALID_CREDENTIALS' ? 'Wrong email or password.'
        : e.code === 'RATE_LIMITED' ? `Too many attempts; try again in ${e.retryAfter || 'a few'} seconds.`
          : `Login failed: ${e.message}`;
    } finally {
      submit.disabled = false;
    }
  });
  return {
    render() {
      $main().replaceChildren(h('div', { class: 'login-wrap' }, form));
      email.focus();
    },
  };
}

function cellCard(c) {
  const status = cellStatus(c, c.latest, c.devices);
  const t = c.latest?.temperature;
  return h('li', {},
    h('a', { class: `card status-${status}`, href: `#/cells/${c.id}`, 'data-testid': 'cell-card', dataset: { cellId: c.id, status } },
      h('span', { class: 'card-name', 'data-testid': 'cell-name' }, c.name),
      h('span', { class: 'card-temp', 'data-testid': 'cell-temp', dataset: { value: typeof t === 'number' ? String(t) : '' } },
        typeof t === 'number' ? `${fmtTemp(t)} °C` : '–'),
      h('span', { class: 'card-status' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), statusText(status, c.devices)),
      h('span', { class: 'card-meta muted small' },
        `${fmtTemp(c.minTemp)} … ${fmtTemp(c.maxTemp)} °C`,
        c.latest?.ts ? ` · ${ago(c.latest.ts)}` : ''),
      c.activeAlerts?.length ? h('span', { class: 'tag alert-tag' }, `${c.activeAlerts.length} alert${c.activeAlerts.length > 1 ? 's' : ''}`) : null,
    ));
}

function overviewView() {
  let locations = [];
  const cellNames = new Map();
  const alerts = new AlertsPanel(cellNames);
  const grid = h('div', { class: 'locations', 'data-testid': 'locations' });
  let pollN = 0;

  function renderCells() {
    grid.replaceChildren(...locations.map((l) =>
      h('section', { class: 'location', 'aria-label': l.name },
        h('h2', {}, l.name, l.address ? h('span', { class: 'muted small addr' }, ` · ${l.address}`) : null),
        h('ul', { class: 'cards' }, ...l.coldCells.map(cellCard)))));
    if (!locations.length) grid.append(h('p', { class: 'muted' }, 'No cold cells yet.'));
  }

  async function loadAll() {
    locations = await loadOverview();
    for (const l of locations) for (const c of l.coldCells) cellNames.set(c.id, c.name);
    renderCells();
  }

  async function loadAlertsInto() {
    try {
      await alerts.load(() => loadAlerts());
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 429)) throw e;
      alerts.error = `Alerts unavailable (${e.message}).`;
      alerts.render();
    }
  }

  return {
    async render() {
      $main().replaceChildren(
        h('div', { class: 'page' },
          h('h1', { class: 'visually-hidden' }, 'Cold cells'),
          grid, alerts.root));
      grid.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
      alerts.render();
      try {
        await Promise.all([loadAll(), loadAlertsInto()]);
      } catch (e) {
        grid.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, `Could not load the cells: ${e.message}`));
      }
    },
    onEvent(msg) {
      if (msg.type === 'reading' && msg.reading) {
        for (const l of locations) for (const c of l.coldCells) {
          if (c.id === msg.coldCellId && newer(msg.reading, c.latest)) c.latest = { ...msg.reading, coldCellId: c.id };
        }
        renderCells();
      } else if (msg.type === 'alert' && msg.alert) {
        alerts.upsert(msg.alert);
        for (const l of locations) for (const c of l.coldCells) {
          if (c.id !== msg.alert.coldCellId || !Array.isArray(c.activeAlerts)) continue;
          c.activeAlerts = c.activeAlerts.filter((a) => a.id !== msg.alert.id);
          if (msg.alert.status === 'ACTIVE') c.activeAlerts.push(msg.alert);
        }
        renderCells();
      } else if (msg.type === 'device' && msg.device) {
        for (const l of locations) for (const c of l.coldCells) {
          c.devices = (c.devices || []).map((d) => (d.id === msg.device.id ? { ...d, ...msg.device } : d));
        }
        renderCells();
      }
    },
    async poll() {
      await loadAll();
      if (pollN++ % 2 === 0) await loadAlertsInto();
    },
    resync() { this.poll().catch(() => {}); },
  };
}

function cellView(id) {
  let cell = null;
  let latest = null;
  let devices = [];
  let answer = null;
  let range = '24h';
  let pollN = 0;
  const cellNames = new Map();
  const alerts = new AlertsPanel(cellNames);
  const title = h('h1', { 'data-testid': 'cell-title' }, 'Cold cell');
  const sub = h('p', { class: 'muted' });
  const now = h('section', { class: 'panel now', 'aria-label': 'Latest reading', 'aria-live': 'polite', 'data-testid': 'cell-latest' });
  const chartBox = h('div', { class: 'chart-box', 'data-testid': 'chart', dataset: { points: '0', range: '' } });
  const stats = h('dl', { class: 'stats', 'data-testid': 'stats' });
  const rangeBtns = RANGES.map((r) => h('button', {
    type: 'button', class: 'btn seg', 'data-testid': `range-${r}`, 'aria-pressed': String(r === range),
    onclick: () => loadRange(r),
  }, r));

  function renderNow() {
    const status = cell ? cellStatus(cell, latest, devices) : 'nodata';
    const t = latest?.temperature;
    const extra = [];
    if (typeof latest?.humidity === 'number') extra.push(`humidity ${latest.humidity.toFixed(0)} %`);
    if (latest?.doorStatus === true) extra.push('door open');
    if (latest?.powerStatus === false) extra.push('mains power lost');
    if (typeof latest?.batteryLevel === 'number') extra.push(`battery ${latest.batteryLevel.toFixed(0)} %`);
    now.className = `panel now status-${status}`;
    now.dataset.status = status;
    now.replaceChildren(
      h('div', { class: 'now-temp', 'data-testid': 'cell-latest-temp', dataset: { value: typeof t === 'number' ? String(t) : '' } },
        typeof t === 'number' ? `${fmtTemp(t)} °C` : 'No data'),
      h('div', { class: 'card-status' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), statusText(status, devices)),
      h('div', { class: 'muted small' },
        latest?.ts ? `at ${fmtWhen(latest.ts)} (${ago(latest.ts)})` : '',
        latest?.serialNumber ? ` · ${latest.serialNumber}` : ''),
      h('div', { class: 'small' }, extra.join(' · ')),
    );
  }

  function renderStats() {
    const s = answer?.stats || {};
    const item = (k, v, title) => h('div', { title }, h('dt', {}, k), h('dd', {}, v));
    stats.replaceChildren(
      item('Min', `${fmtTemp(s.min)} °C`), item('Max', `${fmtTemp(s.max)} °C`),
      item('Average', `${fmtTemp(s.avg)} °C`),
      item('MKT', `${fmtTemp(s.mkt)} °C`, 'Mean kinetic temperature'),
      item('Readings', String(s.count ?? 0)),
      item('Out of range', `${typeof s.minutesOutOfRange === 'number' ? s.minutesOutOfRange.toFixed(0) : '–'} min`),
    );
  }

  function drawNow() {
    if (answer && cell) drawChart(chartBox, answer, cell);
  }
  // Redraw at the new width when the layout changes (the chart is drawn in pixels).
  let drawnWidth = 0;
  const resize = new ResizeObserver(() => {
    const w = chartBox.clientWidth;
    if (Math.abs(w - drawnWidth) > 8) {
      drawnWidth = w;
      drawNow();
    }
  });

  async function loadRange(r) {
    range = r;
    rangeBtns.forEach((b) => b.setAttribute('aria-pressed', String(b.textContent === r)));
    chartBox.setAttribute('aria-busy', 'true');
    try {
      answer = await api('GET', `/api/readings/coldcells/${encodeURIComponent(id)}/readings?range=${r}`);
      if (range !== r) return; // another button was pressed meanwhile
      drawNow();
      renderStats();
    } catch (e) {
      chartBox.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, `Could not load the readings: ${e.message}`));
      chartBox.dataset.points = '0';
    } finally {
      chartBox.removeAttribute('aria-busy');
    }
  }

  async function loadLatest() {
    const l = await api('GET', `/api/coldcells/${encodeURIComponent(id)}/latest`);
    if (l && typeof l === 'object' && (!latest || newer(l, latest))) latest = l;
    renderNow();
  }

  async function loadCellAlerts() {
    try {
      await alerts.load(() => loadAlerts(id));
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 429)) throw e;
      alerts.error = `Alerts unavailable (${e.message}).`;
      alerts.render();
    }
  }

  return {
    async render() {
      $main().replaceChildren(
        h('div', { class: 'page' },
          h('nav', { class: 'crumbs' }, h('a', { href: '#/', 'data-testid': 'back' }, '← All cells')),
          title, sub,
          h('div', { class: 'cell-top' }, now,
            h('section', { class: 'panel chart-panel', 'aria-label': 'Temperature chart' },
              h('div', { class: 'chart-head' },
                h('h2', {}, 'Temperature'),
                h('div', { class: 'seg-group', role: 'group', 'aria-label': 'Range' }, ...rangeBtns)),
              chartBox,
              h('p', { class: 'legend small muted' },
                h('span', { class: 'key band' }), 'min–max ',
                h('span', { class: 'key avg' }), 'average ',
                h('span', { class: 'key thr' }), 'thresholds'),
              stats)),
          alerts.root));
      renderNow();
      alerts.render();
      resize.observe(chartBox);
      try {
        cell = await api('GET', `/api/coldcells/${encodeURIComponent(id)}`);
      } catch (e) {
        title.textContent = e.status === 404 ? 'No such cold cell' : 'Cold cell';
        sub.textContent = e.status === 404 ? 'It does not exist, or it is not yours.' : `Could not load it: ${e.message}`;
        return;
      }
      cellNames.set(cell.id, cell.name);
      title.textContent = cell.name;
      sub.textContent = `Thresholds ${fmtTemp(cell.minTemp)} … ${fmtTemp(cell.maxTemp)} °C`;
      document.title = `${cell.name} · coldchain`;
      api('GET', `/api/devices`).then((d) => {
        devices = (d?.items || []).filter((x) => x.coldCellId === cell.id);
        renderNow();
      }).catch(() => {});
      await Promise.allSettled([loadLatest(), loadRange(range), loadCellAlerts()]);
    },
    onEvent(msg) {
      if (!cell) return;
      if (msg.type === 'reading' && msg.coldCellId === cell.id && msg.reading) {
        if (newer(msg.reading, latest)) {
          latest = { ...msg.reading, coldCellId: cell.id };
          renderNow();
        }
        if (answer && addReading(answer, msg.reading)) drawNow();
      } else if (msg.type === 'alert' && msg.alert?.coldCellId === cell.id) {
        alerts.upsert(msg.alert);
      } else if (msg.type === 'device' && msg.device?.coldCellId === cell.id) {
        devices = devices.filter((d) => d.id !== msg.device.id).concat([msg.device]);
        renderNow();
      }
    },
    async poll() {
      if (!cell) return;
      const before = latest;
      await loadLatest();
      const changed = latest && (!before || latest.ts !== before.ts);
      if (changed && answer) {
        addReading(answer, latest);
        drawNow();
      }
      // A new reading may have raised or cleared an alert.
      if (changed || pollN++ % 3 === 0) await loadCellAlerts();
    },
    resync() { this.poll().catch(() => {}); },
    destroy() { resize.disconnect(); },
  };
}

// ---------------------------------------------------------------------------------------
// Router: #/login, #/ (cells), #/cells/:id

function renderHeader() {
  const s = document.querySelector('[data-testid="session"]');
  const name = document.querySelector('[data-testid="user-name"]');
  s.hidden = !session;
  name.textContent = session?.user ? `${session.user.name || session.user.email}` : '';
  name.title = session?.user ? `${session.user.email} (${String(session.user.role || '').toLowerCase()})` : '';
}

function route() {
  const hash = location.hash || '#/';
  view?.destroy?.();
  view = null;
  if (!session && hash !== '#/login') {
    location.replace('#/login');
    return;
  }
  if (session && hash === '#/login') {
    location.replace('#/');
    return;
  }
  renderHeader();
  const m = /^#\/cells\/(\d+)$/.exec(hash);
  if (hash === '#/login') {
    live.stop();
    document.title = 'Log in · coldchain';
    view = loginView();
  } else if (m) {
    view = cellView(Number(m[1]));
  } else {
    document.title = 'coldchain';
    view = overviewView();
  }
  view.render();
  if (session) live.start();
  document.getElementById('main').focus({ preventScroll: true });
}

async function logout() {
  const rt = session?.refreshToken;
  const at = session?.accessToken;
  saveSession(null);
  live.stop();
  if (rt) {
    rawFetch('POST', '/api/auth/logout', { refreshToken: rt }, at).catch(() => {});
  }
  location.hash = '#/login';
}

function init() {
  loadSession();
  document.querySelector('[data-testid="logout"]').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && live.mode === 'polling') view?.poll?.().catch(() => {});
  });
  route();
}

init();
