// Sales: campaigns with their progress, the campaign editor in business words, and
// contact uploads with a progress bar and a report people can act on.
import { api, upload, el, labelCells, ApiError } from './api.js';
import { setup, t, fmt, lang } from './i18n.js';
import { showErrors, clearErrors, tn, confirmAction, showFileNames } from './form.js';
import { cronFromDays, daysFromCron, splitDelay, delayText, durationSeconds } from './sales-model.js';

const $ = (id) => document.getElementById(id);
// What each role may do here, as the API's role table has it (README "API"):
// sales prepare drafts and upload contacts; supervisors run campaigns (start,
// finish, archive, change them while they run); admins do both.
const role = document.documentElement.dataset.role;
const runsCampaigns = role === 'admin' || role === 'supervisor';
const preparesCampaigns = role === 'admin' || role === 'sales';
let campaigns = [];
let stats = {};
let editing = null; // campaign being edited, or null for a new one
let lastReport = null;
// The WhatsApp account's approved templates: null until asked; state says why
// there are none (not_configured, unavailable).
let templates = null;
let templatesState = '';

setup(() => { renderList(); if (lastReport) renderReport(lastReport); if (!$('editor').hidden) retranslateEditor(); showFileNames(); });
showFileNames();
$('new-campaign').hidden = !preparesCampaigns;
$('upload').hidden = !preparesCampaigns;
$('example-csv').href = new URL('./examples/contatos-exemplo.csv', import.meta.url).href;
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
    if (!(e instanceof ApiError && e.status === 401)) $('list-status').textContent = t('error.network');
  }
}

