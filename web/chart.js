// chart.js - the temperature chart of a cell: an SVG drawn by hand from the readings query
// answer (SPEC §5): min–max band, average line, dashed threshold lines, axes with labels.
// Every text goes in through textContent; nothing here parses HTML.

const NS = 'http://www.w3.org/2000/svg';
const M = { l: 48, r: 12, t: 16, b: 30 }; // margins: y labels left, time labels below
const HOUR = 3600e3;
const DAY = 24 * HOUR;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// "Nice" tick values covering lo..hi, about n of them.
export function niceTicks(lo, hi, n = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.round(v / step) * step);
  }
  return out;
}

// Time ticks at local hour / midnight boundaries, at most ~8 of them.
function timeTicks(from, to, maxTicks = 8) {
  const steps = [HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 5 * DAY, 7 * DAY];
  const step = steps.find((s) => (to - from) / s <= maxTicks) ?? 14 * DAY;
  const d = new Date(from);
  if (step < DAY) {
    d.setMinutes(0, 0, 0);
    const hours = step / HOUR;
    while (d.getTime() < from || d.getHours() % hours !== 0) d.setHours(d.getHours() + 1);
  } else {
    d.setHours(0, 0, 0, 0);
    if (d.getTime() < from) d.setDate(d.getDate() + 1);
  }
  const out = [];
  for (; d.getTime() <= to; ) {
    out.push(d.getTime());
    if (step < DAY) d.setHours(d.getHours() + step / HOUR);
    else d.setDate(d.getDate() + step / DAY);
  }
  return { ticks: out, step };
}

const fmtHour = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fmtDay = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });

function tickLabel(t, step) {
  const d = new Date(t);
  if (step >= DAY) return fmtDay.format(d);
  if (d.getHours() === 0) return fmtDay.format(d);
  return fmtHour.format(d);
}

export function fmtTemp(v, digits = 1) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return v.toFixed(digits).replace('-', '\u2212');
}

