// Agent softphone: campaigns, ready and pause, the browser audio leg (WebRTC, nailed
// up across calls), the screen-pop, hang-up and the disposition form.
import { api, el } from './api.js';
import { setup, t, fmt } from './i18n.js';

const $ = (id) => document.getElementById(id);
let agent = { state: 'logged_out', campaign_ids: [] };
let pop = null; // the current or last call's screen-pop
let preview = null; // the contact offered to this agent in a preview campaign, before any call
let ws = null;
// session is the campaigns of the agent's session while the server says it is
// logged in; the agent's own log-out ends it. A new event stream that finds the
// agent logged out while it is set reached a server that lost the session (the
// campaign moved to another node, or the node restarted): the page logs in
// again there, paused.
let session = null;
// moving is set when the server ended the stream because the agent's campaign
// moved to another node (close code 1012): the log-out the old node sends then
// is not the agent's own, and the session is taken up where the page lands.
let moving = false;
let streams = 0; // the event streams opened so far
let audio = { pc: null, stream: null, unsupported: false, waiting: null };
// phones maps the contacts' E.164 numbers to their national form, as the server
// wrote them in the screen-pops and previews.
const phones = {};
const phone = (n) => (n ? phones[n] || n : '');

setup(() => { renderCallbacks(); renderState(); if (pop) renderPop(pop); else if (preview) renderPreview(preview); renderSkipReasons(); renderAudio(audio.statusKey || 'audio.disconnected'); renderNotice(); });
init();

async function init() {
  const me = await api('GET', '/api/v1/me');
  if (me.user.role !== 'agent') {
    // Only an agent has a session to take calls in (an admin may look at the
    // page): say so, rather than knock for ever on the agents' event stream.
    $('agent-status').className = 'note';
    $('agent-status').dataset.i18n = 'agent.not_an_agent';
    $('agent-status').textContent = t('agent.not_an_agent');
    $('agent-status').hidden = false;
    for (const b of document.querySelectorAll('main button')) b.disabled = true;
    return;
  }
  const ids = me.campaign_ids || [];
  const list = (await api('GET', '/api/v1/campaigns')).campaigns.filter((c) => ids.includes(c.id));
  const box = $('campaign-list');
  if (!list.length) box.append(el('p', { dataset: { i18n: 'agent.nocampaigns' } }, t('agent.nocampaigns')));
  for (const c of list) {
    box.append(el('label', { class: 'inline' }, el('input', { type: 'checkbox', value: c.id, checked: true, name: 'campaign' }), ' ', c.name));
  }
  connect();
  setInterval(tick, 1000);
  loadCallbacks();
  setInterval(loadCallbacks, 60000);
}

// ---- my callbacks: the ones this agent asked for, soonest first ----

let callbacks = [];

async function loadCallbacks() {
  try { callbacks = (await api('GET', '/api/v1/agent/callbacks')).callbacks; } catch { return; }
  renderCallbacks();
}

function renderCallbacks() {
  $('cb-none').hidden = callbacks.length > 0;
  $('cb-list').hidden = callbacks.length === 0;
  $('cb-list').tBodies[0].replaceChildren(...callbacks.map((cb) => el('tr', { dataset: { contact: cb.contact_id } },
    el('td', {}, el('time', { datetime: cb.at }, fmt.dateTime(cb.at))),
    el('td', {}, [cb.name, cb.phone_display || cb.phone].filter(Boolean).join(' — '), cb.mine ? ` (${t('cb.mine')})` : ''),
    el('td', {}, cb.campaign_name))));
}

// renderScript shows the campaign's script with the contact's fields in its
// {{field}} placeholders; a placeholder with no such field stays as written, for
// the agent to see what is missing. Text only: a contact's data is never HTML.
function renderScript(p) {
  const c = p.contact;
  const fields = { ...(c.attributes || {}), name: c.name || '', phone: phone(c.phone), whatsapp: phone(c.whatsapp || c.phone), campaign: p.campaign_name };
  $('script-box').hidden = !p.script;
  $('script').textContent = (p.script || '').replace(/\{\{\s*([^{}\s]+)\s*\}\}/g, (m, k) => (Object.hasOwn(fields, k) ? fields[k] : m));
}