// progress shows where the contacts are. A finished campaign calls nobody any
// more: its contacts left pending were not called, and are not "pending".
function progress(c, s) {
  const cs = s?.contacts || {}, ch = s?.channels || {};
  const total = Object.values(cs).reduce((a, b) => a + b, 0);
  const parts = {
    sip: ch.sip?.reached || 0, wacall: ch.whatsapp_call?.reached || 0, msg: ch.whatsapp_template?.reached || 0,
    exhausted: cs.exhausted || 0, pending: (cs.pending || 0) + (cs.in_progress || 0),
  };
  const f = (n) => fmt.num(n, 0);
  const words = [
    tn('progress.total', total),
    t('progress.reachedSip', { n: f(parts.sip) }), t('progress.reachedWaCall', { n: f(parts.wacall) }),
    t('progress.reachedMsg', { n: f(parts.msg) }), tn('progress.exhaustedN', parts.exhausted),
    c.state === 'finished' ? tn('progress.notCalled', parts.pending) : tn('progress.pendingN', parts.pending),
  ];
  const label = words.join(' · ');
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

// actionsFor lists the buttons a campaign offers this role, in the order they
// are shown. Each is offered only where the API allows it.
function actionsFor(c) {
  const live = c.state === 'running' || c.state === 'paused';
  const out = [];
  if (runsCampaigns ? c.state !== 'finished' : c.state === 'draft') out.push(['edit', () => openEditor(c)]);
  if (preparesCampaigns && c.state !== 'finished') out.push(['upload', () => chooseUpload(c)]);
  if (runsCampaigns && c.state === 'draft') out.push(['start', () => start(c)]);
  if (runsCampaigns && live) out.push(['finish', () => finish(c)]);
  if (runsCampaigns && !live) out.push(['archive', () => archive(c)]);
  return out;
}

function renderList() {
  const body = $('campaigns').tBodies[0];
  body.replaceChildren();
  if (campaigns.length === 0) body.append(el('tr', {}, el('td', { colspan: 4 }, t('sales.none'))));
  for (const c of campaigns) {
    const buttons = actionsFor(c).map(([key, fn]) => el('button', {
      type: 'button', onclick: fn, 'aria-label': `${t('sales.' + key)}: ${c.name}`,
      class: key === 'finish' || key === 'archive' ? 'danger-outline' : undefined,
    }, t('sales.' + key)));
    body.append(el('tr', { dataset: { id: c.id } },
      el('th', { scope: 'row' }, c.name),
      el('td', {}, el('span', { class: 'badge', 'data-state': c.state }, t('state.' + c.state))),
      el('td', { class: 'progress-cell' }, progress(c, stats[c.id])),
      el('td', { class: 'actions' }, buttons)));
  }
  labelCells($('campaigns'));
  const sel = $('upload-campaign');
  const keep = sel.value;
  sel.replaceChildren(...campaigns.filter((c) => c.state !== 'finished').map((c) => el('option', { value: c.id }, c.name)));
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

// serverMessage says in the page's language what the server refused: the error's
// stable code, and for a refused campaign each field in words.
function serverMessage(e) {
  if (!(e instanceof ApiError)) return t('error.network');
  if (e.code === 'validation_failed' && e.detail.fields) {
    return t('error.validation_failed') + ' ' + Object.keys(e.detail.fields).map(fieldWords).join('; ') + '.';
  }
  const k = 'error.' + e.code;
  return t(k) === k ? t('error.other', { code: e.code }) : t(k);
}

// fieldWords names a refused field as people know it: "step 3: template".
function fieldWords(key) {
  const m = key.match(/^(ladder|dispositions)\[(\d+)\]\.?(\w*)/);
  if (m) {
    const what = m[1] === 'ladder' ? t('field.step', { n: Number(m[2]) + 1 }) : t('field.dispo', { n: Number(m[2]) + 1 });
    return m[3] ? `${what}: ${t('field.' + m[3])}` : what;
  }
  const k = 'field.' + key.split('.')[0];
  return t(k) === k ? key : t(k);
}

async function start(c) {
  $('list-status').textContent = '';
  try {
    await api('POST', `/api/v1/campaigns/${c.id}/start`);
    $('list-status').textContent = t('sales.started', { name: c.name });
    refresh();
  } catch (e) { $('list-status').textContent = t('sales.startRefused', { name: c.name }) + ' ' + serverMessage(e); }
}

async function finish(c) {
  const s = stats[c.id]?.contacts || {};
  const pending = (s.pending || 0) + (s.in_progress || 0);
  if (!await confirmAction(t('finish.title', { name: c.name }), tn('finish.text', pending), t('sales.finish'))) return;
  try {
    await api('POST', `/api/v1/campaigns/${c.id}/finish`);
    $('list-status').textContent = t('sales.finished', { name: c.name });
    refresh();
  } catch (e) { $('list-status').textContent = serverMessage(e); }
}

async function archive(c) {
  if (!await confirmAction(t('archive.title', { name: c.name }), t('archive.text'), t('sales.archive'))) return;
  try {
    await api('DELETE', `/api/v1/campaigns/${c.id}`);
    $('list-status').textContent = t('sales.archived', { name: c.name });
    if (editing?.id === c.id) $('editor').hidden = true;
    refresh();
  } catch (e) { $('list-status').textContent = serverMessage(e); }
}

// ---- editor ----

const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const units = ['minutes', 'hours', 'days'];
let columns = ['name', 'phone']; // the CSV columns a template parameter may take
let customSchedule = null; // a schedule the days and hours cannot show, kept as is

// DefaultDispositions mirrors campaigns.DefaultDispositions: a new campaign
// starts with them (TestBrowserEditorMakesTheSameCampaignAsTheAPI checks).
const defaultDispositions = [
  { code: 'sale', label: 'Venda' },
  { code: 'callback', label: 'Retornar a ligação', callback: true },
  { code: 'not_interested', label: 'Sem interesse' },
  { code: 'wrong_person', label: 'Pessoa errada' },
  { code: 'do_not_call', label: 'Não ligar novamente' },
  { code: 'other', label: 'Outro' },
];

async function loadTemplates() {
  if (templates !== null || templatesState === 'not_configured') return;
  try {
    templates = (await api('GET', '/api/v1/whatsapp/templates')).templates || [];
    templatesState = 'ok';
  } catch (e) {
    templatesState = e instanceof ApiError && e.code === 'whatsapp_not_configured' ? 'not_configured' : 'unavailable';
  }
}

function templateNote() {
  const note = $('templates-note');
  note.hidden = templatesState === 'ok' && templates.length > 0;
  note.textContent = templatesState === 'ok' ? t('tpl.none') : t('tpl.' + (templatesState || 'unavailable'));
}

function option(value, text, selected) {
  const o = el('option', { value }, text);
  o.selected = !!selected;
  return o;
}

function columnName(c) {
  return c === 'name' || c === 'phone' ? t('col.' + c) : c;
}

// paramRow maps one template placeholder to a CSV column; labelParam names it.
function paramRow(placeholder, value) {
  const known = columns.includes(value) || !value;
  const sel = el('select', { class: 'r-param', dataset: { placeholder } },
    option('', '', !value), columns.map((c) => option(c, '', c === value)), option('__other', '', !known));
  const other = el('input', { class: 'r-param-other', value: known ? '' : value, size: 12 });
  other.hidden = known;
  sel.addEventListener('change', () => { other.hidden = sel.value !== '__other'; if (!other.hidden) other.focus(); });
  return el('li', {}, el('code', {}, `{{${placeholder}}}`), ' ← ', sel, other);
}

// labelParam names a placeholder's column field and its choices, in the page's
// language, for step n: a screen reader hears "Column for {{1}} in step 3".
function labelParam(row, n) {
  const sel = row.querySelector('.r-param'), p = `{{${sel.dataset.placeholder}}}`;
  sel.setAttribute('aria-label', t('rung.paramN', { n, p }));
  row.querySelector('.r-param-other').setAttribute('aria-label', t('rung.otherN', { n, p }));
  for (const o of sel.options) o.textContent = o.value === '' ? t('rung.pickColumn') : o.value === '__other' ? t('rung.otherColumn') : columnName(o.value);
}

function templateByValue(v) {
  const [name, language] = v.split('\u0000');
  return (templates || []).find((x) => x.name === name && x.language === language) || null;
}

// rungRow is one step of the ladder: the channel, how many attempts, how long to
// wait between them (a number and a unit) and, for a WhatsApp message, the
// approved template with a column for each of its parameters.
function rungRow(r) {
  const li = el('li', { class: 'rung' });
  const channel = el('select', { class: 'r-channel' },
    ['sip', 'whatsapp_call', 'whatsapp_template'].map((ch) => option(ch, t('channel.' + ch), ch === r.channel)));
  const attempts = el('input', { class: 'r-attempts', type: 'number', min: 1, max: 20, step: 1, value: r.max_attempts || 1, inputmode: 'numeric' });
  const [n, unit] = splitDelay(durationSeconds(r.retry_delay || '0s'));
  const delay = el('input', { class: 'r-delay', type: 'number', min: 0, step: 'any', value: String(n), inputmode: 'decimal' });
  const unitSel = el('select', { class: 'r-unit' }, units.map((u) => option(u, t('unit.' + u), u === unit)));
  const tpl = el('select', { class: 'r-template' });
  const current = r.template ? r.template + '\u0000' + (r.language || '') : '';
  tpl.append(option('', '', !current));
  for (const x of templates || []) tpl.append(option(x.name + '\u0000' + x.language, `${x.name} (${x.language})`, x.name + '\u0000' + x.language === current));
  if (current && !templateByValue(current)) {
    const o = option(current, '', true);
    o.dataset.unknown = '1';
    tpl.append(o);
  }
  const params = el('ol', { class: 'r-params' });
  const body = el('p', { class: 'r-body muted' });
  const tplPart = el('div', { class: 'r-tpl' },
    el('label', {}, el('span', { class: 'lbl-template' }), tpl), body,
    el('p', { class: 'muted lbl-params' }), params);
  const showParams = (values) => {
    const x = templateByValue(tpl.value);
    body.textContent = x ? x.body : '';
    const names = x ? x.body_param_names || [] : (values || []).map((_, i) => String(i + 1));
    params.replaceChildren(...names.map((p, i) => paramRow(p, values?.[i] ?? (x?.parameter_format === 'named' && columns.includes(p) ? p : ''))));
    for (const row of params.children) labelParam(row, li.dataset.step);
    tplPart.querySelector('.lbl-params').hidden = names.length === 0;
  };
  tpl.addEventListener('change', () => showParams(null));
  const toggle = () => { tplPart.hidden = channel.value !== 'whatsapp_template'; };
  channel.addEventListener('change', toggle);
  li.append(
    el('h4', { class: 'step-h' }),
    el('div', { class: 'rung-fields' },
      el('label', {}, el('span', { class: 'lbl-channel' }), channel),
      el('label', {}, el('span', { class: 'lbl-attempts' }), attempts),
      el('div', { class: 'delay field-group' }, el('label', {}, el('span', { class: 'lbl-delay' }), delay), unitSel)),
    tplPart,
    el('button', { type: 'button', class: 'remove-rung', onclick: () => { li.remove(); numberSteps(); } }));
  $('rungs').append(li);
  numberSteps();
  showParams(r.params);
  toggle();
}

// numberSteps numbers the steps from 1, as people count, and names their fields.
function numberSteps() {
  [...$('rungs').children].forEach((li, i) => {
    const n = i + 1;
    li.dataset.step = n;
    li.querySelector('.step-h').textContent = t('rung.step', { n });
    li.querySelector('.lbl-channel').textContent = t('rung.channel');
    li.querySelector('.lbl-attempts').textContent = t('rung.attempts');
    li.querySelector('.lbl-delay').textContent = t('rung.delay');
    li.querySelector('.r-unit').setAttribute('aria-label', t('rung.unitN', { n }));
    li.querySelector('.lbl-template').textContent = t('rung.template');
    li.querySelector('.lbl-params').textContent = t('rung.params');
    for (const o of li.querySelector('.r-template').options) {
      if (o.value === '') o.textContent = t('rung.pickTemplate');
      else if (o.dataset.unknown) { const [name, language] = o.value.split('\u0000'); o.textContent = t('rung.unknownTemplate', { name, language: language || '?' }); }
    }
    for (const row of li.querySelectorAll('.r-params > li')) labelParam(row, n);
    li.querySelector('.remove-rung').textContent = t('rung.removeN', { n });
  });
}

function dispoRow(d) {
  const li = el('li', { class: 'dispo' },
    el('label', {}, el('span', { class: 'lbl-dlabel' }), el('input', { class: 'd-label', value: d.label || '', maxlength: 100 })),
    el('label', {}, el('span', { class: 'lbl-dcode' }), el('input', { class: 'd-code', value: d.code || '', maxlength: 64, size: 14, autocapitalize: 'off', spellcheck: 'false' })),
    el('label', { class: 'inline' }, el('input', { class: 'd-callback', type: 'checkbox' }), el('span', { class: 'lbl-dcallback' })),
    el('button', { type: 'button', class: 'remove-dispo', onclick: () => { li.remove(); numberDispos(); } }));
  li.querySelector('.d-callback').checked = !!d.callback;
  // A new label suggests its code, until the code is typed by hand.
  const label = li.querySelector('.d-label'), code = li.querySelector('.d-code');
  label.addEventListener('input', () => {
    if (code.dataset.typed) return;
    code.value = label.value.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '').slice(0, 64);
  });
  code.addEventListener('input', () => { code.dataset.typed = '1'; });
  if (d.code) code.dataset.typed = '1';
  $('dispos').append(li);
  numberDispos();
}

function numberDispos() {
  [...$('dispos').children].forEach((li, i) => {
    const n = i + 1;
    li.querySelector('.lbl-dlabel').textContent = t('dispo.label', { n });
    li.querySelector('.lbl-dcode').textContent = t('dispo.code');
    li.querySelector('.lbl-dcallback').textContent = t('dispo.callback');
    li.querySelector('.remove-dispo').textContent = t('dispo.removeN', { n });
  });
}

function scheduleDays(selected) {
  $('sched-days').replaceChildren(...days.map((d) => {
    const box = el('input', { type: 'checkbox', class: 's-day', dataset: { day: d } });
    box.checked = selected.includes(d);
    return el('label', { class: 'inline' }, box, el('span', {}, t('day.' + d)));
  }));
}

function showSchedule(s) {
  customSchedule = null;
  $('sched-custom').hidden = true;
  const on = !!(s?.open || s?.close);
  $('f-sched-on').checked = on;
  let parsed = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], open: '09:00', close: '18:00' };
  if (on) {
    const p = daysFromCron(s.open, s.close);
    if (p) parsed = p;
    else {
      // Written through the API in cron: kept as it is unless replaced here.
      customSchedule = { open: s.open, close: s.close };
      $('sched-custom').hidden = false;
      $('sched-custom').textContent = t('sched.custom', { open: s.open, close: s.close });
      $('f-sched-on').checked = false;
    }
  }
  scheduleDays(parsed.days);
  $('f-sched-open').value = parsed.open;
  $('f-sched-close').value = parsed.close;
  $('f-tz').value = s?.timezone || 'America/Sao_Paulo';
  toggleSchedule();
}

