// Users and roles, for admins: who may sign in, with which role.
import { api, el, ApiError } from './api.js';
import { setup, t } from './i18n.js';
import { showErrors, clearErrors, confirmAction } from './form.js';

const $ = (id) => document.getElementById(id);
const roles = ['agent', 'sales', 'supervisor', 'admin'];
let users = [];
let me = null; // the admin using the page, who must not lock themselves out

setup(render);
load();

async function load() {
  try {
    if (!me) me = (await api('GET', '/api/v1/me')).user;
    users = (await api('GET', '/api/v1/users')).users;
    render();
  } catch (e) { $('users-status').textContent = message(e); }
}

function message(e) {
  if (!(e instanceof ApiError)) return t('error.network');
  const k = 'error.' + e.code;
  return t(k) === k ? t('error.other', { code: e.code }) : t(k);
}

function render() {
  $('users').tBodies[0].replaceChildren(...users.map((u) => {
    const sel = el('select', { class: 'u-role', 'aria-label': t('users.roleOf', { name: u.username }) },
      roles.map((r) => { const o = el('option', { value: r }, t('role.' + r)); o.selected = r === u.role; return o; }));
    sel.addEventListener('change', () => change(u, { role: sel.value }, sel));
    const self = u.id === me?.id;
    sel.disabled = self;
    const access = el('button', { type: 'button', class: u.disabled ? '' : 'danger-outline',
      'aria-label': t(u.disabled ? 'users.enableN' : 'users.disableN', { name: u.username }) }, t(u.disabled ? 'users.enable' : 'users.disable'));
    access.disabled = self;
    if (self) access.title = t('users.self');
    access.addEventListener('click', async () => {
      if (!u.disabled && !await confirmAction(t('users.disableTitle', { name: u.username }), t('users.disableText'), t('users.disable'))) return;
      change(u, { disabled: !u.disabled });
    });
    return el('tr', { dataset: { id: u.id, disabled: String(u.disabled) } },
      el('th', { scope: 'row' }, u.username), el('td', {}, u.display_name || '—'), el('td', {}, sel),
      el('td', {}, el('span', { class: 'badge', 'data-state': u.disabled ? 'off' : 'ready' }, t(u.disabled ? 'users.disabled' : 'users.active')), ' ', access));
  }));
}

async function change(u, body, sel) {
  try {
    await api('PATCH', `/api/v1/users/${u.id}`, body);
    $('users-status').textContent = t('users.saved', { name: u.username });
    load();
  } catch (e) {
    $('users-status').textContent = message(e);
    if (sel) sel.value = u.role;
  }
}

$('user-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const errors = [];
  const username = $('u-username').value.trim();
  if (!/^[a-zA-Z0-9._@-]{2,64}$/.test(username)) errors.push([$('u-username'), t('users.err.username')]);
  const password = $('u-password').value;
  if (password && [...password].length < 10) errors.push([$('u-password'), t('users.err.password')]);
  if (errors.length) { showErrors($('user-form'), errors); return; }
  clearErrors($('user-form'));
  const body = { username, display_name: $('u-name').value.trim(), role: $('u-role').value };
  if (password) body.password = password;
  try {
    await api('POST', '/api/v1/users', body);
    $('user-form-status').textContent = t('users.created', { name: username });
    $('user-form').reset();
    load();
  } catch (err) {
    const fields = err instanceof ApiError ? err.detail.fields : null;
    if (fields) {
      showErrors($('user-form'), Object.keys(fields).map((k) => [{ username: $('u-username'), password: $('u-password'), role: $('u-role') }[k] || $('u-create'), t('users.err.' + k)]));
    } else if (err instanceof ApiError && err.code === 'conflict') {
      showErrors($('user-form'), [[$('u-username'), t('users.err.taken')]]);
    } else {
      $('user-form-status').textContent = message(err);
    }
  }
});