function fail(e) {
  const p = $('agent-status');
  p.className = 'error';
  p.dataset.code = e?.code || '';
  p.hidden = !e;
  p.textContent = e ? (e.code === 'policy_refused' ? refusalText(e.reasons, e.nextAllowedAt)
    : e.code === 'no_audio' || e.code === 'connection_lost' ? t('presence.' + e.code)
      : e.code === 'callback_time' || e.code === 'notes_too_long' ? t('dispo.' + e.code) : errorText(e)) : '';
  p.dataset.reasons = e?.reasons?.join(' ') || '';
}

// errorText says what went wrong in the page's language: the server's message
// is English, so its code is translated; a message of the page itself (no
// code) is shown as it is.
function errorText(e) {
  if (e instanceof TypeError) return t('error.network'); // fetch could not reach the server
  if (!e.code) return e.message || String(e);
  const key = 'error.' + e.code;
  const s = t(key);
  return s === key ? t('error.other', { code: e.code }) : s;
}

// note shows a message that is not an error (a call ended, a disposition saved).
function note(text) {
  const p = $('agent-status');
  p.className = 'note';
  p.dataset.code = '';
  p.hidden = false;
  p.textContent = text;
}

// clearError takes an error away, leaving a note the events wrote meanwhile
// (the call's end, told while the hang-up request was on its way).
function clearError() {
  if ($('agent-status').className === 'error') fail(null);
}

// outcomeText names an attempt's outcome (or state) in words.
const outcomeText = (o) => (o ? t('outcome.' + o) : '');

// refusalText says, in the page's language, why the policy gate refused an action
// and from when it would be allowed.
function refusalText(reasons, nextAllowedAt) {
  let s = t('policy.refused', { reasons: (reasons || []).map((r) => t('policy.' + r)).join(', ') });
  if (nextAllowedAt) s += ' ' + t('policy.next', { at: fmt.dateTime(nextAllowedAt) });
  return s;
}

async function call(method, path, body) {
  try {
    const a = await api(method, path, body);
    clearError();
    if (a && a.state) setAgent(a);
    return a;
  } catch (e) { fail(e); return null; }
}

// ---- events ----

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  ws = new WebSocket(`${proto}//${location.host}/api/v1/agent/events`);
  // The first state of a stream that replaces one may take the session up
  // (not the page's first stream's: it may come after the agent's first login
  // was answered).
  let resumable = streams++ > 0;
  // A new socket: the notice of a draining server is back only if this one drains too.
  ws.onopen = () => { fail(null); $('draining').hidden = true; $('draining').textContent = t('agent.draining'); };
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    switch (ev.type) {
      case 'state':
        if (resumable && ev.agent.state === 'logged_out' && session) {
          resumable = false;
          login(session).then((a) => { if (a) { moving = false; note(t('agent.moved')); } });
          break;
        }
        resumable = false;
        setAgent(ev.agent);
        // A reloaded page (or one back from a lost connection) of an agent still
        // logged in brings its audio back: the session resumes.
        if (ev.agent.state !== 'logged_out' && !audio.pc && !audio.unsupported && !audio.gaveUp) connectAudio();
        break;
      case 'audio_path': sendOn(ev.audio_path || 0); break;
      case 'screen_pop':
        Object.assign(phones, ev.phones);
        preview = null; $('preview').hidden = true; pop = ev.screen_pop; resumeNotice(''); renderPop(pop); announce(pop);
        break;
      case 'resuming': case 'resumed': case 'resume_failed': resumeNotice(ev.type); break;
      case 'preview': Object.assign(phones, ev.phones); showPreview(ev.preview); break;
      case 'preview_ended': previewEnded(ev); break;
      case 'call_ended': callEnded(ev); break;
      // The server drains before it stops: no new call comes; once the call
      // and its wrap-up are done, it says reconnect and closes the socket.
      case 'draining': $('draining').hidden = false; break;
      case 'reconnect': $('draining').textContent = t('agent.reconnecting'); break;
      case 'webrtc_answer': answered(ev.sdp); break;
      case 'error':
        if (audio.waiting && ev.code === 'webrtc_failed') audioFailed(/not configured|no agent media/i.test(ev.message) ? 'audio.noserver' : 'audio.failed');
        else fail({ code: ev.code, message: ev.message });
        break;
    }
  };
  ws.onclose = (e) => {
    // The server ends this page's audio with its socket: a new one is offered
    // once the socket is back.
    if (audio.pc && !audio.waiting) { audio.pc.close(); audio.pc = null; renderAudio('audio.disconnected'); }
    // A server without browser audio refuses the offer (policy violation): say so
    // plainly and keep the session's events coming on a new connection.
    if (audio.waiting && e.code === 1008) { audio.unsupported = true; audioFailed('audio.noserver'); }
    else if (audio.waiting) audioFailed('audio.failed');
    ws = null;
    // 1012 (service restart): a draining server let this page go, or the
    // agent's campaign moved to another node; the next socket is served where
    // it runs now, once the node reached has read the move (its view of the
    // leases is a second old at most), and its events say so.
    const restart = e.code === 1012;
    if (restart) { moving = true; $('draining').hidden = false; $('draining').textContent = t('agent.reconnecting'); }
    else if (e.code !== 1008) fail({ message: t('agent.disconnected') });
    setTimeout(connect, e.code === 1008 ? 100 : restart ? 1500 : 1000);
  };
}

