// Sales: campaigns with their progress, the campaign editor, and contact uploads
// with a progress bar and the rejection report.
import { api, upload, el, ApiError } from './api.js';
import { setup, t, fmt } from './i18n.js';

const $ = (id) => document.getElementById(id);
// Sales prepare drafts; starting a campaign and changing one that has started
// are a supervisor's (the server's role table refuses them too).
const runsCampaigns = document.documentElement.dataset.role === 'admin';
let campaigns = [];
let stats = {};
let editing = null; // campaign being edited, or null for a new one
let lastReport = null;

setup(() => { renderList(); if (lastReport) renderReport(lastReport); });
refresh();
setInterval(refresh, 5000);

async function refresh() {
  try {
    campaigns = (await api('GET', '/api/v1/campaigns')).campaigns;
    const entries = await Promise.all(campaigns.map(async (c) =>
      [c.id, await api('GET', `/api/v1/campaigns/${c.id}/stats`).catch(() => null)]));
    stats = Object.fromEntries(entries);
    renderList();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) $('upload-status').textContent = t('error.network');
  }
}

function progress(s) {
  const c = s?.contacts || {}, ch = s?.channels || {};
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  const parts = {
    sip: ch.sip?.reached || 0, wacall: ch.whatsapp_call?.reached || 0, msg: ch.whatsapp_template?.reached || 0,
    exhausted: c.exhausted || 0, pending: (c.pending || 0) + (c.in_progress || 0),
  };
  const label = t('sales.progress', { total, ...parts });
  const bar = el('div', { class: 'progress', role: 'img', 'aria-label': label, title: label });
  const denom = Math.max(total, parts.sip + parts.wacall + parts.msg + parts.exhausted + parts.pending, 1);
  for (const [k, cls] of [['sip', 'sw-sip'], ['wacall', 'sw-wacall'], ['msg', 'sw-msg'], ['exhausted', 'sw-exh'], ['pending', 'sw-pend']]) {
    if (parts[k] > 0) {
      const seg = el('span', { class: 'seg ' + cls });
      seg.style.width = (100 * parts[k] / denom) + '%';
      bar.append(seg);
    }
  }
  return el('div', {}, bar, el('small', { class: 'muted' }, label));
}