function toggleSchedule() {
  const on = $('f-sched-on').checked;
  for (const x of [...document.querySelectorAll('.s-day'), $('f-sched-open'), $('f-sched-close')]) x.disabled = !on;
  if (on) { customSchedule = null; $('sched-custom').hidden = true; }
}
$('f-sched-on').addEventListener('change', toggleSchedule);

async function openEditor(c) {
  editing = c;
  $('editor').hidden = false;
  clearErrors($('campaign-form'));
  $('editor-h').textContent = c ? t('editor.edit', { name: c.name }) : t('editor.new');
  $('editor-status').textContent = '';
  $('f-name').value = c?.name || '';
  $('f-caller').value = c?.caller_id || '';
  $('f-country').value = c?.default_country || 'BR';
  showSchedule(c?.schedule);
  hoursRows(c);
  $('f-consent').checked = !!c?.require_consent;
  const hol = c?.holidays || {};
  $('f-hol-national').checked = hol.national !== false;
  $('f-hol-optional').checked = !!hol.optional;
  $('f-hol-dates').value = (hol.dates || []).join('\n');
  $('f-script').value = c?.script || '';
  await Promise.all([loadTemplates(), loadColumns(c)]);
  templateNote();
  scriptColumns();
  $('rungs').replaceChildren();
  // A new campaign starts with the product's ladder (campaigns.DefaultLadder);
  // its message step only where the account has templates to choose from.
  const ladder = c?.ladder || [
    { channel: 'sip', max_attempts: 2, retry_delay: '30m' },
    { channel: 'whatsapp_call', max_attempts: 1, retry_delay: '1h' },
    ...(templates?.length ? [{ channel: 'whatsapp_template', max_attempts: 1, retry_delay: '0s' }] : []),
  ];
  ladder.forEach((r) => rungRow(r));
  $('dispos').replaceChildren();
  (c?.dispositions || defaultDispositions).forEach((d) => dispoRow(d));
  showSafeHarbour(c);
  $('f-name').focus();
}