// ---- state ----

// setAgent takes a newer state. An API answer can arrive after the events that
// followed it (a call connects the moment the agent is ready), so the older of the
// two must not win.
function setAgent(a) {
  if (agent.since && a.since && new Date(a.since) < new Date(agent.since)) return;
  agent = a;
  if (a.state !== 'logged_out') session = a.campaign_ids;
  else if (!moving) session = null;
  renderState();
}

function renderState() {
  const s = $('state');
  s.dataset.state = agent.state;
  s.textContent = t('agentstate.' + agent.state);
  $('state-reason').textContent = agent.reason ? `(${t('reason.' + agent.reason)})` : '';
  const st = agent.state;
  // Paused because the page or its audio went away: why, and how to come back.
  const away = st === 'paused' && ['connection_lost', 'no_audio', 'reconnected'].includes(agent.reason);
  $('presence-hint').hidden = !away;
  $('presence-hint').className = agent.reason === 'reconnected' ? 'note' : 'error';
  $('presence-hint').textContent = away ? t('presence.hint.' + agent.reason) : '';
  renderTitle();
  const inSession = st !== 'logged_out';
  $('ready').disabled = !(st === 'paused');
  $('pause').disabled = !(st === 'ready' || st === 'paused');
  $('agent-logout').disabled = !inSession;
  // A preview call ringing (the agent reserved for it) may be hung up too.
  $('hangup').disabled = !(st === 'on_call' || (st === 'reserved' && $('preview').dataset.dialing === '1'));
  $('dispo').hidden = st !== 'wrap_up';
  if (st === 'wrap_up') $('hangup').hidden = true;
  if (st === 'wrap_up' && pop) renderDispo(pop);
  if (st === 'ready' && preview) renderPreview(preview);
  else if (st === 'ready' || st === 'paused' || st === 'logged_out') {
    preview = null;
    $('preview').hidden = true;
    $('screen-pop').hidden = true;
    $('no-call').hidden = false;
  }
  tick();
}

// renderTitle marks the tab while a call is on (or being wrapped up), so that an
// agent on another tab sees it.
function renderTitle() {
  const busy = ['reserved', 'on_call', 'wrap_up'].includes(agent.state) && (pop || agent.state !== 'wrap_up');
  document.title = busy ? `● ${t('call.title')} — Turbina` : t('title.agent');
}

// announce tells the agent a call arrived: a short tone, the tab's title, a
// notification when the browser allows them, and the focus on Hang up. A
// screen-pop sent again (a reload, a reconnect) is not announced twice.
function announce(p) {
  renderTitle();
  $('hangup').focus();
  const key = 'turbina.announced';
  let seen = '';
  try { seen = sessionStorage.getItem(key) || ''; sessionStorage.setItem(key, p.attempt_id); } catch { /* private mode */ }
  if (seen === String(p.attempt_id)) return;
  tone();
  if ('Notification' in window && Notification.permission === 'granted') {
    try {
      new Notification(t('call.notify', { campaign: p.campaign_name }), { body: [p.contact.name, phone(p.contact.phone)].filter(Boolean).join(' — '), tag: 'turbina-call' });
    } catch { /* some browsers allow notifications from service workers only */ }
  }
}