// Splits the buckets where data is missing. Empty buckets are omitted by the API, and a
// device reporting every 20 min leaves three of four 5-min buckets empty: that is its
// cadence, not a gap. A gap is longer than two buckets and 2.5 times the usual spacing.
function segments(pts, bucketMs) {
  const gaps = pts.slice(1).map((p, i) => p.t - pts[i].t).sort((a, b) => a - b);
  const usual = gaps.length ? gaps[Math.floor(gaps.length / 2)] : bucketMs;
  const maxGap = Math.max(2 * bucketMs, 2.5 * usual);
  const out = [];
  let cur = [];
  for (const p of pts) {
    if (cur.length && p.t - cur[cur.length - 1].t > maxGap) {
      out.push(cur);
      cur = [];
    }
    cur.push(p);
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * Draws answer (the readings query answer) for cell ({minTemp, maxTemp}) into a new <svg>,
 * which replaces the children of container. Returns the number of buckets drawn.
 */
export function drawChart(container, answer, cell) {
  // Drawn at the container's own pixel width, so that labels keep their size on a phone.
  const W = Math.max(300, Math.round(container.clientWidth || 800));
  const H = Math.round(Math.min(320, Math.max(200, W * 0.4)));
  const bucketMs = (answer.bucketSeconds || 300) * 1000;
  const pts = (answer.series || [])
    .map((b) => ({ t: Date.parse(b.t), min: b.min, max: b.max, avg: b.avg, count: b.count }))
    .filter((b) => Number.isFinite(b.t) && [b.min, b.max, b.avg].every(Number.isFinite))
    .sort((a, b) => a.t - b.t);
  let from = Date.parse(answer.from);
  let to = Date.parse(answer.to);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
    from = pts.length ? pts[0].t : Date.now() - DAY;
    to = pts.length ? pts[pts.length - 1].t + bucketMs : Date.now();
  }

  const thresholds = [cell?.minTemp, cell?.maxTemp].filter(Number.isFinite);
  const values = pts.flatMap((p) => [p.min, p.max]).concat(thresholds);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 10;
  const pad = Math.max((hi - lo) * 0.08, 0.5);
  lo -= pad;
  hi += pad;
  const yTicks = niceTicks(lo, hi, 5);
  lo = Math.min(lo, yTicks[0]);
  hi = Math.max(hi, yTicks[yTicks.length - 1]);

  const x = (t) => M.l + ((t - from) / (to - from)) * (W - M.l - M.r);
  const y = (v) => M.t + ((hi - v) / (hi - lo)) * (H - M.t - M.b);
  const r1 = (n) => Math.round(n * 10) / 10;

  const svg = el('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'chart',
    role: 'img',
    preserveAspectRatio: 'xMidYMid meet',
    'data-testid': 'chart-svg',
  });
  const st = answer.stats || {};
  svg.append(
    el(
      'title',
      {},
      pts.length
        ? `Temperature, ${answer.range || 'range'}: min ${fmtTemp(st.min)} °C, ` +
            `max ${fmtTemp(st.max)} °C, average ${fmtTemp(st.avg)} °C ` +
            `over ${st.count ?? '?'} readings`
        : 'No readings in this range',
    ),
  );

  // Grid and y axis.
  const grid = el('g', { class: 'grid' });
  for (const v of yTicks) {
    grid.append(el('line', { x1: M.l, x2: W - M.r, y1: r1(y(v)), y2: r1(y(v)) }));
    grid.append(
      el('text', { x: M.l - 6, y: r1(y(v)) + 4, 'text-anchor': 'end', class: 'tick' }, fmtTemp(v, Number.isInteger(v) ? 0 : 1)),
    );
  }
  grid.append(el('text', { x: M.l - 6, y: M.t - 4, 'text-anchor': 'end', class: 'unit' }, '°C'));
  const { ticks, step } = timeTicks(from, to, Math.max(3, Math.floor((W - M.l - M.r) / 90)));
  for (const t of ticks) {
    grid.append(el('line', { x1: r1(x(t)), x2: r1(x(t)), y1: M.t, y2: H - M.b, class: 'v' }));
    grid.append(el('text', { x: r1(x(t)), y: H - M.b + 18, 'text-anchor': 'middle', class: 'tick' }, tickLabel(t, step)));
  }
  grid.append(el('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b, class: 'axis' }));
  svg.append(grid);

  // Band and average line, one piece per run of consecutive buckets.
  const data = el('g', { class: 'data' });
  const mid = (p) => p.t + bucketMs / 2;
  for (const seg of segments(pts, bucketMs)) {
    if (seg.length === 1) {
      const p = seg[0];
      const w = Math.max(3, x(p.t + bucketMs) - x(p.t));
      data.append(el('rect', { class: 'band', x: r1(x(mid(p)) - w / 2), y: r1(y(p.max)), width: r1(w), height: Math.max(1, r1(y(p.min) - y(p.max))) }));
      data.append(el('circle', { class: 'avg-dot', cx: r1(x(mid(p))), cy: r1(y(p.avg)), r: 2.5 }));
      continue;
    }
    const upper = seg.map((p) => `${r1(x(mid(p)))},${r1(y(p.max))}`);
    const lower = seg.map((p) => `${r1(x(mid(p)))},${r1(y(p.min))}`).reverse();
    data.append(el('polygon', { class: 'band', points: upper.concat(lower).join(' ') }));
    data.append(el('polyline', { class: 'avg', points: seg.map((p) => `${r1(x(mid(p)))},${r1(y(p.avg))}`).join(' ') }));
  }
  svg.append(data);

  // Thresholds, dashed, labelled on the right.
  const th = el('g', { class: 'thresholds' });
  for (const [v, cls, label] of [[cell?.maxTemp, 'max', 'max'], [cell?.minTemp, 'min', 'min']]) {
    if (!Number.isFinite(v)) continue;
    th.append(el('line', { class: `threshold ${cls}`, x1: M.l, x2: W - M.r, y1: r1(y(v)), y2: r1(y(v)), 'data-testid': `threshold-${cls}` }));
    const above = cls === 'max' ? -5 : 14; // labels outside the allowed band
    th.append(el('text', { class: `threshold-label ${cls}`, x: W - M.r - 4, y: r1(y(v)) + above, 'text-anchor': 'end' }, `${label} ${fmtTemp(v)} °C`));
  }
  svg.append(th);

  if (!pts.length) {
    svg.append(el('text', { x: (M.l + W - M.r) / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'No readings in this range'));
  }

  container.replaceChildren(svg);
  container.dataset.points = String(pts.length);
  container.dataset.range = answer.range || '';
  return pts.length;
}

/**
 * Adds one reading to answer's series in place (live updates between two loads): the
 * bucket of its time gets the new min, max, average and count. Returns true if it fell
 * inside the answer's range.
 */
export function addReading(answer, reading) {
  const ts = Date.parse(reading.ts);
  const v = reading.temperature;
  const from = Date.parse(answer.from);
  if (!Number.isFinite(ts) || typeof v !== 'number' || !(ts >= from)) return false;
  const bucketMs = (answer.bucketSeconds || 300) * 1000;
  const t = Math.floor(ts / bucketMs) * bucketMs;
  const series = answer.series || (answer.series = []);
  let b = series.find((s) => Date.parse(s.t) === t);
  if (!b) {
    b = { t: new Date(t).toISOString(), min: v, max: v, avg: v, count: 0 };
    series.push(b);
    series.sort((p, q) => Date.parse(p.t) - Date.parse(q.t));
  }
  b.min = Math.min(b.min, v);
  b.max = Math.max(b.max, v);
  b.avg = (b.avg * b.count + v) / (b.count + 1);
  b.count += 1;
  const end = Date.parse(answer.to);
  if (Number.isFinite(end) && ts >= end) answer.to = new Date(ts + 1000).toISOString();
  return true;
}