// loadColumns finds the columns a template parameter may name: the contact's
// name and phone, and the other columns of the campaign's uploads.
async function loadColumns(c) {
  const cols = new Set(['name', 'phone']);
  if (c) {
    const sample = await api('GET', `/api/v1/campaigns/${c.id}/contacts?limit=1`).catch(() => null);
    for (const k of Object.keys(sample?.contacts?.[0]?.attributes || {})) cols.add(k);
    if (lastReport?.campaignId === c.id) {
      for (const k of lastReport.columns || []) if (!/^(telefone|phone|celular|fone|mobile|nome|name)$/i.test(k)) cols.add(k);
    }
  }
  columns = [...cols];
}

// scriptColumns lists the placeholders a script may use: the contact's columns
// and what the agent page fills in besides (its WhatsApp number, the campaign).
function scriptColumns() {
  const names = [...new Set([...columns, 'whatsapp', 'campaign'])];
  $('script-cols').replaceChildren(t('script.columns'), ' ',
    ...names.flatMap((c, i) => [i ? ', ' : '', el('code', {}, `{{${c}}}`)]));
}

// retranslateEditor puts the open editor's generated labels in the new language.
function retranslateEditor() {
  numberSteps();
  numberDispos();
  templateNote();
  scriptColumns();
  for (const sel of document.querySelectorAll('.r-channel')) for (const o of sel.options) o.textContent = t('channel.' + o.value);
  for (const sel of document.querySelectorAll('.r-unit')) for (const o of sel.options) o.textContent = t('unit.' + o.value);
  for (const span of document.querySelectorAll('#sched-days span')) span.textContent = t('day.' + span.previousSibling.dataset.day);
  labelHours();
  showSafeHarbour(editing);
}