// tone plays two short beeps, generated: no sound file to load.
function tone() {
  try {
    const ctx = new AudioContext();
    const gain = ctx.createGain();
    gain.gain.value = 0.15;
    gain.connect(ctx.destination);
    [[880, 0], [660, 0.2]].forEach(([hz, at]) => {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(gain);
      o.start(ctx.currentTime + at);
      o.stop(ctx.currentTime + at + 0.15);
    });
    setTimeout(() => ctx.close(), 1000);
  } catch { /* no audio output */ }
}

function tick() {
  $('state-time').textContent = agent.since && agent.state !== 'logged_out'
    ? fmt.duration((Date.now() - new Date(agent.since)) / 1000) : '';
}

$('agent-login').addEventListener('click', () => {
  const ids = [...document.querySelectorAll('input[name="campaign"]:checked')].map((i) => i.value);
  // Asked on the agent's click, as browsers want: calls are announced with it.
  if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
  login(ids);
});

// login logs the agent in to campaigns ids with the browser's audio, and
// connects the audio.
async function login(ids) {
  audio.gaveUp = false;
  const a = await call('POST', '/api/v1/agent/login', { campaign_ids: ids, audio: 'webrtc' });
  if (a && !audio.pc && !audio.unsupported) connectAudio();
  return a;
}
$('ready').addEventListener('click', () => call('POST', '/api/v1/agent/ready', {}));
$('pause').addEventListener('click', () => call('POST', '/api/v1/agent/pause', { reason: $('pause-reason').value }));
$('agent-logout').addEventListener('click', () => { moving = false; session = null; call('POST', '/api/v1/agent/logout', {}); });
$('hangup').addEventListener('click', () => call('POST', '/api/v1/agent/hangup', {}));

// ---- screen-pop and disposition ----

function renderPop(p) {
  renderContact(p);
  $('hangup').hidden = agent.state === 'wrap_up'; // nothing left to hang up
  $('call-connected').textContent = fmt.time(p.connected_at);
  renderDispo(p);
  loadThread(p.contact.id);
}

// renderContact shows who the contact is and what happened before: a call's
// screen-pop, or a preview before the call.
function renderContact(p) {
  $('no-call').hidden = true;
  $('screen-pop').hidden = false;
  const c = p.contact;
  $('contact-name').textContent = c.name || phone(c.phone);
  $('contact-phone').textContent = phone(c.phone);
  $('contact-whatsapp').textContent = phone(c.whatsapp || c.phone);
  $('call-campaign').textContent = p.campaign_name;
  // The contact's own call (inbound) is said so: the agent answers a caller.
  $('call-channel').textContent = t((p.direction === 'inbound' ? 'call.inbound.' : 'channel.') + p.channel);
  $('call-channel').dataset.direction = p.direction || '';
  renderScript(p);
  const label = (code) => (p.dispositions || []).find((d) => d.code === code)?.label || code;
  $('attributes').tBodies[0].replaceChildren(...Object.entries(c.attributes || {}).map(([k, v]) =>
    el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v))));
  $('history').tBodies[0].replaceChildren(...(p.history || []).map((a) => el('tr', {},
    el('td', {}, fmt.dateTime(a.created_at)), el('td', {}, t('channel.' + a.channel)),
    el('td', { dataset: { safeHarbour: a.safe_harbour || '', resumedFrom: a.resumed_from || '' } }, outcomeText(a.outcome || a.state) +
      (a.safe_harbour ? ` (${t('history.safeHarbour.' + a.safe_harbour)})` : '') +
      (a.resumed_from ? ` (${t('history.resumed')})` : a.hangup_by === 'trunk' ? ` (${t('history.dropped')})` : '')),
    el('td', {}, a.disposition ? label(a.disposition) : '', a.notes ? el('p', { class: 'notes' }, a.notes) : null))),
  ...(p.skips || []).map((k) => el('tr', { class: 'skip', dataset: { reason: k.reason } },
    el('td', {}, fmt.dateTime(k.at)), el('td', {}, '—'),
    el('td', {}, `${t('preview.skip_entry')}: ${t('skip.' + k.reason)}`), el('td', {}, k.note || ''))),
  // The actions the policy gate refused on the contact.
  ...(p.refusals || []).map((r) => el('tr', { class: 'refusal', dataset: { reasons: r.reasons.join(' ') } },
    el('td', {}, fmt.dateTime(r.at)), el('td', {}, t('action.' + r.action)),
    el('td', {}, refusalText(r.reasons, r.next_allowed_at)), el('td', {}, ''))));
}

