// Supervisor wallboard: a snapshot a second over server-sent events, and controls
// (pacing, pause/resume, moving agents, trunk service) that act through the API.
import { api, el } from './api.js';
import { setup, t, fmt } from './i18n.js';

const $ = (id) => document.getElementById(id);
const cards = new Map(); // campaign id → {root, parts}
const history = []; // {at, campaigns: {id: {dials, abandoned, answered}}}, one per 10 s
let snap = null;

setup(() => { for (const c of cards.values()) c.root.remove(); cards.clear(); if (snap) render(snap); });
connect();

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
  try { await fn(); say(t('sup.applied', { what })); } catch (e) { say(e.message); }
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
  const form = el('form', { class: 'pacing', 'aria-label': `${t('sup.pacing')}: ${c.name}` },
    el('label', { for: `mode-${id}` }, t('sup.mode')), mode,
    el('label', { for: `target-${id}` }, t('sup.target')), target,
    el('label', { for: `ratio-${id}` }, t('sup.maxratio')), ratio,
    el('label', { for: `ring-${id}`, title: t('sup.ringHelp') }, t('sup.ring')), ring,
    el('button', { type: 'submit', id: `apply-${id}`, class: 'primary' }, t('sup.apply')));
  form.addEventListener('input', () => { form.dataset.dirty = '1'; });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { mode: mode.value, target_abandon: Number(target.value) / 100, max_ratio: Number(ratio.value),
      ring_timeout: Number(ring.value) || 0 };
    act(async () => { await api('PATCH', `/api/v1/campaigns/${id}/pacing`, body); delete form.dataset.dirty; },
      `${c.name}: ${t('mode.' + body.mode)}, ${fmt.pct(body.target_abandon)}, ${body.max_ratio}, ` +
      `${t('sup.ring')} ${body.ring_timeout || t('sup.ringAuto')}`);
  });
  const toggle = el('button', { type: 'button', id: `toggle-${id}` });
  toggle.addEventListener('click', () => {
    const action = toggle.dataset.action;
    act(() => api('POST', `/api/v1/campaigns/${id}/${action}`), `${c.name}: ${t('sup.' + action)}`);
  });
  const gauge = el('div', { class: 'gauge', role: 'meter', 'aria-valuemin': 0, 'aria-label': t('sup.abandon') }, el('span', { class: 'fill' }), el('span', { class: 'cap' }));
  const parts = {
    state: el('span', { class: 'badge' }),
    dl: el('dl', { class: 'metrics' }),
    gauge, gaugeText: el('span', { class: 'gauge-text' }),
    chart: el('svg', {}),
    mode, target, ratio, ring, form, toggle,
  };
  const m = {};
  for (const [k, label] of [['dial', 'sup.dialrate'], ['answer', 'sup.answer'], ['occ', 'sup.occupancy'], ['aht', 'sup.aht'],
    ['asa', 'sup.asa'], ['sla', 'sup.sla'], ['handled', 'sup.handled'], ['contacts', 'sup.contacts'], ['rungs', 'sup.rungs'],
    ['pacer', 'sup.pacer'], ['law', 'sup.law']]) {
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
  const chart = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  chart.setAttribute('viewBox', '0 0 360 60');
  chart.setAttribute('role', 'img');
  chart.setAttribute('aria-label', t('sup.chart'));
  chart.classList.add('chart');
  parts.chart = chart;
  const root = el('article', { class: 'card campaign', id: `campaign-${id}`, 'aria-labelledby': `ch-${id}` },
    el('div', { class: 'bar' }, el('h2', { id: `ch-${id}` }, c.name), parts.state, el('span', { class: 'spacer' }), toggle),
    el('div', { class: 'abandon' }, el('span', {}, t('sup.abandon')), gauge, parts.gaugeText),
    parts.dl, chart, form, el('div', { class: 'bar' }, reportBtn, ' ', csvLink), report);
  $('campaign-cards').append(root);
  return { root, parts };
}

function chartPath(id) {
  const pts = [];
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1].campaigns[id], b = history[i].campaigns[id];
    if (!a || !b) continue;
    const mins = (new Date(history[i].at) - new Date(history[i - 1].at)) / 60000;
    const rate = mins > 0 ? (b.dials - a.dials) / mins : 0;
    const ab = b.answered > 0 ? b.abandoned / b.answered : 0;
    pts.push({ at: new Date(history[i].at), rate, ab });
  }
  return pts;
}