function renderList() {
  const body = $('campaigns').tBodies[0];
  body.replaceChildren();
  if (campaigns.length === 0) body.append(el('tr', {}, el('td', { colspan: 4 }, t('sales.none'))));
  for (const c of campaigns) {
    body.append(el('tr', { dataset: { id: c.id } },
      el('th', { scope: 'row' }, c.name),
      el('td', {}, el('span', { class: 'badge', 'data-state': c.state }, t('state.' + c.state))),
      el('td', { class: 'progress-cell' }, progress(stats[c.id])),
      el('td', { class: 'actions' },
        (runsCampaigns ? c.state !== 'finished' : c.state === 'draft') && el('button', { type: 'button', onclick: () => openEditor(c), 'aria-label': `${t('sales.edit')}: ${c.name}` }, t('sales.edit')),
        c.state !== 'finished' && el('button', { type: 'button', onclick: () => chooseUpload(c), 'aria-label': `${t('sales.upload')}: ${c.name}` }, t('sales.upload')),
        runsCampaigns && c.state === 'draft' && el('button', { type: 'button', onclick: () => start(c), 'aria-label': `${t('sales.start')}: ${c.name}` }, t('sales.start')))));
  }
  const sel = $('upload-campaign');
  const keep = sel.value;
  sel.replaceChildren(...campaigns.filter((c) => c.state !== 'finished').map((c) => el('option', { value: c.id }, c.name)));
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

async function start(c) {
  try {
    await api('POST', `/api/v1/campaigns/${c.id}/start`);
    refresh();
  } catch (e) { $('upload-status').textContent = e.message; }
}

// ---- editor ----

function rungRow(r = { channel: 'sip', max_attempts: 1, retry_delay: '30m' }) {
  const n = $('rungs').tBodies[0].rows.length + 1;
  const channel = el('select', { class: 'r-channel', 'aria-label': `${t('rung.channel')} ${n}` },
    ['sip', 'whatsapp_call', 'whatsapp_template'].map((ch) => el('option', { value: ch }, t('channel.' + ch))));
  channel.value = r.channel;
  const tr = el('tr', {},
    el('td', {}, String(n)),
    el('td', {}, channel),
    el('td', {}, el('input', { class: 'r-attempts', type: 'number', min: 1, max: 20, value: r.max_attempts || 1, 'aria-label': `${t('rung.attempts')} ${n}` })),
    el('td', {}, el('input', { class: 'r-delay', value: r.retry_delay || '', size: 5, 'aria-label': `${t('rung.delay')} ${n}` })),
    el('td', {}, el('input', { class: 'r-template', value: r.template || '', size: 12, 'aria-label': `${t('rung.template')} ${n}` })),
    el('td', {}, el('input', { class: 'r-language', value: r.language || '', size: 5, placeholder: 'pt_BR', 'aria-label': `${t('rung.language')} ${n}` })),
    el('td', {}, el('input', { class: 'r-params', value: (r.params || []).join(', '), list: 'columns', 'aria-label': `${t('rung.params')} ${n}` })),
    el('td', {}, el('button', { type: 'button', class: 'icon', 'aria-label': t('rung.removeN', { n }), onclick: (e) => e.target.closest('tr').remove() }, '✕')));
  const toggle = () => {
    const tpl = channel.value === 'whatsapp_template';
    for (const cls of ['.r-template', '.r-language', '.r-params']) tr.querySelector(cls).disabled = !tpl;
  };
  channel.addEventListener('change', toggle);
  toggle();
  $('rungs').tBodies[0].append(tr);
}

async function openEditor(c) {
  editing = c;
  $('editor').hidden = false;
  $('editor-h').textContent = c ? t('editor.edit', { name: c.name }) : t('editor.new');
  $('editor-status').textContent = '';
  $('f-name').value = c?.name || '';
  $('f-caller').value = c?.caller_id || '';
  $('f-country').value = c?.default_country || 'BR';
  $('f-open').value = c?.schedule?.open || '';
  $('f-close').value = c?.schedule?.close || '';
  $('f-tz').value = c?.schedule?.timezone || 'America/Sao_Paulo';
  hoursRows(c);
  $('f-consent').checked = !!c?.require_consent;
  const hol = c?.holidays || {};
  $('f-hol-national').checked = hol.national !== false;
  $('f-hol-optional').checked = !!hol.optional;
  $('f-hol-dates').value = (hol.dates || []).join('\n');
  $('rungs').tBodies[0].replaceChildren();
  const ladder = c?.ladder || [
    { channel: 'sip', max_attempts: 3, retry_delay: '30m' },
    { channel: 'whatsapp_call', max_attempts: 1, retry_delay: '1h' },
    { channel: 'whatsapp_template', max_attempts: 1, retry_delay: '0s' },
  ];
  ladder.forEach((r) => rungRow(r));
  showSafeHarbour(c);
  // The template's parameters are filled from the columns of the uploaded file.
  const cols = new Set(['name', 'phone']);
  if (c) {
    const sample = await api('GET', `/api/v1/campaigns/${c.id}/contacts?limit=1`).catch(() => null);
    for (const k of Object.keys(sample?.contacts?.[0]?.attributes || {})) cols.add(k);
  }
  $('columns').replaceChildren(...[...cols].map((k) => el('option', { value: k })));
  $('f-name').focus();
}

const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

// hoursRows shows a row per weekday: a campaign without weekly hours has its
// calling window every day; a new one calls Monday to Friday 09:00–21:00.
function hoursRows(c) {
  const body = $('hours').tBodies[0];
  body.replaceChildren();
  for (const d of days) {
    let h = c?.calling_hours ? c.calling_hours[d] : c?.calling_window;
    if (!c && (d === 'sat' || d === 'sun')) h = null;
    if (!c && h === undefined) h = { start: '09:00', end: '21:00' };
    const open = el('input', { type: 'checkbox', class: 'h-open', 'aria-label': `${t('hours.open')}: ${t('day.' + d)}` });
    open.checked = !!h;
    const start = el('input', { type: 'time', class: 'h-start', value: h?.start || '09:00', 'aria-label': `${t('editor.wstart')}: ${t('day.' + d)}` });
    const end = el('input', { type: 'time', class: 'h-end', value: h?.end || '21:00', 'aria-label': `${t('editor.wend')}: ${t('day.' + d)}` });
    const toggle = () => { start.disabled = end.disabled = !open.checked; };
    open.addEventListener('change', toggle);
    toggle();
    body.append(el('tr', { dataset: { day: d } }, el('th', { scope: 'row' }, t('day.' + d)),
      el('td', {}, open), el('td', {}, start), el('td', {}, end)));
  }
}

function formHours() {
  const out = {};
  for (const tr of $('hours').tBodies[0].rows) {
    if (tr.querySelector('.h-open').checked) {
      out[tr.dataset.day] = { start: tr.querySelector('.h-start').value, end: tr.querySelector('.h-end').value };
    }
  }
  return out;
}

function formCampaign() {
  const ladder = [...$('rungs').tBodies[0].rows].map((tr) => {
    const r = {
      channel: tr.querySelector('.r-channel').value,
      max_attempts: Number(tr.querySelector('.r-attempts').value),
      retry_delay: tr.querySelector('.r-delay').value.trim() || '0s',
    };
    if (r.channel === 'whatsapp_template') {
      r.template = tr.querySelector('.r-template').value.trim();
      r.language = tr.querySelector('.r-language').value.trim();
      r.params = tr.querySelector('.r-params').value.split(',').map((s) => s.trim()).filter(Boolean);
    }
    return r;
  });
  return {
    name: $('f-name').value.trim(), caller_id: $('f-caller').value.trim(), default_country: $('f-country').value.trim(),
    schedule: { open: $('f-open').value.trim(), close: $('f-close').value.trim(), timezone: $('f-tz').value.trim() },
    calling_hours: formHours(),
    require_consent: $('f-consent').checked,
    holidays: {
      national: $('f-hol-national').checked, optional: $('f-hol-optional').checked,
      dates: $('f-hol-dates').value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean),
    },
    ladder,
  };
}

