// Supervisor wallboard: a snapshot a second over server-sent events, and controls
// (pacing, pause/resume, moving agents, trunk service) that act through the API.
import { api, el, labelCells } from './api.js';
import { setup, t, tn, fmt, lang } from './i18n.js';
import uPlot from './vendor/uplot/uPlot.esm.js';

const $ = (id) => document.getElementById(id);
const cards = new Map(); // campaign id → {root, parts}
const history = []; // {at, campaigns: {id: {dials, abandoned, answered}}}, one per 10 s
let snap = null;
let confirmAction = null; // what the trunk dialog's confirm button does
// The chart window in minutes, shared by every campaign's chart and kept across reloads.
let windowMin = [15, 30, 60].includes(Number(stored('turbina.sup.window'))) ? Number(stored('turbina.sup.window')) : 15;

// stored reads a remembered choice; private browsing may refuse the storage.
function stored(key) { try { return localStorage.getItem(key); } catch { return null; } }

document.head.append(el('link', { rel: 'stylesheet', href: new URL('./vendor/uplot/uPlot.min.css', import.meta.url).href }));
setup(() => { for (const c of cards.values()) { c.parts.plot?.destroy(); c.root.remove(); } cards.clear(); if (snap) render(snap); });
setupTV();
setupConfirm();
connect();

// setupTV wires the full-screen TV mode: larger type for a screen across the room;
// Escape (or the browser leaving full screen) brings the page back.
function setupTV() {
  const btn = $('tv-mode');
  const leave = () => {
    document.documentElement.classList.remove('tv');
    btn.setAttribute('aria-pressed', 'false');
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    resizeCharts();
  };
  btn.addEventListener('click', () => {
    if (document.documentElement.classList.contains('tv')) { leave(); return; }
    document.documentElement.classList.add('tv');
    btn.setAttribute('aria-pressed', 'true');
    // Full screen is a wish: a browser may refuse it, and the larger type stays.
    document.documentElement.requestFullscreen?.().catch(() => {});
    resizeCharts();
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && document.documentElement.classList.contains('tv')) leave(); });
  document.addEventListener('fullscreenchange', () => { if (!document.fullscreenElement && document.documentElement.classList.contains('tv')) leave(); });
}

// setupConfirm wires the dialog that asks before a trunk is taken out of service.
function setupConfirm() {
  const d = $('confirm-trunk');
  $('confirm-cancel').addEventListener('click', () => d.close());
  $('confirm-takeout').addEventListener('click', () => { d.close(); confirmAction?.(); confirmAction = null; });
}

function connect() {
  const es = new EventSource('/api/v1/wallboard/stream');
  es.addEventListener('history', (e) => {
    history.splice(0, history.length, ...JSON.parse(e.data));
  });
  es.addEventListener('snapshot', (e) => {
    snap = JSON.parse(e.data);
    record(snap);
    live(true);
    render(snap);
  });
  es.onerror = () => live(false);
}

function live(ok) {
  const b = $('live');
  b.dataset.state = ok ? 'live' : 'stale';
  b.dataset.i18n = ok ? 'sup.live' : 'sup.stale'; // a language switch re-translates it as it is now
  b.textContent = t(b.dataset.i18n);
}

function record(s) {
  const at = new Date(s.at);
  const sample = { at: s.at, campaigns: {} };
  for (const c of s.campaigns) if (c.stats) sample.campaigns[c.id] = { dials: c.stats.dials, abandoned: c.stats.abandoned, answered: c.stats.answered };
  const last = history[history.length - 1];
  if (last && Math.floor(new Date(last.at) / 10000) === Math.floor(at / 10000)) history[history.length - 1] = sample;
  else history.push(sample);
  while (history.length && at - new Date(history[0].at) > 3600 * 1000) history.shift();
}

function say(msg) { $('sup-status').textContent = msg; }

async function act(fn, what) {
  try { await fn(); say(t('sup.applied', { what })); } catch (e) { say(errorText(e)); }
}

// errorText says an API refusal in the page's language from its code and fields.
function errorText(e) {
  if (!e.code) return t('sup.err.network');
  const fields = Object.keys(e.detail?.fields || {});
  if (fields.length) return fields.map((f) => fieldError(f)).join(' ');
  const key = 'sup.err.' + e.code;
  const s = t(key);
  return s === key ? t('sup.err.other', { code: e.code || e.status }) : s;
}

// fieldError says what a pacing field must be, in the field's own unit.
function fieldError(field) {
  const max = snap?.max_abandon || 0.03;
  const vars = { max: fmt.num(100 * max, 1), min: 0 };
  const key = 'sup.err.' + field;
  const s = t(key, vars);
  return s === key ? t('sup.err.field', { field }) : s;
}

// ---- campaigns ----

function metric(label, cls) {
  const dd = el('dd', { class: cls });
  return [el('dt', {}, t(label)), dd];
}

