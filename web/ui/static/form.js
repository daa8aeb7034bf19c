// Forms for people: an error stands in red beside its field and is tied to it
// (aria-describedby), so a screen reader reads it with the field; a question
// before anything that cannot be undone; plurals in the page's language.
import { el } from './api.js';
import { t, lang } from './i18n.js';

/** setError shows msg beside input and ties it to the field. */
export function setError(input, msg) {
  if (!input.id) input.id = 'f-' + Math.random().toString(36).slice(2, 9);
  const id = 'err-' + input.id;
  let span = document.getElementById(id);
  if (!span) {
    span = el('span', { class: 'field-error', id });
    // After the field's group (a number and its unit) or its label, so the
    // label's text and the group stay whole.
    const after = input.closest('.field-group') || input.closest('label') || input;
    after.insertAdjacentElement('afterend', span);
  }
  span.textContent = msg;
  input.setAttribute('aria-invalid', 'true');
  const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
  if (!ids.includes(id)) input.setAttribute('aria-describedby', [...ids, id].join(' '));
}

/** clearErrors removes every field error under root. */
export function clearErrors(root) {
  for (const span of root.querySelectorAll('.field-error')) span.remove();
  for (const input of root.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && !x.startsWith('err-'));
    if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
    else input.removeAttribute('aria-describedby');
  }
}

/** showErrors sets each [input, message] pair and focuses the first field. */
export function showErrors(root, errors) {
  clearErrors(root);
  for (const [input, msg] of errors) setError(input, msg);
  errors[0]?.[0].focus();
}

/**
 * showFileNames says beside each file picker (a .file-pick: a visually hidden
 * file input and the label that opens it) which file is chosen, or that none
 * is, in the page's language: Chromium's own control says "No file chosen" in
 * the browser's language, whatever the page's.
 */
export function showFileNames() {
  for (const input of document.querySelectorAll('.file-pick input[type=file]')) {
    input.parentElement.querySelector('.file-name').textContent = input.files?.[0]?.name || t('file.none');
  }
}
document.addEventListener('change', (e) => { if (e.target.matches?.('.file-pick input[type=file]')) showFileNames(); });

/** tn translates key in the plural form n takes: key.zero for 0 when given, else key.one, key.other… */
export function tn(key, n, vars = {}) {
  const v = { n: new Intl.NumberFormat(lang()).format(n), ...vars };
  // "nenhum contato", "no contacts": zero has words of its own where given.
  if (n === 0 && t(`${key}.zero`, v) !== `${key}.zero`) return t(`${key}.zero`, v);
  const form = new Intl.PluralRules(lang()).select(n);
  const k = `${key}.${form}`;
  const s = t(k, v);
  return s === k ? t(`${key}.other`, v) : s;
}

/**
 * confirmAction asks before an action that cannot be undone, in the page's
 * <dialog id="confirm">; it resolves true when the person confirms.
 */
export function confirmAction(title, text, yes) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-h').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-yes').textContent = yes;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'yes'), { once: true });
    dlg.showModal();
    document.getElementById('confirm-no').focus();
  });
}