// ---- preview: the next contact before the call, to call or skip ----

function showPreview(o) {
  preview = o || null;
  if (!preview) {
    $('preview').hidden = true;
    if (agent.state === 'ready') { $('screen-pop').hidden = true; $('no-call').hidden = false; $('no-call').textContent = t('preview.none'); }
    return;
  }
  pop = null;
  renderPreview(preview);
}

function renderPreview(o) {
  renderContact(o);
  $('call-connected').textContent = '—';
  const f = $('preview');
  f.hidden = false;
  f.dataset.dialing = '';
  f.dataset.contact = o.contact.id;
  $('hangup').hidden = true; // nothing to hang up until the agent calls
  $('preview-expires').textContent = fmt.time(o.expires_at);
  $('preview-expires').dateTime = o.expires_at;
  for (const id of ['preview-dial', 'preview-skip', 'skip-reason', 'skip-note']) $(id).disabled = false;
  renderSkipReasons();
  loadThread(o.contact.id);
}

function renderSkipReasons() {
  const sel = $('skip-reason');
  const keep = sel.value;
  const reasons = preview?.skip_reasons || ['not_now', 'missing_data', 'wrong_contact', 'other'];
  sel.replaceChildren(...reasons.map((r) => el('option', { value: r }, t('skip.' + r))));
  if (keep && reasons.includes(keep)) sel.value = keep;
}

function previewBusy(on) {
  for (const id of ['preview-dial', 'preview-skip', 'skip-reason', 'skip-note']) $(id).disabled = on;
}

$('preview').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!preview) return;
  const id = preview.contact.id;
  previewBusy(true);
  try {
    await api('POST', `/api/v1/agent/preview/${id}/dial`, {});
    fail(null);
    $('preview').dataset.dialing = '1';
    $('hangup').hidden = false;
    note(t('preview.calling'));
    renderState();
  } catch (err) {
    previewBusy(false);
    if (err.code === 'policy_refused') {
      const why = (err.detail.reasons || []).map((r) => t('policy.' + r)).join('; ');
      const at = err.detail.next_allowed_at ? ` (${t('preview.allowed_at')} ${fmt.dateTime(err.detail.next_allowed_at)})` : '';
      fail({ message: `${t('preview.refused')}: ${why}${at}` });
      $('agent-status').dataset.code = 'policy_refused';
      $('agent-status').dataset.reasons = (err.detail.reasons || []).join(' ');
    } else fail(err);
  }
});

$('preview-skip').addEventListener('click', async () => {
  if (!preview) return;
  const id = preview.contact.id;
  const reason = $('skip-reason').value;
  const note = $('skip-note').value.trim();
  if (reason === 'other' && !note) { fail({ message: t('preview.note') }); $('skip-note').focus(); return; }
  previewBusy(true);
  try {
    await api('POST', `/api/v1/agent/preview/${id}/skip`, { reason, note });
    note(t('preview.skipped'));
    $('skip-note').value = '';
    if (preview && preview.contact.id === id) showPreview(null);
  } catch (err) { previewBusy(false); fail(err); }
});

function previewEnded(ev) {
  $('preview').dataset.dialing = '';
  preview = null;
  $('preview').hidden = true;
  note(ev.outcome ? `${t('preview.not_connected')} (${outcomeText(ev.outcome)})` : t('preview.not_connected'));
}

// localInput renders an instant for a datetime-local input, in the browser's zone.
function localInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// ---- the contact's WhatsApp conversation ----

let threadContact = null;