// labelHours names each weekday's row and its fields, in the page's language:
// a screen reader hears "Start: Monday", not the field alone.
function labelHours() {
  for (const tr of $('hours').tBodies[0].rows) {
    const day = t('day.' + tr.dataset.day);
    tr.querySelector('th').textContent = day;
    tr.querySelector('.h-open').setAttribute('aria-label', `${t('hours.open')}: ${day}`);
    tr.querySelector('.h-start').setAttribute('aria-label', `${t('editor.wstart')}: ${day}`);
    tr.querySelector('.h-end').setAttribute('aria-label', `${t('editor.wend')}: ${day}`);
  }
}

// hoursRows shows a row per weekday: a campaign without weekly hours has its
// calling window every day; a new one calls Monday to Friday 09:00–21:00.
function hoursRows(c) {
  const body = $('hours').tBodies[0];
  body.replaceChildren();
  for (const d of days) {
    let h = c?.calling_hours ? c.calling_hours[d] : c?.calling_window;
    if (!c && (d === 'sat' || d === 'sun')) h = null;
    if (!c && h === undefined) h = { start: '09:00', end: '21:00' };
    const open = el('input', { type: 'checkbox', class: 'h-open' });
    open.checked = !!h;
    const start = el('input', { type: 'time', class: 'h-start', value: h?.start || '09:00' });
    const end = el('input', { type: 'time', class: 'h-end', value: h?.end || '21:00' });
    const toggle = () => { start.disabled = end.disabled = !open.checked; };
    open.addEventListener('change', toggle);
    toggle();
    body.append(el('tr', { dataset: { day: d } }, el('th', { scope: 'row' }),
      el('td', {}, open), el('td', {}, start), el('td', {}, end)));
  }
  labelHours();
}

