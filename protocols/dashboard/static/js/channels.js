import { cells, el, fill, live, number, onSearch } from './common.js';

const project = document.getElementById('project').value;
const search = document.getElementById('search');

const socket = live({ page: 'channels', project, q: search.value }, (data) => {
  if (data.type !== 'channels') return;
  const link = (name) => el('a', { href: `/channels?project=${encodeURIComponent(project)}&channel=${encodeURIComponent(name)}`, text: name });
  fill(document.querySelector('#channel-list tbody'), data.channels.map((c) => cells(link(c.name), number(c.subscribers))));
  document.getElementById('no-channels').hidden = data.channels.length > 0;
  document.getElementById('channel-count').textContent =
    data.total > data.channels.length ? `${data.channels.length} of ${number(data.total)}` : `${number(data.total)} active`;
});
onSearch(search, (message) => socket.send(message));
