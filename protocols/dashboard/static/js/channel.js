import { cells, el, fill, live, number } from './common.js';

const heading = document.getElementById('channel-name');
const { project, channel } = heading.dataset;
const feed = document.getElementById('live-publications');
const KEEP = 100;
let received = 0;

function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : '';
}

function error(id, text) {
  const node = document.getElementById(id);
  node.hidden = !text;
  node.textContent = text ?? '';
}

live({ page: 'channel', project, channel }, (data) => {
  if (data.type === 'publications') {
    for (const pub of data.items) {
      received += 1;
      feed.prepend(el('li', { dataset: { uid: pub.uid } }, el('time', { text: when(pub.timestamp) }), el('code', { text: pub.data })));
    }
    if (data.skipped) { received += data.skipped; feed.prepend(el('li', { class: 'skipped', text: `${data.skipped} more not shown` })); }
    while (feed.children.length > KEEP) feed.lastElementChild.remove();
    document.getElementById('live-count').textContent = number(received);
  } else if (data.type === 'channel') {
    const presence = data.presence;
    error('presence-error', presence.error);
    fill(document.querySelector('#presence tbody'), (presence.clients ?? []).map((c) => cells(c.user || '(anonymous)', c.client, c.info)));
    document.getElementById('presence-count').textContent = presence.error ? '' : `${number(presence.num_clients)} clients, ${number(presence.num_users)} users`;
    const history = data.history;
    error('history-error', history.error);
    fill(document.querySelector('#history tbody'), (history.publications ?? []).map((p) => cells(p.offset, when(p.timestamp), el('code', { text: p.data }))));
    document.getElementById('history-position').textContent = history.error ? '' : `offset ${history.offset}, epoch ${history.epoch}`;
  }
});
