// Language choice and translation. The browser's languages choose between
// Portuguese (Brazil) and English; the header's switch overrides and is remembered.
import * as enAll from './i18n/en.js';
import * as ptBRAll from './i18n/pt-BR.js';

// The page's own dictionary (the do-not-call and users pages are the sales
// team's) over the shared one.
const pageStrings = { agent: 'agent', supervisor: 'supervisor', sales: 'sales', dnc: 'sales', users: 'sales' }[document.documentElement.dataset.page];
const forPage = (all) => ({ ...all.shared, ...(all.pages[pageStrings] || {}) });
const en = forPage(enAll);
const dictionaries = { en, 'pt-BR': forPage(ptBRAll) };
const storageKey = 'turbina.lang';

function stored() {
  try { return localStorage.getItem(storageKey) || 'auto'; } catch { return 'auto'; }
}

function fromBrowser() {
  for (const l of navigator.languages || [navigator.language || 'en']) {
    if (l.toLowerCase().startsWith('pt')) return 'pt-BR';
    if (l.toLowerCase().startsWith('en')) return 'en';
  }
  return 'en';
}

let current = stored() === 'auto' ? fromBrowser() : stored();
if (!dictionaries[current]) current = 'en';

/** The language in use: "en" or "pt-BR". */
export function lang() { return current; }

/** t translates key, filling {name} placeholders from vars. */
export function t(key, vars = {}) {
  const s = dictionaries[current][key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** tn translates key for a count n: key.one, key.other… as the language's plural rules choose, with {n} filled in. */
export function tn(key, n, vars = {}) {
  // Zero reads as a plural in both languages ("0 disponíveis"), whatever CLDR says of pt.
  const form = n === 0 ? 'other' : new Intl.PluralRules(current).select(n);
  const has = (k) => k in dictionaries[current] || k in en;
  const k = has(`${key}.${form}`) ? `${key}.${form}` : `${key}.other`;
  return t(k, { n: fmt.num(n, 0), ...vars });
}

/** translate fills every [data-i18n] element's text and [data-i18n-attr] attributes under root. */
export function translate(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      el.setAttribute(attr, t(key));
    }
  }
}

/** Number and time formats of the language in use. */
export const fmt = {
  pct: (x) => new Intl.NumberFormat(current, { style: 'percent', maximumFractionDigits: 1 }).format(x || 0),
  num: (x, digits = 1) => new Intl.NumberFormat(current, { maximumFractionDigits: digits }).format(x || 0),
  time: (d) => new Date(d).toLocaleTimeString(current),
  hm: (d) => new Date(d).toLocaleTimeString(current, { hour: '2-digit', minute: '2-digit' }),
  dateTime: (d) => new Date(d).toLocaleString(current),
  duration: (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${two(m)}:${two(r)}`;
  },
};

/** setup translates the page and wires the language switch; onChange re-renders dynamic parts. */
export function setup(onChange = () => {}) {
  translate();
  const sel = document.getElementById('lang-switch');
  if (!sel) return;
  sel.value = stored();
  sel.addEventListener('change', () => {
    try { localStorage.setItem(storageKey, sel.value); } catch { /* private mode: this page only */ }
    current = sel.value === 'auto' ? fromBrowser() : sel.value;
    translate();
    onChange();
  });
}