function drawChart(svg, id, cap) {
  const pts = chartPath(id);
  const now = Date.now();
  const max = Math.max(1, ...pts.map((p) => p.rate));
  const x = (at) => 360 - (now - at) / 10000;
  const line = pts.map((p) => `${x(p.at).toFixed(1)},${(58 - 56 * p.rate / max).toFixed(1)}`).join(' ');
  const abLine = pts.map((p) => `${x(p.at).toFixed(1)},${(58 - 56 * Math.min(p.ab / Math.max(cap * 2, 0.01), 1)).toFixed(1)}`).join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const mk = (cls, points) => { const p = document.createElementNS(ns, 'polyline'); p.setAttribute('class', cls); p.setAttribute('points', points); return p; };
  const capY = 58 - 56 * 0.5;
  const capLine = document.createElementNS(ns, 'line');
  for (const [k, v] of Object.entries({ x1: 0, x2: 360, y1: capY, y2: capY, class: 'capline' })) capLine.setAttribute(k, v);
  svg.replaceChildren(capLine, mk('rate', line), mk('ab', abLine));
}

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
  p.gaugeText.textContent = t('sup.abandonOf', { rate: fmt.pct(rate), cap: fmt.pct(cap) });
  p.m.dial.textContent = t('sup.perMin', { n: fmt.num(c.dials_per_minute) });
  p.m.answer.textContent = Object.entries(c.answer_rate || {}).map(([ch, r]) => `${t('channel.' + ch)} ${fmt.pct(r)}`).join(' · ') || '—';
  p.m.occ.textContent = fmt.pct(c.occupancy);
  p.m.aht.textContent = c.handled_calls ? fmt.duration(c.aht_seconds) : '—';
  p.m.asa.textContent = c.handled_calls ? fmt.num(c.asa_seconds, 2) + ' s' : '—';
  p.m.sla.textContent = c.handled_calls ? fmt.pct(c.sla) : '—';
  p.m.handled.textContent = String(c.handled_calls || 0);
  p.m.contacts.textContent = Object.entries(s.contacts || {}).map(([k, n]) => `${n} ${t('contacts.' + k)}`).join(' · ') || '—';
  p.m.rungs.textContent = (c.ladder || []).map((r, i) => `${i + 1}. ${t('channel.' + r.channel)}: ${s.contacts_by_rung?.[i] || 0}`).join(' · ');
  renderPacer(p.m.pacer, c);
  renderLaw(p.m.law, c.abandonment);
  drawChart(p.chart, c.id, cap);
  if (!p.form.dataset.dirty && !p.form.contains(document.activeElement)) {
    p.mode.value = c.pacing.mode;
    p.target.value = (100 * c.pacing.target_abandon).toFixed(1);
    p.ratio.value = c.pacing.max_ratio;
    const ring = seconds(c.pacing.ring_timeout);
    p.ring.value = ring > 0 ? String(ring) : '';
  }
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
  const sel = el('select', { 'aria-label': t('sup.moveLabel', { name: a.name }), class: 'move' });
  const btn = el('button', { type: 'button' }, t('sup.moveBtn'));
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
  const tr = el('tr', { dataset: { id: a.id } }, el('th', { scope: 'row' }, a.name), el('td', {}, el('span', { class: 'badge' })),
    el('td', { class: 'tis' }), el('td', { class: 'assigned' }), el('td', {}, sel, btn));
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
    const badge = row.tr.querySelector('.badge');
    badge.dataset.state = a.state;
    badge.textContent = t('agentstate.' + a.state) + (a.reason ? ` (${t('reason.' + a.reason)})` : '');
    row.tr.querySelector('.tis').textContent = a.state === 'logged_out' ? '—' : fmt.duration(a.seconds_in_state);
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
  $('agent-summary').textContent = agents.length ? t('sup.agentSummary', { ready, busy, paused }) : t('sup.nobody');
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
      el('h2', {}, back ? t('sup.fo.back', { trunk: f.trunk, dur: fmt.duration(f.down_for_s) }) : t('sup.fo.down', { trunk: f.trunk })),
      back ? null : el('p', { class: 'fo-lead' }, t(whatsApp ? 'sup.fo.toWhatsApp' : 'sup.fo.noWhatsApp')),
      el('p', { class: 'fo-detail' }, detail), counts);
  }));
}

// ---- trunks, WhatsApp, audit ----

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
    const btn = el('button', { type: 'button', 'aria-label': `${t(out ? 'sup.putback' : 'sup.takeout')}: ${tr.name}` }, t(out ? 'sup.putback' : 'sup.takeout'));
    btn.addEventListener('click', () => act(() => api('PATCH', `/api/v1/trunks/${encodeURIComponent(tr.name)}`, { out_of_service: !out }),
      `${tr.name}: ${t(out ? 'sup.putback' : 'sup.takeout')}`));
    return el('tr', {}, el('th', { scope: 'row' }, tr.name), el('td', {}, el('span', { class: 'badge', 'data-state': tr.state }, t('sup.trunkState.' + tr.state)), trunkRegistration(tr)),
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

function renderAudit(entries) {
  $('audit').replaceChildren(...entries.map((e) => el('li', {},
    el('time', { datetime: e.at }, fmt.time(e.at)), ' ', el('strong', {}, e.username), ' ', e.action, ' ',
    el('span', { class: 'muted' }, `${e.object_type}${e.object_id ? ' ' + e.object_id : ''}`),
    e.after ? el('code', {}, ' ' + JSON.stringify(e.after).slice(0, 120)) : null)));
}

function render(s) {
  const ids = new Set(s.campaigns.filter((c) => c.state === 'running' || c.state === 'paused').map((c) => c.id));
  for (const c of s.campaigns) if (ids.has(c.id)) renderCampaign(c);
  for (const [id, card] of cards) if (!ids.has(id)) { card.root.remove(); cards.delete(id); }
  if (!ids.size) $('campaign-cards').replaceChildren(el('p', { class: 'card' }, t('sup.noCampaigns')));
  else $('campaign-cards').querySelector(':scope > p')?.remove();
  renderFailover(s.failovers || [], !!(s.whatsapp && s.whatsapp.configured));
  renderAgents(s.agents, s.campaigns);
  renderTrunks(s.trunks || [], s.trunk_control);
  renderInbound(s.inbound || []);
  renderAudit(s.audit || []);
  const wa = $('whatsapp');
  wa.dataset.state = s.whatsapp.configured ? s.whatsapp.status : 'off';
  wa.textContent = t('sup.wa.' + (s.whatsapp.configured ? s.whatsapp.status : 'not_configured'));
}