$('new-campaign').addEventListener('click', () => openEditor(null));
$('add-rung').addEventListener('click', () => rungRow());
$('cancel-edit').addEventListener('click', () => { $('editor').hidden = true; $('new-campaign').focus(); });
$('campaign-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const body = formCampaign();
    const saved = editing ? await api('PATCH', `/api/v1/campaigns/${editing.id}`, body) : await api('POST', '/api/v1/campaigns', body);
    editing = saved;
    $('editor-h').textContent = t('editor.edit', { name: saved.name });
    $('editor-status').textContent = t('editor.saved');
    showSafeHarbour(saved);
    await refresh();
    $('upload-campaign').value = saved.id;
  } catch (err) {
    $('editor-status').textContent = err.message;
  }
});

// ---- safe-harbour message ----

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';

// showSafeHarbour says which message the campaign's abandoned calls hear; a campaign
// not yet saved has none to set.
async function showSafeHarbour(c) {
  for (const id of ['sh-file', 'sh-upload', 'sh-default']) $(id).disabled = !c;
  $('sh-download').hidden = !c;
  if (!c) { $('sh-status').textContent = t('sh.saveFirst'); return; }
  $('sh-download').href = `/api/v1/campaigns/${c.id}/safe_harbour`;
  try {
    const res = await fetch(`/api/v1/campaigns/${c.id}/safe_harbour`, { credentials: 'same-origin' });
    const source = res.headers.get('X-Safe-Harbour-Source');
    $('sh-status').textContent = t(source === 'campaign' ? 'sh.own' : 'sh.builtin');
    $('safe-harbour').dataset.source = source || '';
  } catch { $('sh-status').textContent = t('error.network'); }
}