async function loadThread(contactID) {
  threadContact = contactID;
  let conv;
  try { conv = await api('GET', `/api/v1/contacts/${contactID}/messages`); } catch (e) { fail(e); return; }
  if (threadContact !== contactID) return;
  const on = !!conv.whatsapp;
  $('wa-status').dataset.state = on ? 'on' : 'off';
  $('wa-status').textContent = on ? t('wa.configured') : t('wa.not_configured');
  for (const id of ['wa-template', 'wa-text', 'wa-send']) $(id).disabled = !on;
  $('wa-thread').replaceChildren(...conv.messages.map((m) => el('p', { class: 'msg ' + m.direction, dataset: { direction: m.direction } },
    el('time', {}, fmt.time(m.at)), ' ', m.type === 'template' ? `[${t('wa.template_sent')}: ${m.body}]` : m.type === 'call' ? `[${t('wa.call_in')}]` : (m.body || `[${m.type}]`))));
}

async function sendWhatsApp(body) {
  if (!threadContact) return;
  try {
    await api('POST', `/api/v1/contacts/${threadContact}/messages`, body);
    fail(null);
    $('wa-text').value = '';
  } catch (e) { fail(e); }
  loadThread(threadContact);
}

$('wa-send').addEventListener('click', () => { const text = $('wa-text').value.trim(); if (text) sendWhatsApp({ text }); });
$('wa-template').addEventListener('click', () => sendWhatsApp({ template: true }));
// The contact may write during the call or the wrap-up: the thread follows without a reload.
setInterval(() => { if (threadContact && !$('screen-pop').hidden) loadThread(threadContact); }, 3000);

function renderDispo(p) {
  const box = $('dispo-codes');
  const keep = box.querySelector('input:checked')?.value;
  box.replaceChildren(...(p.dispositions || []).map((d, i) => el('label', { class: 'inline' },
    el('input', { type: 'radio', name: 'code', value: d.code, id: `code-${d.code}`, required: i === 0, dataset: { callback: d.callback ? '1' : '' } }),
    ' ', i < 9 ? el('kbd', { 'aria-hidden': 'true' }, String(i + 1)) : null, ' ', d.label || d.code)));
  if (keep) { const r = box.querySelector(`input[value="${CSS.escape(keep)}"]`); if (r) r.checked = true; }
  box.onchange = () => {
    const cb = box.querySelector('input:checked')?.dataset.callback === '1';
    $('callback-fields').hidden = !cb;
    $('callback-at').required = cb;
  };
  restoreDraft(p.attempt_id);
}

// The disposition being filled in is kept for the tab, so that a reload in
// wrap-up gives it back as it was: the code, the callback time, the notes.
const draftKey = (id) => `turbina.dispo.${id}`;

function saveDraft() {
  if (!pop) return;
  const d = { code: $('dispo-codes').querySelector('input:checked')?.value || '', at: $('callback-at').value,
    same: $('same-agent').checked, notes: $('dispo-notes').value };
  try { sessionStorage.setItem(draftKey(pop.attempt_id), JSON.stringify(d)); } catch { /* private mode */ }
}

function restoreDraft(id) {
  let d = null;
  try { d = JSON.parse(sessionStorage.getItem(draftKey(id)) || 'null'); } catch { /* none */ }
  if (!d) return;
  const r = d.code && $('dispo-codes').querySelector(`input[value="${CSS.escape(d.code)}"]`);
  if (r) r.checked = true;
  if (!$('callback-at').value) $('callback-at').value = d.at || '';
  if (!$('dispo-notes').value) $('dispo-notes').value = d.notes || '';
  $('same-agent').checked = !!d.same;
  $('dispo-codes').onchange();
}

function dropDraft(id) {
  try { sessionStorage.removeItem(draftKey(id)); } catch { /* private mode */ }
}

$('dispo').addEventListener('input', saveDraft);
$('dispo').addEventListener('change', saveDraft);

// resumeNotice tells the agent how a call whose line dropped (its trunk died) is
// taken up on WhatsApp: calling back, back, or not reached. The screen-pop stays;
// the call goes on on WhatsApp. An empty kind clears the notice (a new call).
function resumeNotice(kind) {
  $('call-notice').dataset.notice = kind;
  if (kind === 'resumed' && pop) { pop.channel = 'whatsapp_call'; $('call-channel').textContent = t('channel.whatsapp_call'); }
  renderNotice();
}

