// Calls to Turbina's API with the session cookie. Every state-changing call carries
// the page's CSRF token in a header, which other sites cannot read or send.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';

/** ApiError is a refused call, with the API's error code. */
export class ApiError extends Error {
  constructor(status, code, message, detail, data) {
    super(message); this.status = status; this.code = code; this.detail = detail || {};
    // A refusal of the policy gate says why and from when the action is allowed.
    this.reasons = data?.reasons || detail?.reasons || []; this.nextAllowedAt = data?.next_allowed_at || detail?.next_allowed_at || null;
  }
}

/** api makes one JSON call and returns the decoded answer (null for 204). */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    // The session ended: sign in again and come back here.
    location.assign('/?next=' + encodeURIComponent(location.pathname));
    throw new ApiError(401, 'unauthorized', 'signed out');
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data?.error || {};
    throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || res.statusText, e, data);
  }
  return data;
}

/** upload posts a file with progress reports, as fetch cannot report upload progress. */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.setRequestHeader('Content-Type', 'text/csv');
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.upload.onload = () => onProgress(1, true);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
      const e = xhr.response?.error || {};
      reject(new ApiError(xhr.status, e.code || 'http_' + xhr.status, e.message || xhr.statusText, e));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'network error'));
    xhr.send(file);
  });
}

/** el builds an element: el('td', {class: 'x'}, 'text', child…). Text is never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// labelCells names each cell's column on it (data-label), for the phone layout where a
// table's rows become blocks and its header is hidden.
export function labelCells(table) {
  const heads = [...table.tHead.rows[0].cells].map((th) => th.textContent);
  for (const tr of table.tBodies[0].rows) [...tr.cells].forEach((td, i) => { if (heads[i] && td.colSpan === 1) td.dataset.label = heads[i]; });
}