// readForm turns the form into the campaign's JSON (the API's schema) and the
// errors found on the way, each beside its field in the page's language and in
// the field's own units.
function readForm() {
  const errors = [];
  const bad = (input, key, vars) => errors.push([input, t(key, vars)]);
  const name = $('f-name').value.trim();
  if (!name) bad($('f-name'), 'err.required');
  const caller = $('f-caller').value.trim();
  if (!caller) bad($('f-caller'), 'err.required');
  else if (/\p{L}/u.test(caller.replace(/^0xx/i, '')) || caller.replace(/\D/g, '').length < 8) bad($('f-caller'), 'err.phone');
  const country = $('f-country').value.trim().toUpperCase();
  if (!/^[A-Z]{2}$/.test(country)) bad($('f-country'), 'err.country');
  const tz = $('f-tz').value.trim();
  if (!tz) bad($('f-tz'), 'err.required');
  else if (!knownZone(tz)) bad($('f-tz'), 'err.tz', { tz });

  let schedule = { open: '', close: '', timezone: tz };
  if ($('f-sched-on').checked) {
    const picked = [...document.querySelectorAll('.s-day')].filter((b) => b.checked).map((b) => b.dataset.day);
    const open = $('f-sched-open').value, close = $('f-sched-close').value;
    if (picked.length === 0) bad(document.querySelector('.s-day'), 'err.noDays');
    if (!open) bad($('f-sched-open'), 'err.time');
    if (!close) bad($('f-sched-close'), 'err.time');
    else if (open && close <= open) bad($('f-sched-close'), 'err.closeAfterOpen', { open });
    schedule = { ...cronFromDays(picked, open, close), timezone: tz };
  } else if (customSchedule) {
    schedule = { ...customSchedule, timezone: tz };
  }

  const calling = {};
  for (const tr of $('hours').tBodies[0].rows) {
    if (!tr.querySelector('.h-open').checked) continue;
    const start = tr.querySelector('.h-start'), end = tr.querySelector('.h-end');
    if (!start.value) bad(start, 'err.time');
    else if (!end.value) bad(end, 'err.time');
    else if (end.value <= start.value) bad(end, 'err.endAfterStart', { start: start.value });
    calling[tr.dataset.day] = { start: start.value, end: end.value };
  }
  const dates = $('f-hol-dates').value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
  const wrong = dates.find((d) => !/^\d{4}-\d{2}-\d{2}$/.test(d) || Number.isNaN(Date.parse(d)));
  if (wrong) bad($('f-hol-dates'), 'err.date', { date: wrong });

  const seen = new Set();
  const ladder = [...$('rungs').children].map((li) => {
    const channel = li.querySelector('.r-channel');
    const attempts = li.querySelector('.r-attempts');
    const delay = li.querySelector('.r-delay');
    const unit = li.querySelector('.r-unit').value;
    if (seen.has(channel.value)) bad(channel, 'err.channelTwice');
    seen.add(channel.value);
    const a = Number(attempts.value);
    if (!Number.isInteger(a) || a < 1 || a > 20) bad(attempts, 'err.attempts');
    const d = Number(delay.value);
    if (delay.value.trim() === '' || !Number.isFinite(d) || d < 0) bad(delay, 'err.delay', { unit: t('unit.' + unit) });
    const r = { channel: channel.value, max_attempts: a, retry_delay: delayText(d, unit) };
    if (channel.value === 'whatsapp_template') {
      const tpl = li.querySelector('.r-template');
      if (!tpl.value) bad(tpl, 'err.template');
      else if (templatesState === 'ok' && !templateByValue(tpl.value)) bad(tpl, 'err.templateNotApproved');
      const [tname, language] = tpl.value.split('\u0000');
      const x = templateByValue(tpl.value);
      r.template = tname || '';
      r.language = language || '';
      r.params = [...li.querySelectorAll('.r-params > li')].map((p) => {
        const sel = p.querySelector('.r-param');
        const v = sel.value === '__other' ? p.querySelector('.r-param-other').value.trim() : sel.value;
        const target = sel.value === '__other' ? p.querySelector('.r-param-other') : sel;
        if (!v) bad(target, 'err.column');
        else if (x?.parameter_format === 'named' && v.toLowerCase() !== sel.dataset.placeholder.toLowerCase()) {
          bad(target, 'err.namedColumn', { p: sel.dataset.placeholder });
        }
        return v;
      });
    }
    return r;
  });
  if (ladder.length === 0) bad($('add-rung'), 'err.noSteps');

  const codes = new Set();
  const dispositions = [...$('dispos').children].map((li) => {
    const code = li.querySelector('.d-code'), label = li.querySelector('.d-label');
    if (!label.value.trim()) bad(label, 'err.required');
    if (!/^[a-z0-9_]{1,64}$/.test(code.value)) bad(code, 'err.code');
    else if (codes.has(code.value)) bad(code, 'err.codeTwice');
    codes.add(code.value);
    const d = { code: code.value, label: label.value.trim() };
    if (li.querySelector('.d-callback').checked) d.callback = true;
    return d;
  });
  if (dispositions.length === 0) bad($('add-dispo'), 'err.noDispos');

  const campaign = {
    name, caller_id: caller, default_country: country, schedule,
    calling_hours: calling,
    require_consent: $('f-consent').checked,
    holidays: { national: $('f-hol-national').checked, optional: $('f-hol-optional').checked, dates },
    ladder, dispositions, script: $('f-script').value.trim(),
  };
  return { campaign, errors };
}