function renderNotice() {
  const n = $('call-notice');
  const kind = n.dataset.notice || '';
  n.hidden = !kind;
  n.className = kind === 'resume_failed' ? 'error' : 'note';
  n.textContent = kind ? t('resume.' + kind) : '';
}

function callEnded() {
  $('hangup').disabled = true;
  note(t('call.ended'));
}

// callbackError says what is wrong with the callback time beside its field, or
// clears it (null).
function callbackError(text) {
  const p = $('callback-error');
  p.hidden = !text;
  p.textContent = text || '';
  $('callback-at').setAttribute('aria-invalid', text ? 'true' : 'false');
}

$('dispo').addEventListener('submit', async (e) => {
  e.preventDefault();
  const picked = $('dispo-codes').querySelector('input:checked');
  if (!picked) { fail({ message: t('dispo.pick') }); return; }
  const body = { code: picked.value };
  callbackError(null);
  if (picked.dataset.callback === '1') {
    const at = new Date($('callback-at').value);
    // A time to call back must be a time, and a future one.
    if (Number.isNaN(at.getTime()) || at <= new Date()) {
      const msg = t(Number.isNaN(at.getTime()) ? 'dispo.callback_missing' : 'dispo.callback_past');
      callbackError(msg);
      fail({ code: 'callback_time', message: msg });
      $('agent-status').textContent = msg;
      $('callback-at').focus();
      return;
    }
    body.callback_at = at.toISOString();
    body.same_agent = $('same-agent').checked;
  }
  const notes = $('dispo-notes').value.trim();
  if (notes) body.notes = notes;
  let a;
  try {
    a = await api('POST', '/api/v1/agent/disposition', body);
    fail(null);
    if (a && a.state) setAgent(a);
  } catch (err) {
    fail(err);
    if (err.code === 'callback_time' || err.code === 'policy_refused') callbackError($('agent-status').textContent);
    // A callback time the law does not allow: offer the first one it does.
    if (err.code === 'policy_refused' && err.nextAllowedAt && body.callback_at) $('callback-at').value = localInput(err.nextAllowedAt);
    return;
  }
  if (a) {
    note(t('dispo.saved'));
    if (pop) dropDraft(pop.attempt_id);
    pop = null;
    renderTitle();
    if (body.callback_at) loadCallbacks();
    $('dispo').reset();
    $('callback-fields').hidden = true;
  }
});

// ---- audio: one WebRTC session, negotiated once, kept up across calls ----

function renderAudio(key, state) {
  audio.statusKey = key;
  const s = $('audio-status');
  s.textContent = t(key);
  s.dataset.state = state || (key === 'audio.connected' ? 'connected' : key === 'audio.connecting' ? 'connecting' : 'disconnected');
  $('mute').disabled = !audio.stream;
}

function audioFailed(key) {
  clearTimeout(audio.waiting);
  audio.waiting = null;
  if (audio.pc) { audio.pc.close(); audio.pc = null; }
  renderAudio(key);
}

// connectAudio negotiates the page's audio once at a time: state events may ask
// for it again while it is being set up.
async function connectAudio() {
  if (audio.pc || audio.starting) return;
  audio.starting = true;
  try { await startAudio(); } finally { audio.starting = false; }
}

