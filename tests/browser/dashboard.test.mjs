// dashboard.test.mjs - the web dashboard end to end (issue 6.4), in Debian's headless
// Chromium driven by playwright-core: a real stack (stack.py: mosquitto, ingestd, apid,
// seeded database), log in as customer1, see the seeded cells, open one, see a non-empty
// chart, publish a reading over MQTT and watch the value change without a reload,
// acknowledge and resolve an alert, log out. Prints "ok <case>" / "FAIL <case>: why" and
// finally "browser: N passed, M failed"; exit status 1 if any failed.
// Screenshots: build/dashboard.png (cell page after the live update), build/dashboard-cells.png.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BUILD = path.join(ROOT, 'build');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LIVE_TIMEOUT_MS = 20000; // polling fallback: 5 s interval, plus slack
const CUSTOMER1_CELLS = ['Walk-in Freezer', 'Walk-in Fridge', 'Bar Fridge'];
const OTHER_TENANT_CELL = 'Fish Freezer'; // customer2's
const FREEZER = { name: 'Walk-in Freezer', serial: 'CC-FRZ-0001' };

let passed = 0;
let failed = 0;
const notes = [];

async function tcase(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
    return true;
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${String(e?.message || e).split('\n')[0]}`);
    if (process.env.VERBOSE) console.log(e?.stack);
    return false;
  }
}

function assert(cond, why) {
  if (!cond) throw new Error(why);
}

// --- the stack, through stack.py ------------------------------------------------------------

function startStack() {
  const proc = spawn('/usr/bin/python3', ['-u', path.join(HERE, 'stack.py')], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = createInterface({ input: proc.stdout });
  const waiting = [];
  const queued = [];
  lines.on('line', (l) => {
    let msg;
    try { msg = JSON.parse(l); } catch { process.stdout.write(`stack: ${l}\n`); return; }
    const w = waiting.shift();
    if (w) w(msg); else queued.push(msg);
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const next = (ms = 120000) => new Promise((resolve, reject) => {
    if (queued.length) { resolve(queued.shift()); return; }
    const timer = setTimeout(() => reject(new Error(`stack.py did not answer in ${ms} ms: ${stderr.slice(-2000)}`)), ms);
    const onExit = (code) => { clearTimeout(timer); reject(new Error(`stack.py exited ${code}: ${stderr.slice(-2000)}`)); };
    proc.once('exit', onExit);
    waiting.push((m) => { clearTimeout(timer); proc.off('exit', onExit); resolve(m); });
  });
  return {
    proc,
    next,
    stderr: () => stderr,
    async command(line) {
      proc.stdin.write(`${line}\n`);
      return next(30000);
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.stdin.end();
      const t = setTimeout(() => proc.kill('SIGTERM'), 30000);
      await done;
      clearTimeout(t);
    },
  };
}

// true if apid accepts a WebSocket upgrade at /api/ws with this token (docs/websocket.md).
function wsOffered(port, token) {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1', port, path: `/api/ws?token=${encodeURIComponent(token)}`,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
    });
    req.on('upgrade', (res, sock) => { sock.destroy(); resolve(true); });
    req.on('response', (res) => { res.resume(); resolve(false); });
    req.on('error', () => resolve(false));
    req.setTimeout(5000, () => { req.destroy(); resolve(false); });
    req.end();
  });
}

async function publish(stack, serial, reading) {
  const out = await stack.command(`publish ${serial} ${JSON.stringify(reading)}`);
  assert(out.ok, `publish to ${serial} failed: ${out.error || 'no PUBACK'}`);
}

// --- main -----------------------------------------------------------------------------------

async function main() {
  mkdirSync(BUILD, { recursive: true });
  const stack = startStack();
  let browser = null;
  let profile = null;
  const pageErrors = [];
  const badResponses = [];
  try {
    const info = await stack.next();
    const base = `http://127.0.0.1:${info.http}`;

    profile = await mkdtemp(path.join(tmpdir(), 'cc-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
      locale: 'en-GB',
      timezoneId: 'UTC',
    });
    const page = browser.pages()[0] || (await browser.newPage());
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      // A refused /api/ws upgrade is expected while the live feed is not built.
      if (m.type() === 'error' && !/\/api\/ws/.test(m.text()) && !/Failed to load resource/.test(m.text())) {
        pageErrors.push(`console: ${m.text()}`);
      }
    });
    page.on('response', (r) => {
      const u = new URL(r.url());
      if (r.status() >= 500 || (r.status() >= 400 && !u.pathname.startsWith('/api/ws'))) {
        badResponses.push(`${r.request().method()} ${u.pathname} ${r.status()}`);
      }
    });
    const tid = (id) => page.getByTestId(id);

    await tcase('dashboard served at /', async () => {
      const res = await page.goto(`${base}/`);
      assert(res && res.status() === 200, `GET / answered ${res?.status()}`);
      const csp = res.headers()['content-security-policy'] || '';
      assert(csp.includes("default-src 'self'"), `no CSP on the page: ${csp}`);
      await tid('login-form').waitFor();
    });

    await tcase('wrong password is refused', async () => {
      await tid('login-email').fill('customer1@example.com');
      await tid('login-password').fill('not-the-password');
      await tid('login-submit').click();
      await page.waitForFunction(() => document.querySelector('[data-testid="login-error"]')?.textContent.length > 0);
      assert(await tid('login-form').isVisible(), 'left the login form');
      badResponses.length = 0; // that 401 was the point
    });

    const loggedIn = await tcase('log in as customer1', async () => {
      await tid('login-email').fill('customer1@example.com');
      await tid('login-password').fill('customer123');
      await tid('login-submit').click();
      await tid('cell-card').first().waitFor();
      const name = await tid('user-name').textContent();
      assert(/Northwind/.test(name), `header shows "${name}"`);
      const stored = await page.evaluate(() => ({
        s: sessionStorage.getItem('coldchain.session'), l: localStorage.length,
      }));
      assert(stored.s && JSON.parse(stored.s).accessToken, 'no session in sessionStorage');
      assert(stored.l === 0, 'something was written to localStorage');
    });
    if (!loggedIn) throw new Error('cannot go on without logging in');

    await tcase('seeded cells listed with temperature and status', async () => {
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid="cell-card"]').length >= n, CUSTOMER1_CELLS.length);
      const cards = await page.$$eval('[data-testid="cell-card"]', (els) => els.map((e) => ({
        name: e.querySelector('[data-testid="cell-name"]').textContent,
        value: e.querySelector('[data-testid="cell-temp"]').dataset.value,
        status: e.dataset.status,
        colour: getComputedStyle(e).borderLeftColor,
      })));
      const names = cards.map((c) => c.name).sort();
      assert(JSON.stringify(names) === JSON.stringify([...CUSTOMER1_CELLS].sort()),
        `cells ${JSON.stringify(names)}, want ${JSON.stringify(CUSTOMER1_CELLS)}`);
      assert(!names.includes(OTHER_TENANT_CELL), "customer2's cell is shown");
      for (const c of cards) {
        assert(c.value !== '' && Number.isFinite(Number(c.value)), `${c.name}: no latest temperature`);
        assert(['ok', 'out', 'nodata'].includes(c.status), `${c.name}: status ${c.status}`);
      }
      const ok = cards.filter((c) => c.status === 'ok');
      assert(ok.length > 0, `no cell is green: ${JSON.stringify(cards)}`);
      assert(ok.every((c) => c.colour === ok[0].colour) && cards.some((c) => c.status === 'ok'),
        'status colours inconsistent');
      await page.screenshot({ path: path.join(BUILD, 'dashboard-cells.png'), fullPage: true });
    });

    let cellId = 0;
    await tcase('open a cell page', async () => {
      await page.locator('[data-testid="cell-card"]', { hasText: FREEZER.name }).click();
      await page.waitForFunction(() => /^#\/cells\/\d+$/.test(location.hash));
      cellId = Number((await page.evaluate(() => location.hash)).split('/').pop());
      await page.waitForFunction((n) => document.querySelector('[data-testid="cell-title"]')?.textContent === n, FREEZER.name);
      await page.waitForFunction(() => document.querySelector('[data-testid="cell-latest-temp"]')?.dataset.value !== '');
    });

    await tcase('24h chart is drawn (band, average, thresholds)', async () => {
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart"]')?.dataset.points) > 0);
      const c = await page.$eval('[data-testid="chart"]', (e) => ({
        points: Number(e.dataset.points), range: e.dataset.range,
        band: e.querySelectorAll('.band').length, avg: e.querySelectorAll('.avg, .avg-dot').length,
        thr: e.querySelectorAll('[data-testid^="threshold-"]').length,
        labels: e.querySelectorAll('text.tick').length,
      }));
      assert(c.range === '24h', `range ${c.range}`);
      assert(c.points >= 10, `only ${c.points} buckets for 24 h of seeded readings`);
      assert(c.band > 0 && c.avg > 0, `band ${c.band}, average ${c.avg}`);
      assert(c.thr === 2, `${c.thr} threshold lines`);
      assert(c.labels >= 6, `${c.labels} axis labels`);
    });

    await tcase('7d and 30d ranges', async () => {
      for (const r of ['7d', '30d', '24h']) {
        await tid(`range-${r}`).click();
        await page.waitForFunction((rr) => {
          const e = document.querySelector('[data-testid="chart"]');
          return e.dataset.range === rr && !e.hasAttribute('aria-busy');
        }, r);
        const n = Number(await tid('chart').getAttribute('data-points'));
        assert(n > 0, `${r}: no buckets`);
        assert((await tid(`range-${r}`).getAttribute('aria-pressed')) === 'true', `${r} not pressed`);
      }
    });

    await tcase('an expired access token is refreshed and the request retried', async () => {
      const before = await page.evaluate(() => JSON.parse(sessionStorage.getItem('coldchain.session')));
      let expired = 0;
      const pattern = /\/api\/readings\/coldcells\/\d+\/readings/;
      await page.route(pattern, async (r) => {
        if (expired++ === 0) {
          await r.fulfill({ status: 401, contentType: 'application/json',
            body: JSON.stringify({ error: { code: 'TOKEN_EXPIRED', message: 'token expired' } }) });
        } else {
          await r.continue();
        }
      });
      await tid('range-7d').click();
      await page.waitForFunction(() => {
        const e = document.querySelector('[data-testid="chart"]');
        return e.dataset.range === '7d' && Number(e.dataset.points) > 0;
      });
      await page.unroute(pattern);
      const after = await page.evaluate(() => JSON.parse(sessionStorage.getItem('coldchain.session')));
      assert(expired === 2, `${expired} readings requests, want the refused one and its retry`);
      assert(after.refreshToken && after.refreshToken !== before.refreshToken, 'the refresh token did not rotate');
      assert(after.accessToken !== before.accessToken, 'the access token did not change');
      badResponses.splice(0, badResponses.length, ...badResponses.filter((x) => !/readings 401$/.test(x)));
      await tid('range-24h').click();
      await page.waitForFunction(() => document.querySelector('[data-testid="chart"]').dataset.range === '24h');
    });

    let liveMode = '';
    await tcase('MQTT reading shows up without a reload', async () => {
      await page.evaluate(() => { window.__noReload = 1; });
      const before = Number(await tid('cell-latest-temp').getAttribute('data-value'));
      const points = Number(await tid('chart').getAttribute('data-points'));
      const value = before === -16.7 ? -16.3 : -16.7; // in range for a freezer (-25..-15)
      await publish(stack, FREEZER.serial, { temperature: value, ts: new Date().toISOString(), humidity: 55 });
      await page.waitForFunction((v) => Number(document.querySelector('[data-testid="cell-latest-temp"]')?.dataset.value) === v,
        value, { timeout: LIVE_TIMEOUT_MS });
      assert(await page.evaluate(() => window.__noReload === 1), 'the page reloaded');
      liveMode = await tid('live-mode').getAttribute('data-mode');
      assert(['websocket', 'polling'].includes(liveMode), `live mode ${liveMode}`);
      notes.push(`live update delivered over ${liveMode === 'websocket' ? 'the WebSocket' : 'polling (no WebSocket yet)'}`);
      const after = Number(await tid('chart').getAttribute('data-points'));
      assert(after >= points, `chart lost buckets: ${points} -> ${after}`);
      const txt = await tid('cell-latest-temp').textContent();
      assert(txt.includes('16.'), `shown as "${txt}"`);
      await page.screenshot({ path: path.join(BUILD, 'dashboard.png'), fullPage: true });
    });

    await tcase('live updates use the WebSocket whenever apid offers it', async () => {
      const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('coldchain.session')).accessToken);
      const offered = await wsOffered(info.http, token);
      notes.push(`apid ${offered ? 'offers' : 'does not offer'} a WebSocket at /api/ws`);
      if (offered) assert(liveMode === 'websocket', `apid offers /api/ws but the page used ${liveMode}`);
      else assert(liveMode === 'polling', `no /api/ws, yet the page says ${liveMode}`);
    });

    await tcase('out-of-range reading turns the cell red and raises an alert', async () => {
      await publish(stack, FREEZER.serial, { temperature: -5.5, ts: new Date(Date.now() + 1000).toISOString() });
      await page.waitForFunction(() => document.querySelector('[data-testid="cell-latest"]')?.dataset.status === 'out',
        null, { timeout: LIVE_TIMEOUT_MS });
      await page.locator('[data-testid="alert-item"][data-type="HIGH_TEMP"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
    });

    await tcase('acknowledge and resolve the alert', async () => {
      const item = page.locator('[data-testid="alert-item"][data-type="HIGH_TEMP"]');
      await item.getByTestId('alert-ack').click();
      await item.getByTestId('alert-acked').waitFor();
      await item.getByTestId('alert-note').fill('door closed, <b>checked</b>');
      await item.getByTestId('alert-resolve').click();
      await item.waitFor({ state: 'detached' });
      const toastText = await tid('toast').textContent();
      assert(/resolved/i.test(toastText), `toast "${toastText}"`);
    });

    await tcase('overview updates live too', async () => {
      await tid('back').click();
      await tid('cell-card').first().waitFor();
      const card = page.locator('[data-testid="cell-card"]', { hasText: FREEZER.name });
      await publish(stack, FREEZER.serial, { temperature: -18.8, ts: new Date(Date.now() + 2000).toISOString() });
      await page.waitForFunction((n) => {
        const c = [...document.querySelectorAll('[data-testid="cell-card"]')].find((e) => e.textContent.includes(n));
        return c && Number(c.querySelector('[data-testid="cell-temp"]').dataset.value) === -18.8 && c.dataset.status === 'ok';
      }, FREEZER.name, { timeout: LIVE_TIMEOUT_MS });
      assert(await card.isVisible(), 'card gone');
      assert(await page.evaluate(() => window.__noReload === 1), 'the page reloaded');
    });

    await tcase("another tenant's cell page is not shown", async () => {
      const ids = await page.$$eval('[data-testid="cell-card"]', (els) => els.map((e) => Number(e.dataset.cellId)));
      const other = Math.max(...ids, cellId) + 1; // customer2's cell comes after customer1's in the seed
      await page.evaluate((id) => { location.hash = `#/cells/${id}`; }, other);
      await page.waitForFunction(() => document.querySelector('[data-testid="cell-title"]')?.textContent === 'No such cold cell');
      assert(Number(await tid('chart').getAttribute('data-points')) === 0, 'a chart was drawn');
      badResponses.splice(0, badResponses.length, ...badResponses.filter((r) => !/ 404$/.test(r)));
    });

    await tcase('names are shown as text, never as markup', async () => {
      const evil = '<img src=x onerror="window.__xss=1">Cold <b>room</b>';
      const created = await page.evaluate(async (name) => {
        const { accessToken } = JSON.parse(sessionStorage.getItem('coldchain.session'));
        const auth = { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json' };
        const cells = await (await fetch('/api/coldcells', { headers: auth })).json();
        const r = await fetch('/api/coldcells', {
          method: 'POST', headers: auth,
          body: JSON.stringify({ locationId: cells.items[0].locationId, name, minTemp: 2, maxTemp: 8 }),
        });
        return { status: r.status, body: await r.json() };
      }, evil);
      assert(created.status === 201, `POST /api/coldcells answered ${created.status}`);
      await page.evaluate(() => { location.hash = '#/'; });
      await page.waitForFunction((n) => [...document.querySelectorAll('[data-testid="cell-name"]')]
        .some((e) => e.textContent === n), evil);
      assert(await page.evaluate(() => window.__xss === undefined), 'the markup ran');
      assert((await page.locator('[data-testid="locations"] img, [data-testid="locations"] b').count()) === 0,
        'the markup became elements');
      await page.locator('[data-testid="cell-card"]', { hasText: 'Cold <b>room</b>' }).click();
      await page.waitForFunction((n) => document.querySelector('[data-testid="cell-title"]')?.textContent === n, evil);
      assert(await page.evaluate(() => window.__xss === undefined), 'the markup ran on the cell page');
    });

    // The client half of docs/websocket.md against a scripted server (Playwright's
    // routeWebSocket): whatever apid does, the page must speak the documented protocol.
    await tcase('WebSocket client follows docs/websocket.md (scripted server)', async () => {
      let sock = null;
      let url = '';
      await page.routeWebSocket(/\/api\/ws/, (ws) => {
        sock = ws;
        url = ws.url();
        ws.send(JSON.stringify({ type: 'hello', userId: 2, coldCellIds: [cellId] }));
      });
      await page.evaluate((id) => { location.hash = `#/cells/${id}`; }, cellId);
      await page.reload();
      await page.waitForFunction(() => document.querySelector('[data-testid="live-mode"]')?.dataset.mode === 'websocket');
      const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('coldchain.session')).accessToken);
      assert(new URL(url).searchParams.get('token') === token, 'the socket did not carry the access token');
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart"]')?.dataset.points) > 0);
      const ts = new Date(Date.now() + 5000).toISOString();
      sock.send(JSON.stringify({ type: 'reading', coldCellId: cellId + 1000, reading: { ts, temperature: 99 } }));
      sock.send('not json');
      sock.send(JSON.stringify({ type: 'something-new' }));
      sock.send(JSON.stringify({ type: 'reading', coldCellId: cellId, reading: { ts, temperature: -21.1, serialNumber: FREEZER.serial } }));
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="cell-latest-temp"]')?.dataset.value) === -21.1);
      const alert = { id: 99999, coldCellId: cellId, deviceId: 1, type: 'LOW_TEMP', status: 'ACTIVE', value: -26,
        threshold: -25, message: 'scripted alert', firstTriggeredAt: ts, lastTriggeredAt: ts, triggerCount: 1,
        acknowledgedAt: null, escalatedAt: null, resolvedAt: null };
      sock.send(JSON.stringify({ type: 'alert', alert }));
      const item = page.locator('[data-testid="alert-item"][data-alert-id="99999"]');
      await item.waitFor();
      sock.send(JSON.stringify({ type: 'alert', alert: { ...alert, status: 'RESOLVED', resolvedAt: ts } }));
      await item.waitFor({ state: 'detached' });
      await page.unrouteAll({ behavior: 'ignoreErrors' }).catch(() => {});
    });

    await tcase('no script errors, no failed requests', async () => {
      assert(pageErrors.length === 0, pageErrors.slice(0, 3).join(' | '));
      assert(badResponses.length === 0, badResponses.slice(0, 5).join(', '));
    });

    await tcase('log out', async () => {
      await tid('logout').click();
      await tid('login-form').waitFor();
      const s = await page.evaluate(() => sessionStorage.getItem('coldchain.session'));
      assert(s === null, 'session left in sessionStorage');
      await page.goto(`${base}/#/`);
      await tid('login-form').waitFor();
    });
  } catch (e) {
    failed++;
    console.log(`FAIL browser test aborted: ${String(e?.message || e).split('\n')[0]}`);
    if (process.env.VERBOSE) console.log(e?.stack);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (profile) await rm(profile, { recursive: true, force: true }).catch(() => {});
    if (failed) {
      try { await stack.command('logs'); } catch { /* the stack may be gone */ }
      process.stdout.write(stack.stderr().slice(-6000));
    }
    await stack.stop();
  }
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