$('sh-upload').addEventListener('click', async () => {
  const file = $('sh-file').files[0];
  if (!editing || !file) { $('sh-status').textContent = t('sh.choose'); return; }
  const res = await fetch(`/api/v1/campaigns/${editing.id}/safe_harbour`, {
    method: 'PUT', credentials: 'same-origin', body: file, headers: { 'Content-Type': 'audio/wav', 'X-CSRF-Token': csrf },
  }).catch(() => null);
  const data = await res?.json().catch(() => null);
  if (!res?.ok) {
    $('sh-status').textContent = t('sh.refused', { msg: data?.error?.message || t('error.network') });
    $('safe-harbour').dataset.result = 'refused';
    return;
  }
  $('sh-file').value = '';
  $('safe-harbour').dataset.result = 'stored';
  $('sh-status').textContent = t('sh.stored', { s: fmt.num(data.seconds) });
  $('safe-harbour').dataset.source = 'campaign';
});

$('sh-default').addEventListener('click', async () => {
  if (!editing) return;
  try {
    await api('DELETE', `/api/v1/campaigns/${editing.id}/safe_harbour`);
    $('safe-harbour').dataset.source = 'builtin';
    $('sh-status').textContent = t('sh.builtin');
  } catch (e) { $('sh-status').textContent = e.message; }
});

// ---- upload ----

function chooseUpload(c) {
  $('upload-campaign').value = c.id;
  $('dropzone').focus();
}

const zone = $('dropzone');
zone.addEventListener('click', () => $('file').click());
zone.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); }
});
zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (e) => {
  e.preventDefault();
  zone.classList.remove('over');
  const f = e.dataTransfer?.files?.[0];
  if (f) send(f);
});
$('file').addEventListener('change', () => {
  const f = $('file').files[0];
  if (f) send(f);
  $('file').value = '';
});

async function send(file) {
  const id = $('upload-campaign').value;
  const status = $('upload-status');
  if (!id) { status.textContent = t('upload.nocampaign'); return; }
  const bar = $('upload-progress');
  bar.hidden = false;
  bar.value = 0;
  $('report').hidden = true;
  status.textContent = t('upload.sending', { name: file.name, pct: 0 });
  try {
    const rep = await upload(`/api/v1/campaigns/${id}/contacts`, file, (frac, sent) => {
      bar.value = Math.round(frac * 100);
      status.textContent = sent ? t('upload.processing', { name: file.name })
        : t('upload.sending', { name: file.name, pct: Math.round(frac * 100) });
    });
    bar.value = 100;
    rep.fileName = file.name;
    lastReport = rep;
    renderReport(rep);
    refresh();
  } catch (e) {
    status.textContent = t('upload.failed', { msg: e.message });
  }
}

const shownRejections = 200;

function renderReport(rep) {
  $('upload-status').textContent = t('upload.done', { name: rep.fileName, imported: rep.imported, rejected: rep.rejected_count });
  $('report').hidden = false;
  $('report-summary').textContent = t('report.summary', { imported: rep.imported, rejected: rep.rejected_count }) +
    (rep.ambiguous_zones > 0 ? ' ' + t('report.ambiguous', { n: rep.ambiguous_zones }) : '') +
    (rep.rejected.length > shownRejections ? ' ' + t('report.more', { n: shownRejections }) : '');
  const link = $('rejections-csv');
  link.href = `/api/v1/imports/${rep.import_id}/rejections`;
  link.hidden = rep.rejected_count === 0;
  $('rejections').tBodies[0].replaceChildren(...rep.rejected.slice(0, shownRejections).map((r) =>
    el('tr', {}, el('td', {}, String(r.line)), el('td', {}, r.reason), el('td', {}, r.detail || ''))));
}