// knownZone reports whether the browser knows tz as an IANA time zone, as the
// server (Go's time zone database) will.
function knownZone(tz) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch { return false; }
}

// fieldFor finds the form field a server error key names.
function fieldFor(key) {
  const m = key.match(/^(ladder|dispositions)\[(\d+)\]\.?(\w*)/);
  if (m) {
    const row = (m[1] === 'ladder' ? $('rungs') : $('dispos')).children[Number(m[2])];
    const cls = { channel: '.r-channel', max_attempts: '.r-attempts', retry_delay: '.r-delay', template: '.r-template', language: '.r-template', params: '.r-param', code: '.d-code', label: '.d-label' }[m[3]];
    return row?.querySelector(cls || 'input, select') || null;
  }
  const day = key.match(/^calling_hours\.(\w+)/);
  if (day) return document.querySelector(`#hours tr[data-day=${day[1]}] .h-end`);
  return {
    name: $('f-name'), caller_id: $('f-caller'), default_country: $('f-country'), 'schedule.timezone': $('f-tz'),
    schedule: $('f-sched-open'), holidays: $('f-hol-dates'), script: $('f-script'), ladder: $('add-rung'), dispositions: $('add-dispo'),
  }[key.split('.')[0] === 'holidays' ? 'holidays' : key] || null;
}

