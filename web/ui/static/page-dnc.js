// Do not call: search the company's list (or a campaign's), add numbers typed or
// from a file, and take one off with a reason the audit log keeps.
import { api, upload, el, ApiError } from './api.js';
import { setup, t, fmt } from './i18n.js';
import { showErrors, clearErrors, tn, showFileNames } from './form.js';

const $ = (id) => document.getElementById(id);
// Taking a number off is a supervisor's (README "API": do-not-call).
const role = document.documentElement.dataset.role;
const mayRemove = role === 'admin' || role === 'supervisor';
const pageSize = 100;
let entries = [];
let total = 0;
let campaigns = [];

setup(() => { scopes(); render(); showFileNames(); });
showFileNames();
init();

async function init() {
  campaigns = (await api('GET', '/api/v1/campaigns').catch(() => ({ campaigns: [] }))).campaigns;
  scopes();
  load(false);
}

function scopes() {
  const sel = $('dnc-scope');
  const keep = sel.value || '0';
  sel.replaceChildren(el('option', { value: '0' }, t('dnc.global')),
    ...campaigns.map((c) => el('option', { value: c.id }, t('dnc.campaignList', { name: c.name }))));
  sel.value = keep;
}

function query(extra = {}) {
  const q = new URLSearchParams(extra);
  if ($('dnc-scope').value !== '0') q.set('campaign_id', $('dnc-scope').value);
  return q;
}

async function load(more) {
  const q = query({ limit: pageSize, offset: more ? entries.length : 0 });
  const search = $('dnc-search').value.trim();
  if (search) q.set('search', search);
  try {
    const r = await api('GET', '/api/v1/dnc?' + q);
    entries = more ? entries.concat(r.entries) : r.entries;
    total = r.total;
    render();
  } catch (e) { $('dnc-count').textContent = message(e); }
}

// phoneWords shows a Brazilian number as people write it: (11) 98765-4321.
function phoneWords(e164) {
  const m = /^\+55(\d{2})(\d{4,5})(\d{4})$/.exec(e164);
  return m ? `(${m[1]}) ${m[2]}-${m[3]}` : e164;
}

function render() {
  const search = $('dnc-search').value.trim();
  $('dnc-count').textContent = search ? tn('dnc.found', total, { q: search }) : tn('dnc.count', total);
  $('dnc-list').tBodies[0].replaceChildren(...entries.map((x) => el('tr', { dataset: { phone: x.phone } },
    el('th', { scope: 'row' }, phoneWords(x.phone)),
    el('td', {}, x.reason || '—'),
    el('td', {}, fmt.dateTime(x.created_at)),
    el('td', {}, mayRemove ? el('button', { type: 'button', class: 'danger-outline', onclick: () => remove(x), 'aria-label': t('dnc.removeN', { phone: phoneWords(x.phone) }) }, t('dnc.remove')) : null))));
  $('dnc-more').hidden = entries.length >= total;
}

function message(e) {
  if (!(e instanceof ApiError)) return t('error.network');
  if (e.detail.reason) return t('upload.failed', { msg: t('upload.err.' + e.detail.reason) });
  const k = 'error.' + e.code;
  return t(k) === k ? t('error.other', { code: e.code }) : t(k);
}

function showResult(r) {
  $('dnc-status').textContent = tn('dnc.added', r.added) + (r.rejected.length ? ' ' + tn('dnc.rejected', r.rejected.length) : '');
  $('dnc-rejected').replaceChildren(...r.rejected.slice(0, 50).map((x) =>
    el('li', {}, x.line ? t('dnc.line', { n: x.line }) : x.phone, ': ', t('reject.' + x.reason))));
  load(false);
}

$('search-form').addEventListener('submit', (e) => { e.preventDefault(); load(false); });
$('dnc-scope').addEventListener('change', () => load(false));
$('dnc-more').addEventListener('click', () => load(true));

$('add-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const phones = $('dnc-phones').value.split(/[\n;,]+/).map((s) => s.trim()).filter(Boolean);
  if (phones.length === 0) { showErrors($('add-form'), [[$('dnc-phones'), t('err.required')]]); return; }
  clearErrors($('add-form'));
  const body = { phones, reason: $('dnc-reason').value.trim() };
  if ($('dnc-scope').value !== '0') body.campaign_id = $('dnc-scope').value;
  try {
    showResult(await api('POST', '/api/v1/dnc', body));
    $('dnc-phones').value = '';
  } catch (err) { $('dnc-status').textContent = message(err); }
});

$('dnc-file').addEventListener('change', async () => {
  const file = $('dnc-file').files[0];
  if (!file) return;
  const q = query();
  if ($('dnc-reason').value.trim()) q.set('reason', $('dnc-reason').value.trim());
  $('dnc-status').textContent = t('dnc.importing', { name: file.name });
  try {
    showResult(await upload('/api/v1/dnc?' + q, file, () => {}));
  } catch (err) { $('dnc-status').textContent = message(err); }
  $('dnc-file').value = '';
  showFileNames();
});

// remove asks why, then takes the number off; the reason goes to the audit log.
function remove(x) {
  const dlg = $('remove-dlg');
  $('remove-h').textContent = t('dnc.removeTitle', { phone: phoneWords(x.phone) });
  $('remove-reason').value = '';
  clearErrors($('remove-form'));
  dlg.returnValue = '';
  const onSubmit = (ev) => {
    if (ev.submitter?.value === 'yes' && !$('remove-reason').value.trim()) {
      ev.preventDefault();
      showErrors($('remove-form'), [[$('remove-reason'), t('dnc.reasonRequired')]]);
    }
  };
  $('remove-form').addEventListener('submit', onSubmit);
  dlg.addEventListener('close', async () => {
    $('remove-form').removeEventListener('submit', onSubmit);
    if (dlg.returnValue !== 'yes') return;
    const q = query({ reason: $('remove-reason').value.trim() });
    try {
      await api('DELETE', `/api/v1/dnc/${encodeURIComponent(x.phone)}?${q}`);
      $('dnc-status').textContent = t('dnc.removed', { phone: phoneWords(x.phone) });
      load(false);
    } catch (err) { $('dnc-status').textContent = message(err); }
  }, { once: true });
  dlg.showModal();
  $('remove-reason').focus();
}