function buildCard(c) {
  const id = c.id;
  const mode = el('select', { id: `mode-${id}` }, ['preview', 'progressive', 'predictive'].map((m) => el('option', { value: m }, t('mode.' + m))));
  const target = el('input', { id: `target-${id}`, type: 'number', min: 0, max: 100, step: 0.1 });
  const ratio = el('input', { id: `ratio-${id}`, type: 'number', min: 1, max: 10, step: 0.1 });
  // Empty is automatic (ring_timeout 0); the API reads a number as seconds.
  const ring = el('input', { id: `ring-${id}`, type: 'number', min: 5, max: 120, step: 1, placeholder: t('sup.ringAuto'), title: t('sup.ringHelp') });
  // Each field's error sits beside it, tied to it for screen readers.
  const errs = {};
  const field = (input, key, label, extra = {}) => {
    errs[key] = el('span', { class: 'field-error error', id: `${input.id}-err`, role: 'alert' });
    input.setAttribute('aria-describedby', errs[key].id);
    return el('div', { class: 'field' }, el('label', { for: input.id, ...extra }, t(label)), input, errs[key]);
  };
  const form = el('form', { class: 'pacing', 'aria-label': `${t('sup.pacing')}: ${c.name}`, novalidate: '' },
    field(mode, 'pacing.mode', 'sup.mode'),
    field(target, 'pacing.target_abandon', 'sup.target'),
    field(ratio, 'pacing.max_ratio', 'sup.maxratio'),
    field(ring, 'pacing.ring_timeout', 'sup.ring', { title: t('sup.ringHelp') }),
    el('button', { type: 'submit', id: `apply-${id}`, class: 'primary' }, t('sup.apply')));
  form.addEventListener('input', () => { form.dataset.dirty = '1'; });
  const showErrors = (bad) => {
    for (const [k, span] of Object.entries(errs)) {
      span.textContent = bad.includes(k) ? fieldError(k) : '';
      form.querySelector(`[aria-describedby="${span.id}"]`).setAttribute('aria-invalid', String(bad.includes(k)));
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { mode: mode.value, target_abandon: Number(target.value) / 100, max_ratio: Number(ratio.value),
      ring_timeout: Number(ring.value) || 0 };
    // Checked here, in the field's unit, before the server is asked.
    const bad = [];
    if (!(body.target_abandon > 0 && body.target_abandon <= (snap?.max_abandon || 0.03) + 1e-9)) bad.push('pacing.target_abandon');
    if (!(body.max_ratio >= 1 && body.max_ratio <= 10)) bad.push('pacing.max_ratio');
    if (body.ring_timeout !== 0 && !(body.ring_timeout >= 5 && body.ring_timeout <= 120)) bad.push('pacing.ring_timeout');
    showErrors(bad);
    if (bad.length) { say(t('sup.err.fix')); return; }
    act(async () => {
      try { await api('PATCH', `/api/v1/campaigns/${id}/pacing`, body); } catch (err) {
        showErrors(Object.keys(err.detail?.fields || {}));
        throw err;
      }
      delete form.dataset.dirty;
    }, `${c.name}: ${t('mode.' + body.mode)}, ${fmt.pct(body.target_abandon)}, ${fmt.num(body.max_ratio)}, ` +
      `${t('sup.ring')} ${body.ring_timeout || t('sup.ringAuto')}`);
  });
  const toggle = el('button', { type: 'button', id: `toggle-${id}` });
  toggle.addEventListener('click', () => {
    const action = toggle.dataset.action;
    act(() => api('POST', `/api/v1/campaigns/${id}/${action}`), `${c.name}: ${t('sup.' + action)}`);
  });
  const gauge = el('div', { class: 'gauge', role: 'meter', 'aria-valuemin': 0, 'aria-label': t('sup.abandon') }, el('span', { class: 'fill' }), el('span', { class: 'cap' }));
  const tile = (key, label) => {
    const big = el('span', { class: 'tile-value', id: `${key}-${id}` });
    const sub = el('span', { class: 'tile-sub' });
    return { root: el('div', { class: 'tile', dataset: { tile: key } }, el('span', { class: 'tile-label' }, t(label)), big, sub), big, sub };
  };
  const tiles = { ringing: tile('ringing', 'sup.tile.ringing'), waiting: tile('waiting', 'sup.tile.waiting'),
    abandon: tile('abandon', 'sup.tile.abandon'), agents: tile('agents', 'sup.tile.agents') };
  tiles.abandon.root.append(gauge);
  const channels = el('table', { class: 'list channels', id: `channels-${id}` },
    el('caption', {}, t('sup.ch.caption')),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, t('sup.ch.channel')), el('th', { scope: 'col' }, t('sup.ch.attempts')),
      el('th', { scope: 'col' }, t('sup.ch.reached')), el('th', { scope: 'col' }, t('sup.ch.rate')))),
    el('tbody'));
  const win = el('select', { id: `window-${id}`, class: 'window' }, [15, 30, 60].map((m) => el('option', { value: m }, t('sup.chart.minutes', { n: m }))));
  win.value = String(windowMin);
  win.addEventListener('change', () => {
    windowMin = Number(win.value);
    try { localStorage.setItem('turbina.sup.window', String(windowMin)); } catch { /* private mode: this page only */ }
    for (const c of cards.values()) { c.parts.win.value = String(windowMin); drawChart(c.parts, c.id); }
  });
  const plotBox = el('div', { class: 'plot', id: `plot-${id}`, role: 'img', 'aria-label': t('sup.chart'), 'aria-describedby': `figures-${id}` });
  const figures = el('table', { class: 'list figures', id: `figures-${id}` }, el('caption', {}, t('sup.chart.table')),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, t('sup.chart.time')), el('th', { scope: 'col' }, t('sup.chart.dials')),
      el('th', { scope: 'col' }, t('sup.chart.abandon')))), el('tbody'));
  const chartSec = el('section', { class: 'chart-box', 'aria-label': t('sup.chart') },
    el('div', { class: 'bar' }, el('h3', {}, t('sup.chart.title')), el('span', { class: 'spacer' }),
      el('label', { for: win.id, class: 'inline' }, t('sup.chart.window')), win),
    plotBox, el('details', { class: 'figures-box' }, el('summary', {}, t('sup.chart.show')), figures));
  const parts = {
    tiles, channels, win, plotBox, figures, plot: null,
    state: el('span', { class: 'badge' }),
    dl: el('dl', { class: 'metrics' }),
    gauge,
    mode, target, ratio, ring, form, toggle,
  };
  const m = {};
  for (const [k, label] of [['dial', 'sup.dialrate'], ['occ', 'sup.occupancy'], ['aht', 'sup.aht'],
    ['asa', 'sup.asa'], ['sla', 'sup.sla'], ['handled', 'sup.handled'], ['contacts', 'sup.contacts'], ['rungs', 'sup.rungs'],
    ['pacer', 'sup.pacer'], ['law', 'sup.law'], ['node', 'sup.node']]) {
    const [dt, dd] = metric(label, 'm-' + k);
    parts.dl.append(dt, dd);
    m[k] = dd;
  }
  m.pacer.id = `pacer-${id}`;
  m.pacer.previousElementSibling.title = t('sup.pacerHelp');
  m.law.id = `law-${id}`;
  m.law.previousElementSibling.title = t('sup.lawHelp');
  parts.m = m;
  // The compliance report is read on demand: it reaches 30 days back.
  const report = el('section', { class: 'compliance', id: `compliance-${id}`, 'aria-label': `${t('sup.compliance')}: ${c.name}` });
  const reportBtn = el('button', { type: 'button', id: `compliance-btn-${id}` }, t('sup.compliance'));
  reportBtn.addEventListener('click', () => act(async () => renderCompliance(report, await api('GET', `/api/v1/campaigns/${id}/compliance`)),
    `${c.name}: ${t('sup.compliance')}`));
  const csvLink = el('a', { href: `/api/v1/campaigns/${id}/compliance.csv`, id: `compliance-csv-${id}`, download: '' }, t('sup.complianceCSV'));
  parts.report = report;
  const root = el('article', { class: 'card campaign', id: `campaign-${id}`, 'aria-labelledby': `ch-${id}` },
    el('div', { class: 'bar' }, el('h2', { id: `ch-${id}` }, c.name), parts.state, el('span', { class: 'spacer' }), toggle),
    el('div', { class: 'tiles' }, ...Object.values(tiles).map((x) => x.root)),
    channels, chartSec, parts.dl, form, el('div', { class: 'bar wrap' }, reportBtn, ' ', csvLink), report);
  $('campaign-cards').append(root);
  return { root, parts, id };
}

