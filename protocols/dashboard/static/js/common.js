// Shared by every page: element helper, the page's one live websocket, and forms posted in place.

export const csrf = document.querySelector('meta[name="csrf"]')?.content ?? '';

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

export function cells(...values) {
  return el('tr', {}, ...values.map((v) => (v instanceof Node ? el('td', {}, v) : el('td', { text: String(v ?? '') }))));
}

export function number(n) {
  return typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: 1 }) : String(n ?? '');
}

// One websocket per page: `/ws?page=...`; reconnects with a growing pause while the page stays open.
export function live(params, onMessage) {
  const state = document.getElementById('live-state');
  const query = new URLSearchParams(params).toString();
  let socket = null;
  let pause = 500;
  let closing = false;
  const connect = () => {
    socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?${query}`);
    socket.addEventListener('open', () => {
      pause = 500;
      if (state) { state.textContent = 'live'; state.classList.add('on'); }
    });
    socket.addEventListener('message', (event) => onMessage(JSON.parse(event.data)));
    socket.addEventListener('close', (event) => {
      if (state) { state.textContent = 'offline'; state.classList.remove('on'); }
      if (closing) return;
      if (event.code === 1008 || event.code === 4401) { location.reload(); return; }
      setTimeout(connect, pause);
      pause = Math.min(pause * 2, 10000);
    });
  };
  window.addEventListener('pagehide', () => { closing = true; socket?.close(1000); });
  connect();
  return {
    send(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    },
  };
}

export function showResult(output, result) {
  if (!output) return;
  output.classList.toggle('error', !result.ok);
  output.classList.toggle('ok', !!result.ok);
  if (!result.ok) {
    output.textContent = result.error ?? 'failed';
  } else if (result.result !== undefined && !result.message) {
    output.replaceChildren(el('pre', { text: JSON.stringify(result.result, null, 2) }));
  } else {
    output.textContent = result.message ?? 'done';
  }
}

// Forms marked data-enhance are posted with fetch and answered in place (they still work without scripts).
export async function post(form, submitter) {
  const body = new URLSearchParams(new FormData(form, submitter));
  const response = await fetch(form.getAttribute('action'), {  // not form.action: a field may be named so
    method: 'POST', body, credentials: 'same-origin', headers: { Accept: 'application/json' },
  });
  if (response.status === 401) { location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`); return null; }
  const type = response.headers.get('Content-Type') ?? '';
  return type.includes('application/json') ? response.json() : { ok: false, error: `HTTP ${response.status}` };
}

export function enhance(form, after) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const output = form.querySelector('[data-result]');
    const button = event.submitter;
    if (button) button.disabled = true;
    try {
      const result = await post(form, button);
      if (result) { showResult(output, result); if (after) after(result, form); }
    } catch (error) {
      showResult(output, { ok: false, error: String(error) });
    } finally {
      if (button) button.disabled = false;
    }
  });
}

export function onSearch(input, send) {
  let timer = null;
  input?.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => send({ q: input.value }), 200);
  });
  input?.form?.addEventListener('submit', (event) => { event.preventDefault(); send({ q: input.value }); });
}

for (const form of document.querySelectorAll('form[data-enhance]')) {
  if (!form.dataset.custom) enhance(form, (result) => {
    const text = document.getElementById('config-text');
    if (text && result.text) text.textContent = result.text;
  });
}