$('new-campaign').addEventListener('click', () => openEditor(null));
$('add-rung').addEventListener('click', () => {
  const used = new Set([...document.querySelectorAll('.r-channel')].map((s) => s.value));
  const channel = ['sip', 'whatsapp_call', 'whatsapp_template'].find((ch) => !used.has(ch)) || 'sip';
  rungRow({ channel, max_attempts: 1, retry_delay: '30m' });
  $('rungs').lastElementChild.querySelector('.r-channel').focus();
});
$('add-dispo').addEventListener('click', () => { dispoRow({}); $('dispos').lastElementChild.querySelector('.d-label').focus(); });
$('cancel-edit').addEventListener('click', () => { $('editor').hidden = true; $('new-campaign').focus(); });
$('campaign-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const { campaign, errors } = readForm();
  if (errors.length > 0) {
    showErrors($('campaign-form'), errors);
    $('editor-status').textContent = tn('editor.fix', errors.length);
    return;
  }
  clearErrors($('campaign-form'));
  try {
    const saved = editing ? await api('PATCH', `/api/v1/campaigns/${editing.id}`, campaign) : await api('POST', '/api/v1/campaigns', campaign);
    editing = saved;
    $('editor-h').textContent = t('editor.edit', { name: saved.name });
    $('editor-status').textContent = t('editor.saved');
    showSafeHarbour(saved);
    await refresh();
    if (preparesCampaigns) $('upload-campaign').value = saved.id;
  } catch (err) {
    const fields = err instanceof ApiError ? err.detail.fields : null;
    if (fields) {
      const pairs = Object.keys(fields).map((k) => [fieldFor(k) || $('save-campaign'), t('err.server', { what: fieldWords(k) })]);
      showErrors($('campaign-form'), pairs);
      $('editor-status').textContent = tn('editor.fix', pairs.length);
    } else {
      $('editor-status').textContent = serverMessage(err);
    }
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
    const reason = data?.error?.reason;
    $('sh-status').textContent = t('sh.refused', { msg: reason ? t('sh.problem.' + reason) : (res ? t('error.other', { code: data?.error?.code || res.status }) : t('error.network')) });
    $('safe-harbour').dataset.result = 'refused';
    return;
  }
  $('sh-file').value = '';
  showFileNames();
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
  } catch (e) { $('sh-status').textContent = serverMessage(e); }
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

// uploadError says why a whole file was refused: the error's code, and for a
// file that cannot be read, which problem (the error's reason).
function uploadError(e) {
  const why = e instanceof ApiError ? e.detail.reason : '';
  if (why) return t('upload.err.' + why);
  if (e instanceof ApiError && t('upload.err.' + e.code) !== 'upload.err.' + e.code) return t('upload.err.' + e.code);
  return serverMessage(e);
}

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
    rep.campaignId = id;
    lastReport = rep;
    renderReport(rep);
    refresh();
  } catch (e) {
    status.textContent = t('upload.failed', { msg: uploadError(e) });
  }
}

const shownRejections = 200;

// reasonWords is a rejection in words: the reason and the cell at fault.
function reasonWords(r) {
  const k = 'reject.' + r.reason;
  const words = t(k) === k ? t('reject.other', { code: r.reason }) : t(k);
  return r.value ? `${words}: ${r.value}` : words;
}

function renderReport(rep) {
  const f = (n) => fmt.num(n, 0);
  $('upload-status').textContent = t('upload.done', { name: rep.fileName, imported: tn('report.imported', rep.imported), rejected: tn('report.rejected', rep.rejected_count) });
  $('report').hidden = false;
  $('report-summary').textContent = tn('report.imported', rep.imported) + ', ' + tn('report.rejected', rep.rejected_count) + '.' +
    (rep.ambiguous_zones > 0 ? ' ' + tn('report.ambiguousN', rep.ambiguous_zones) : '') +
    (rep.rejected.length > shownRejections ? ' ' + t('report.more', { n: shownRejections }) : '');
  const totals = Object.entries(rep.by_reason || {}).sort((a, b) => b[1] - a[1]);
  $('report-totals').hidden = totals.length === 0;
  $('report-totals').tBodies[0].replaceChildren(...totals.map(([reason, n]) =>
    el('tr', { dataset: { reason } }, el('th', { scope: 'row' }, reasonWords({ reason })), el('td', {}, f(n)))));
  const link = $('rejections-csv');
  link.href = `/api/v1/imports/${rep.import_id}/rejections?lang=${encodeURIComponent(lang())}`;
  link.parentElement.hidden = rep.rejected_count === 0;
  $('rejections').hidden = rep.rejected_count === 0;
  const cols = rep.columns || [];
  $('rejections').tBodies[0].replaceChildren(...rep.rejected.slice(0, shownRejections).map((r) =>
    el('tr', {}, el('td', {}, String(r.line)), el('td', { class: 'reason' }, reasonWords(r)),
      el('td', { class: 'row-cells' }, (r.cells || []).map((v, i) => el('span', {}, cols[i] ? `${cols[i]}: ` : '', el('b', {}, v || '—')))))));
}
