import { cells, csrf, el, enhance, fill, live, number, onSearch } from './common.js';

const search = document.getElementById('search');
const result = document.getElementById('clients-result');

function since(seconds) {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function disconnectForm(client) {
  const form = el('form', { method: 'post', action: '/clients/disconnect', class: 'inline' },
    el('input', { type: 'hidden', name: 'csrf', value: csrf }),
    el('input', { type: 'hidden', name: 'client', value: client }),
    el('button', { type: 'submit', class: 'danger', text: 'Disconnect' }));
  enhance(form, (answer) => {
    result.textContent = answer.ok ? answer.message : answer.error;
    result.classList.toggle('error', !answer.ok);
  });
  return form;
}

const socket = live({ page: 'clients', q: search.value }, (data) => {
  if (data.type !== 'clients') return;
  fill(document.querySelector('#client-list tbody'), data.sessions.map((s) => {
    const row = cells(s.user || '(anonymous)', s.protocol, s.encoding ? `${s.transport} (${s.encoding})` : s.transport,
      el('span', { title: s.channels.join('\n'), text: s.subscriptions ? `${s.subscriptions}: ${s.channels.slice(0, 3).join(', ')}${s.subscriptions > 3 ? ', …' : ''}` : '0' }),
      since(s.connected), number(s.received), el('code', { text: s.client }), disconnectForm(s.client));
    row.dataset.client = s.client;
    return row;
  }));
  document.getElementById('no-clients').hidden = data.sessions.length > 0;
  document.getElementById('client-count').textContent =
    data.total > data.sessions.length ? `${data.sessions.length} of ${number(data.total)}` : `${number(data.total)} connected`;
});
onSearch(search, (message) => socket.send(message));