// chartPoints are a campaign's figures in the chosen window, one per 10 s sample:
// dials per minute since the sample before, and abandonment (abandoned over answered).
function chartPoints(id) {
  const pts = [];
  const from = Date.now() - windowMin * 60000;
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1].campaigns[id], b = history[i].campaigns[id];
    const at = new Date(history[i].at);
    if (!a || !b || at < from) continue;
    const mins = (at - new Date(history[i - 1].at)) / 60000;
    pts.push({ at, rate: mins > 0 ? (b.dials - a.dials) / mins : 0, ab: b.answered > 0 ? b.abandoned / b.answered : 0 });
  }
  return pts;
}

// drawChart draws the window's figures with uPlot, axes labelled, and fills the table
// that says the same in text. The time axis spans the data when there is less than
// the window, so a campaign started ten minutes ago fills the chart.
function drawChart(parts, id) {
  const pts = chartPoints(id);
  const cap = parts.cap || 0.03;
  const xs = pts.map((p) => p.at / 1000);
  const data = [xs, pts.map((p) => p.rate), pts.map((p) => 100 * p.ab), pts.map(() => 100 * cap)];
  const now = Date.now() / 1000;
  const from = xs.length ? Math.max(now - windowMin * 60, xs[0]) : now - windowMin * 60;
  const width = Math.max(200, parts.plotBox.clientWidth || 360);
  const height = document.documentElement.classList.contains('tv') ? 260 : 180;
  const key = `${lang()}|${height}`;
  if (!parts.plot || parts.plotKey !== key) {
    parts.plot?.destroy();
    const tick = '#3d4754';
    const axis = (label, side, scale, fmtv) => ({ label, side, scale, stroke: tick, grid: { stroke: '#e3e8ee' }, ticks: { stroke: '#c9d1db' }, values: fmtv, size: 50 });
    parts.plot = new uPlot({
      width, height,
      scales: { x: { time: true, range: () => [parts.from, parts.to] }, dials: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
        ab: { range: (u, lo, hi) => [0, Math.max(hi * 1.1, 100 * cap * 1.5)] } },
      axes: [
        { stroke: tick, grid: { stroke: '#e3e8ee' }, values: (u, vals, ax, space, incr) => vals.map((v) => new Date(v * 1000).toLocaleTimeString(lang(),
          incr < 60 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' })) },
        axis(t('sup.chart.dials'), 3, 'dials', (u, vals) => vals.map((v) => fmt.num(v, 1))),
        axis(t('sup.chart.abandonAxis'), 1, 'ab', (u, vals) => vals.map((v) => fmt.num(v, 1) + ' %')),
      ],
      series: [{ label: t('sup.chart.time'), value: (u, v) => (v == null ? '—' : fmt.time(v * 1000)) },
        { label: t('sup.chart.dials'), scale: 'dials', stroke: '#0b5cad', width: 2, value: (u, v) => (v == null ? '—' : fmt.num(v, 1)) },
        { label: t('sup.chart.abandon'), scale: 'ab', stroke: '#b3261e', width: 2, dash: [6, 3], value: (u, v) => (v == null ? '—' : fmt.num(v, 1) + ' %') },
        { label: t('sup.chart.cap'), scale: 'ab', stroke: '#7a4a00', width: 1, dash: [2, 4], points: { show: false }, value: (u, v) => (v == null ? '—' : fmt.num(v, 1) + ' %') }],
      legend: { show: true },
    }, [[], [], [], []], parts.plotBox);
    parts.plotKey = key;
    parts.plotBox.uplot = parts.plot; // for the tests, which read where the points fall
  }
  parts.from = from; parts.to = Math.max(now, from + 60);
  if (parts.plot.width !== width) parts.plot.setSize({ width, height });
  parts.plot.setData(data);
  parts.plotBox.dataset.from = String(Math.round(from));
  parts.plotBox.dataset.points = String(pts.length);
  // The table lists the minute marks: a figure a minute reads better than six.
  const rows = pts.filter((p, i) => i === pts.length - 1 || Math.floor(p.at / 60000) !== Math.floor(pts[i + 1].at / 60000)).reverse();
  parts.figures.tBodies[0].replaceChildren(...rows.map((p) => el('tr', {}, el('th', { scope: 'row' }, fmt.time(p.at)),
    el('td', {}, fmt.num(p.rate, 1)), el('td', {}, fmt.pct(p.ab)))));
}

// resizeCharts fits every chart to its box once the layout changed.
function resizeCharts() { requestAnimationFrame(() => { for (const c of cards.values()) drawChart(c.parts, c.id); }); }
window.addEventListener('resize', resizeCharts);

function renderCampaign(c) {
  let card = cards.get(c.id);
  if (!card) { card = buildCard(c); cards.set(c.id, card); }
  const p = card.parts;
  p.state.textContent = t('state.' + c.state);
  p.state.dataset.state = c.state;
  const action = c.state === 'running' ? 'pause' : c.state === 'paused' ? 'resume' : 'start';
  p.toggle.dataset.action = action;
  p.toggle.textContent = t('sup.' + action);
  const s = c.stats || { abandon_rate: 0, channels: {}, contacts: {} };
  const cap = c.pacing.target_abandon || 0.03;
  const rate = s.abandon_rate || 0;
  const level = rate >= cap ? 'alarm' : rate >= 0.8 * cap ? 'warn' : 'ok';
  p.gauge.dataset.level = level;
  p.gauge.setAttribute('aria-valuenow', rate.toFixed(4));
  p.gauge.setAttribute('aria-valuemax', (cap * 2).toFixed(4));
  p.gauge.querySelector('.fill').style.width = Math.min(100, 50 * rate / cap) + '%';
  p.gauge.setAttribute('aria-valuetext', t('sup.abandonOf', { rate: fmt.pct(rate), cap: fmt.pct(cap) }));
  p.cap = cap;
  renderTiles(p, c, rate, cap, level);
  renderChannels(p.channels, c);
  p.m.dial.textContent = t('sup.perMin', { n: fmt.num(c.dials_per_minute) });
  p.m.occ.textContent = fmt.pct(c.occupancy);
  p.m.aht.textContent = c.handled_calls ? fmt.duration(c.aht_seconds) : '—';
  p.m.asa.textContent = c.handled_calls ? fmt.num(c.asa_seconds, 2) + ' s' : '—';
  p.m.sla.textContent = c.handled_calls ? fmt.pct(c.sla) : '—';
  p.m.handled.textContent = String(c.handled_calls || 0);
  p.m.contacts.textContent = Object.entries(s.contacts || {}).map(([k, n]) => `${n} ${t('contacts.' + k)}`).join(' · ') || '—';
  p.m.rungs.textContent = (c.ladder || []).map((r, i) => `${i + 1}. ${t('channel.' + r.channel)}: ${s.contacts_by_rung?.[i] || 0}`).join(' · ');
  // The node whose lease runs the campaign (several nodes on one database).
  p.m.node.textContent = c.node || (c.state === 'running' || c.state === 'paused' ? t('sup.node.none') : '—');
  renderPacer(p.m.pacer, c);
  renderLaw(p.m.law, c.abandonment);
  drawChart(p, c.id);
  if (!p.form.dataset.dirty && !p.form.contains(document.activeElement)) {
    p.mode.value = c.pacing.mode;
    p.target.value = (100 * c.pacing.target_abandon).toFixed(1);
    p.ratio.value = c.pacing.max_ratio;
    const ring = seconds(c.pacing.ring_timeout);
    p.ring.value = ring > 0 ? String(ring) : '';
  }
}

// renderTiles fills the headline figures read from across the room: calls ringing,
// people waiting for an agent and the longest wait, abandonment against its cap, and
// the campaign's signed-in agents by state.
function renderTiles(p, c, rate, cap, level) {
  const { ringing, waiting, abandon, agents } = p.tiles;
  ringing.big.textContent = fmt.num(c.ringing || 0, 0);
  ringing.sub.textContent = tn('sup.tile.calls', c.ringing || 0);
  waiting.big.textContent = fmt.num(c.waiting || 0, 0);
  waiting.root.dataset.level = c.waiting > 0 ? 'warn' : 'ok';
  waiting.sub.textContent = c.waiting > 0 ? t('sup.tile.longest', { d: fmt.duration(c.longest_wait_seconds) }) : t('sup.tile.nobodyWaits');
  abandon.big.textContent = fmt.pct(rate);
  abandon.root.dataset.level = level;
  abandon.sub.textContent = t('sup.tile.cap', { cap: fmt.pct(cap) });
  const mine = (snap?.agents || []).filter((a) => (a.campaign_ids || []).includes(c.id));
  const by = { ready: 0, busy: 0, wrap_up: 0, paused: 0 };
  for (const a of mine) {
    if (a.state === 'ready') by.ready++;
    else if (a.state === 'reserved' || a.state === 'on_call') by.busy++;
    else if (a.state in by) by[a.state]++;
  }
  agents.big.textContent = fmt.num(mine.length, 0);
  agents.sub.replaceChildren(...Object.entries(by).map(([k, n]) => el('span', { class: 'chip', dataset: { state: k, n: String(n) } }, tn('sup.tile.agent.' + k, n))));
}

// renderChannels lists attempts and reached people on each channel of the ladder: an
// answer rate for calls, a delivery rate for templates (a message is delivered, not answered).
function renderChannels(table, c) {
  const st = c.stats?.channels || {};
  // The ladder's channels, and any other that has attempts (a rung since removed).
  const chans = [...new Set([...(c.ladder || []).map((r) => r.channel), ...Object.keys(st).filter((ch) => st[ch].attempts > 0)])];
  table.tBodies[0].replaceChildren(...chans.map((ch) => {
    const f = st[ch] || { attempts: 0, reached: 0 };
    const rate = f.attempts ? fmt.pct(f.reached / f.attempts) : '—';
    return el('tr', { dataset: { channel: ch } }, el('th', { scope: 'row' }, t('channel.' + ch)),
      el('td', {}, fmt.num(f.attempts, 0)), el('td', {}, fmt.num(f.reached, 0)),
      el('td', {}, f.attempts ? t(ch === 'whatsapp_template' ? 'sup.ch.delivery' : 'sup.ch.answer', { v: rate }) : '—'));
  }));
}

// renderPacer shows, one line per call channel, what the campaign's pacer sees: the answer
// rate and mean talk it learned (in predictive mode), the risk it accepts that a person it
// dials finds no agent, and the ring timeout calls get.
function renderPacer(dd, c) {
  // Which channel the forecast uses is news only while one is down.
  const failover = (c.pacer || []).some((v) => v.down);
  const lines = (c.pacer || []).map((v) => {
    const predictive = v.mode === 'predictive';
    const learned = predictive && v.dials_learned > 0;
    // A predictive pacer still learning, or whose allowance is spent, dials one line per free agent.
    const risk = learned && v.progressive ? t('sup.pacer.progressive') : t('sup.pacer.risk', { v: learned ? fmt.pct(v.threshold) : '—' });
    const ring = fmt.num(seconds(v.ring_timeout));
    const ringText = !v.ring_timeout_auto ? t('sup.pacer.ringFixed', { s: ring })
      : v.ring_timeout_learned ? t('sup.pacer.ringAuto', { s: ring }) : t('sup.pacer.ringDefault', { s: ring });
    const talk = seconds(v.mean_talk);
    // A channel down (every trunk's circuit open) sends its contacts to the next one, whose
    // answer rate and ring time the forecast then uses: the failover as it happens.
    const text = [
      ...(v.down ? [t('sup.pacer.down')] : []),
      ...(failover && v.forecast ? [t('sup.pacer.forecast')] : []),
      t('sup.pacer.answer', { v: learned ? fmt.pct(v.answer_prob) : '—' }),
      risk,
      t('sup.pacer.ring', { v: ringText }),
      t('sup.pacer.talk', { v: talk > 0 ? fmt.duration(talk) : '—' }),
    ].join(' · ');
    return el('div', { id: `pacer-${c.id}-${v.channel}`, class: 'pacer-line' + (v.down ? ' pacer-down' : ''),
      dataset: { channel: v.channel, down: String(!!v.down), forecast: String(!!v.forecast) },
      title: t('sup.pacer.dials', { n: v.dials_learned }) }, el('strong', {}, `${t('channel.' + v.channel)}:`), ' ', text);
  });
  if (lines.length) dd.replaceChildren(...lines);
  else dd.textContent = '—';
}

// renderLaw shows abandonment over the periods the law counts it, each marked when above
// the campaign's cap: the rolling 30 days (US TSR), the rolling 24 h (Ofcom), and today.
function renderLaw(dd, a) {
  if (!a) { dd.textContent = '—'; return; }
  const part = (key, f) => el('span', { class: 'law-period', dataset: { period: key, over: String(f.rate > a.cap) } },
    t('sup.law.' + key, { v: fmt.pct(f.rate) }));
  dd.replaceChildren(part('days_30', a.days_30), ' · ', part('hours_24', a.hours_24), ' · ', part('today', a.today),
    ' ', el('span', { class: 'muted' }, t('sup.law.cap', { v: fmt.pct(a.cap) })));
}

// renderCompliance lays out a campaign's compliance report.
function renderCompliance(sec, r) {
  const ab = r.abandonment;
  const row = (label, f) => el('tr', { dataset: { over: String(f.rate > r.cap) } }, el('th', { scope: 'row' }, label),
    el('td', {}, String(f.answered)), el('td', {}, String(f.abandoned)), el('td', {}, fmt.pct(f.rate)));
  const days = ab.days.filter((d) => d.answered > 0).reverse();
  const abTable = el('table', { class: 'compliance-abandon' },
    el('caption', {}, t('sup.law.capOf', { v: fmt.pct(r.cap) })),
    el('thead', {}, el('tr', {}, el('th', {}, t('sup.c.period')), el('th', {}, t('sup.c.answered')), el('th', {}, t('sup.c.abandoned')), el('th', {}, t('sup.c.rate')))),
    el('tbody', {}, row(t('sup.law.days_30', { v: '' }).trim(), ab.days_30), row(t('sup.law.hours_24', { v: '' }).trim(), ab.hours_24),
      ...days.map((d) => row(d.day, d))));
  const reasons = Object.entries(r.refusals.by_reason || {}).sort();
  const count = (key, n, extra) => el('li', { dataset: { item: key } }, el('strong', {}, String(n)), ' ', t('sup.c.' + key), extra || '');
  sec.replaceChildren(
    el('h3', {}, t('sup.compliance')),
    abTable,
    el('ul', { class: 'compliance-counts' },
      count('outside', r.dials_outside_window, ` (${t('sup.c.ofDials', { n: r.dials_placed })})`),
      count('refused', r.refusals.total, reasons.length ? ': ' + reasons.map(([k, n]) => `${t('policy.' + k)} ${n}`).join(' · ') : ''),
      count('dnc', r.refusals.dnc_hits),
      count('optouts', r.refusals.opt_outs),
      count('ambiguous', r.ambiguous_zone_contacts)));
  sec.dataset.outside = String(r.dials_outside_window);
}

// seconds reads Go duration text as the API writes it ("20s", "2m0s", "0s").
function seconds(d) {
  const unit = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };
  let total = 0;
  for (const [, n, u] of String(d || '').matchAll(/([0-9.]+)(h|ms|m|s|us|µs|ns)/g)) total += Number(n) * unit[u];
  return total;
}

// ---- agents ----

const agentRows = new Map();

function buildAgentRow(a) {
  const sel = el('select', { class: 'move' });
  const btn = el('button', { type: 'button', class: 'move-btn' });
  btn.addEventListener('click', () => {
    const to = sel.value;
    const row = agentRows.get(a.id);
    act(async () => {
      await api('POST', `/api/v1/campaigns/${to}/agents`, { user_id: a.id });
      for (const from of row.agent.assigned_campaign_ids) {
        if (from !== to) await api('DELETE', `/api/v1/campaigns/${from}/agents/${a.id}`);
      }
    }, `${a.name} → ${sel.selectedOptions[0]?.textContent}`);
  });
  const tr = el('tr', { dataset: { id: a.id } }, el('th', { scope: 'row' }, a.name, el('span', { class: 'node' }), el('span', { class: 'phone' })), el('td', {}, el('span', { class: 'badge' })),
    el('td', { class: 'tis' }), el('td', { class: 'assigned' }), el('td', { class: 'mv' }, sel, btn));
  return { tr, sel, agent: a };
}

function renderAgents(agents, campaigns) {
  const body = $('agents').tBodies[0];
  const names = Object.fromEntries(campaigns.map((c) => [c.id, c.name]));
  const seen = new Set();
  let ready = 0, busy = 0, paused = 0;
  for (const a of agents) {
    seen.add(a.id);
    let row = agentRows.get(a.id);
    if (!row) { row = buildAgentRow(a); agentRows.set(a.id, row); body.append(row.tr); }
    row.agent = a;
    // Named at every snapshot: the words follow a language switch.
    row.sel.setAttribute('aria-label', t('sup.moveLabel', { name: a.name }));
    row.tr.querySelector('.move-btn').textContent = t('sup.moveBtn');
    const badge = row.tr.querySelector('.badge');
    badge.dataset.state = a.state;
    badge.textContent = t('agentstate.' + a.state) + (a.reason ? ` (${t('reason.' + a.reason)})` : '');
    row.tr.querySelector('.tis').textContent = a.state === 'logged_out' ? '—' : fmt.duration(a.seconds_in_state);
    nodeLabel(row.tr.querySelector('.node'), a.node);
    phoneLabel(row.tr.querySelector('.phone'), a.phone);
    row.tr.querySelector('.assigned').textContent = a.assigned_campaign_ids.map((id) => names[id] || id).join(', ');
    if (document.activeElement !== row.sel) {
      const keep = row.sel.value;
      row.sel.replaceChildren(...campaigns.filter((c) => c.state !== 'finished').map((c) => el('option', { value: c.id }, c.name)));
      if (keep) row.sel.value = keep;
    }
    if (a.state === 'ready') ready++;
    else if (['reserved', 'on_call', 'wrap_up'].includes(a.state)) busy++;
    else if (a.state === 'paused') paused++;
  }
  for (const [id, row] of agentRows) if (!seen.has(id)) { row.tr.remove(); agentRows.delete(id); }
  $('agent-summary').textContent = agents.length
    ? [tn('sup.tile.agent.ready', ready), tn('sup.sum.busy', busy), tn('sup.tile.agent.paused', paused)].join(' · ') : t('sup.nobody');
}

// nodeLabel names in span the Turbina node an agent or a trunk is on; the
// wallboard sends a node only when several nodes are live, and the span is
// empty otherwise.
function nodeLabel(span, node) {
  span.textContent = node ? t('sup.onNode', { node }) : '';
  if (node) span.title = t('sup.onNode.title', { node });
  else span.removeAttribute('title');
  return span;
}

// phoneLabel says in span whether the agent's SIP phone is registered, to
// whichever node: any node's wallboard reads it from the database.
function phoneLabel(span, phone) {
  span.textContent = phone ? t('sup.phone') : '';
  if (phone) span.title = t('sup.phone.title', { transport: phone.transport.toUpperCase(), node: phone.node || '—', until: fmt.time(phone.expires) });
  else span.removeAttribute('title');
}

// ---- failover banner ----

// signText says a trunk's first sign of death in the page's language; a sign the
// page does not know is shown as the server wrote it.
function signText(sign) {
  const kinds = [['INVITE unanswered', 'sup.fo.sign.invite'], ['no RTP', 'sup.fo.sign.media'],
    ['keepalive failed', 'sup.fo.sign.keepalive'], ['transport error', 'sup.fo.sign.transport'], ['transaction failed', 'sup.fo.sign.transport']];
  const k = kinds.find(([prefix]) => (sign || '').startsWith(prefix));
  return k ? t(k[1]) : sign || '';
}

// renderFailover shows, while a trunk is down, that its calls go to WhatsApp and
// how many of the people it caught were moved there; for a minute after it
// recovered, that it is back and how long it was down.
function renderFailover(list, whatsApp) {
  const box = $('failover');
  if (!list.length) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  box.replaceChildren(...list.map((f) => {
    const back = !!f.recovered_at;
    const one = (n) => (n === 1 ? '.one' : '');
    const counts = el('ul', { class: 'fo-counts' },
      el('li', {}, el('strong', { class: 'fo-moved' }, fmt.num(f.moved_to_whatsapp, 0)), ' ',
        t('sup.fo.moved' + one(f.caught), { caught: fmt.num(f.caught, 0) })),
      el('li', {}, el('strong', { class: 'fo-resumed' }, fmt.num(f.resumed, 0)), ' ', t('sup.fo.resumed' + one(f.resumed))));
    const detail = back
      ? t('sup.fo.backDetail', { since: fmt.time(f.down_since), until: fmt.time(f.recovered_at) })
      : t('sup.fo.detail', { since: fmt.time(f.down_since), secs: fmt.num(f.detection_s, 1), sign: signText(f.sign) });
    return el('article', { class: 'fo', 'data-state': back ? 'recovered' : 'down', 'data-trunk': f.trunk },
      el('h2', {}, back ? t('sup.fo.back', { trunk: f.trunk, dur: fmt.duration(f.down_for_s) })
        : t(whatsApp ? 'sup.fo.downTakeover' : 'sup.fo.downWaiting', { trunk: f.trunk, since: fmt.hm(f.down_since) })),
      back ? null : el('p', { class: 'fo-lead' }, t(whatsApp ? 'sup.fo.toWhatsApp' : 'sup.fo.noWhatsApp')),
      el('p', { class: 'fo-detail' }, detail),
      !back && lastError(f.trunk) ? el('p', { class: 'fo-error' }, t('sup.fo.lastError', { error: lastError(f.trunk) })) : null,
      counts);
  }));
}

// lastError is the named trunk's last error, as its SIP stack wrote it (a carrier's
// status line or a transport error: the carrier's words, shown as they are).
function lastError(name) {
  return (snap?.trunks || []).find((tr) => tr.name === name)?.last_error || '';
}

// ---- trunks, WhatsApp, audit ----

// trunkState says in words how a trunk stands: in service, down (it failed), testing
// (a probe is out to see if it came back), paused by the carrier, or taken out of
// service by a supervisor, which is a choice and not a failure.
function trunkState(tr) {
  if (tr.out_of_service || tr.state === 'out_of_service') return 'manual';
  return { closed: 'in_service', open: 'down', 'half-open': 'testing', half_open: 'testing', held: 'held' }[tr.state] || 'unknown';
}

// trunkDown says why a trunk is not carrying calls: the carrier's refusal (its
// alarm), a pause the carrier asked for, a death and how fast it was found.
function trunkDown(tr) {
  const notes = [];
  if (tr.alarm) notes.push(t('sup.alarm', { alarm: tr.alarm, since: fmt.time(tr.alarm_since) }));
  if (tr.held_until) notes.push(t('sup.heldUntil', { until: fmt.time(tr.held_until) }));
  if (tr.down_since) notes.push(t('sup.downAt', { since: fmt.time(tr.down_since), secs: fmt.num(tr.last_detection_seconds, 1) }));
  else if (tr.last_detection_seconds) notes.push(t('sup.lastDetection', { secs: fmt.num(tr.last_detection_seconds, 1) }));
  return notes.length ? notes.join(' · ') : '—';
}

// trunkRegistration says how a registering trunk's REGISTER stands; nothing for
// a trunk that does not register.
function trunkRegistration(tr) {
  const reg = tr.registration;
  if (!reg) return null;
  let text = t('sup.reg.' + reg.state);
  if (reg.state === 'registered') text = t('sup.reg.registered', { until: fmt.time(reg.expires_at) });
  if (reg.state === 'failing') text = t('sup.reg.failing', { error: reg.last_error || '', at: fmt.time(reg.next_try_at) });
  return el('div', { class: 'trunk-reg', 'data-reg': reg.state, title: reg.aor }, text);
}

function renderTrunks(trunks, control) {
  const body = $('trunks').tBodies[0];
  if (!trunks.length) { body.replaceChildren(el('tr', {}, el('td', { colspan: 5 }, t('sup.notrunks')))); return; }
  body.replaceChildren(...trunks.map((tr) => {
    const out = tr.state === 'out_of_service' || tr.out_of_service;
    const btn = el('button', { type: 'button', class: out ? '' : 'danger-outline', 'aria-label': `${t(out ? 'sup.putback' : 'sup.takeout')}: ${tr.name}` }, t(out ? 'sup.putback' : 'sup.takeout'));
    const change = () => act(() => api('PATCH', `/api/v1/trunks/${encodeURIComponent(tr.name)}`, { out_of_service: !out }),
      `${tr.name}: ${t(out ? 'sup.putback' : 'sup.takeout')}`);
    btn.addEventListener('click', () => {
      if (out) { change(); return; }
      // Taking a trunk out moves its calls to the others: asked once more.
      $('confirm-text').textContent = t('sup.confirm.text', { trunk: tr.name });
      confirmAction = change;
      $('confirm-trunk').showModal();
    });
    const state = trunkState(tr);
    return el('tr', {}, el('th', { scope: 'row' }, tr.name, nodeLabel(el('span', { class: 'node' }), tr.node)), el('td', {}, el('span', { class: 'badge', 'data-state': state, 'data-circuit': tr.state },
      t('sup.trunk.' + state)), trunkRegistration(tr), tr.last_error && state !== 'in_service' && state !== 'manual'
      ? el('div', { class: 'trunk-error' }, t('sup.trunk.lastError', { error: tr.last_error })) : null),
      el('td', {}, `${tr.in_flight ?? 0}/${tr.max_channels || '∞'}`), el('td', { class: 'trunk-down', 'data-alarm': tr.alarm ? 'true' : 'false' }, trunkDown(tr)), el('td', {}, btn));
  }));
}

// renderInbound shows each inbound queue: the persons' own WhatsApp calls to the
// business, on hold now and today.
function renderInbound(queues) {
  const body = $('inbound').tBodies[0];
  if (!queues.length) { body.replaceChildren(el('tr', {}, el('td', { colspan: 6 }, t('sup.in.none')))); return; }
  body.replaceChildren(...queues.map((q) => el('tr', { 'data-campaign': q.campaign_id },
    el('th', { scope: 'row' }, q.campaign_name || q.campaign_id),
    el('td', { class: 'in-waiting' }, fmt.num(q.waiting, 0)),
    el('td', { class: 'in-longest-waiting' }, q.waiting ? fmt.duration(q.longest_waiting_seconds) : '—'),
    el('td', { class: 'in-answered' }, fmt.num(q.answered, 0)),
    el('td', { class: 'in-abandoned' }, fmt.num(q.abandoned, 0)),
    el('td', { class: 'in-longest-wait' }, fmt.duration(q.longest_wait_seconds)))));
}

// renderAudit writes each entry as a sentence in the page's language from the
// server's stable action code and the names and changes it carries.
function renderAudit(entries) {
  $('audit').replaceChildren(...entries.map((e) => el('li', { dataset: { action: e.action } },
    el('time', { datetime: e.at }, fmt.time(e.at)), ' ', auditSentence(e))));
}

function auditSentence(e) {
  // No user behind the entry (user_id absent) is the system, whatever name its
  // code gave ("demo", "whatsapp"); a removed user keeps the name they had.
  const who = e.user_name ? (e.user_role ? t('sup.au.who', { name: e.user_name, role: t('role.' + e.user_role) }) : e.user_name)
    : (e.user_id && e.username) || t('sup.au.system');
  const vars = { who, obj: e.object_name || e.object_id || '', subject: e.subject_name || '' };
  // A change of state or a sign-in says it all in its sentence; edits list what changed.
  const changes = ['campaign.pacing', 'campaign.update', 'user.update'].includes(e.action) ? (e.changes || []).map(auditChange).join(', ') : '';
  const key = 'sup.au.' + e.action;
  let s = t(key, vars);
  if (s === key) s = t('sup.au.other', { ...vars, action: e.action, type: e.object_type });
  return changes ? `${s}: ${changes}` : s;
}

// auditChange says one changed field: its name and its values before and after, in
// the unit the page shows it in (abandonment in %, durations in seconds, modes in words).
function auditChange(c) {
  const name = c.field.replace(/^pacing\./, '');
  const label = t('sup.au.f.' + name);
  const value = (v) => {
    if (v === null || v === undefined || v === '') return '—';
    if (name === 'target_abandon' && typeof v === 'number') return fmt.pct(v);
    if (name === 'mode') return t('mode.' + v);
    if (name === 'state') return t('state.' + v);
    if (name.endsWith('ring_timeout')) return seconds(v) ? `${fmt.num(seconds(v), 0)} s` : t('sup.ringAuto');
    if (typeof v === 'number') return fmt.num(v, 2);
    if (typeof v === 'object') return JSON.stringify(v).slice(0, 40);
    return String(v);
  };
  return `${label === 'sup.au.f.' + name ? c.field : label} ${value(c.before)} → ${value(c.after)}`;
}

function render(s) {
  const ids = new Set(s.campaigns.filter((c) => c.state === 'running' || c.state === 'paused').map((c) => c.id));
  for (const c of s.campaigns) if (ids.has(c.id)) renderCampaign(c);
  for (const [id, card] of cards) if (!ids.has(id)) { card.root.remove(); cards.delete(id); }
  if (!ids.size) $('campaign-cards').replaceChildren(el('p', { class: 'card' }, t('sup.noCampaigns')));
  else $('campaign-cards').querySelector(':scope > p')?.remove();
  renderFailover(s.failovers || [], !!(s.whatsapp && s.whatsapp.configured));
  $('draining').hidden = !s.draining;
  renderAgents(s.agents, s.campaigns);
  renderTrunks(s.trunks || [], s.trunk_control);
  renderInbound(s.inbound || []);
  renderAudit(s.audit || []);
  for (const id of ['agents', 'trunks', 'inbound']) labelCells($(id));
  const wa = $('whatsapp');
  wa.dataset.state = s.whatsapp.configured ? s.whatsapp.status : 'off';
  wa.textContent = t('sup.wa.' + (s.whatsapp.configured ? s.whatsapp.status : 'not_configured'));
}