async function startAudio() {
  renderAudio('audio.connecting');
  try {
    if (!audio.stream) {
      audio.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      meter(audio.stream);
    }
  } catch {
    audio.gaveUp = true; // asked again by the button, not on every event
    renderAudio('audio.nomic');
    return;
  }
  if (audio.unsupported) { renderAudio('audio.noserver'); return; }
  const pc = new RTCPeerConnection({ iceServers: [] });
  audio.pc = pc;
  // Two paths share the microphone: the server answers the first with G.711 for
  // SIP customers and the second with Opus for WhatsApp customers, so neither is
  // transcoded. Where the browser can, each transceiver offers only its codec;
  // the server picks one per path either way.
  const codecs = RTCRtpReceiver.getCapabilities?.('audio')?.codecs || [];
  for (const mime of ['audio/pcmu', 'audio/opus']) {
    const tr = pc.addTransceiver(audio.stream.getAudioTracks()[0], { direction: 'sendrecv', streams: [audio.stream] });
    const only = codecs.filter((c) => c.mimeType.toLowerCase() === mime);
    try { if (only.length && tr.setCodecPreferences) tr.setCodecPreferences(only); } catch { /* the server still picks */ }
  }
  // One element and stream per path: whichever path carries the call is heard.
  pc.ontrack = (e) => {
    const opus = pc.getTransceivers().indexOf(e.transceiver) === 1;
    $(opus ? 'remote-audio-opus' : 'remote-audio').srcObject = new MediaStream([e.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'connected') renderAudio('audio.connected');
    else if (pc.connectionState === 'failed') audioFailed('audio.failed');
  };
  await pc.setLocalDescription(await pc.createOffer());
  // The offer announced the microphone on both paths; it is sent on one at a
  // time (half the upload on thin links): the PCMU one until a call says
  // otherwise (audio_path events).
  sendOn(0);
  // No trickle: the offer goes once every candidate is in it.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 3000);
  });
  if (!ws || ws.readyState !== WebSocket.OPEN) { audioFailed('audio.failed'); return; }
  ws.send(JSON.stringify({ type: 'webrtc_offer', sdp: pc.localDescription.sdp }));
  audio.waiting = setTimeout(() => audioFailed('audio.noserver'), 5000);
}

// sendOn moves the microphone to audio path i (a transceiver index), off the
// others; no renegotiation is needed. A path the server did not answer (one
// codec only) cannot carry it: the microphone stays where it is.
function sendOn(i) {
  const pc = audio.pc;
  const track = audio.stream?.getAudioTracks()[0];
  if (!pc || !track) return;
  const trs = pc.getTransceivers();
  // Before the answer currentDirection is null: every path may still be answered.
  const usable = (tr) => tr && [null, 'sendrecv', 'sendonly'].includes(tr.currentDirection);
  if (!usable(trs[i])) return;
  trs.forEach((tr, j) => { if (tr.currentDirection !== 'stopped') tr.sender.replaceTrack(j === i ? track : null).catch(() => {}); });
}

async function answered(sdp) {
  clearTimeout(audio.waiting);
  audio.waiting = null;
  if (!audio.pc) return;
  try {
    await audio.pc.setRemoteDescription({ type: 'answer', sdp });
  } catch {
    audioFailed('audio.failed');
  }
}

function meter(stream) {
  const ctx = new AudioContext();
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(an);
  const buf = new Float32Array(an.fftSize);
  const loop = () => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    $('level').value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
    requestAnimationFrame(loop);
  };
  loop();
}

$('audio-connect').addEventListener('click', () => {
  audio.unsupported = false;
  audio.gaveUp = false;
  // A session that is not carrying audio (closed, failed, lost by the server)
  // is replaced, not kept.
  if (audio.pc && !audio.waiting && !['new', 'connecting', 'connected'].includes(audio.pc.connectionState)) { audio.pc.close(); audio.pc = null; }
  connectAudio();
});
$('mute').addEventListener('click', () => {
  const track = audio.stream?.getAudioTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  $('mute').setAttribute('aria-pressed', String(!track.enabled));
  $('mute').textContent = t(track.enabled ? 'audio.mute' : 'audio.unmute');
});

// ---- keyboard shortcuts (listed on the page), never while typing ----

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  const tg = e.target;
  if (tg instanceof HTMLElement && (tg.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(tg.tagName)) &&
    !(tg instanceof HTMLInputElement && ['radio', 'checkbox', 'button', 'submit'].includes(tg.type))) return;
  const press = (id) => { const b = $(id); if (!b.disabled && !b.hidden) { b.click(); return true; } return false; };
  let done = false;
  switch (e.key.toLowerCase()) {
    case 'r': done = press('ready'); break;
    case 'p': done = press('pause'); break;
    case 'h': done = press('hangup'); break;
    case 'm': done = press('mute'); break;
    default:
      if (/^[1-9]$/.test(e.key) && !$('dispo').hidden) {
        const r = $('dispo-codes').querySelectorAll('input[name="code"]')[Number(e.key) - 1];
        if (r) {
          r.checked = true;
          r.dispatchEvent(new Event('change', { bubbles: true }));
          $('dispo-submit').focus(); // Enter saves it
          done = true;
        }
      }
  }
  if (done) e.preventDefault();
});
