import { cells, el, fill, live, number } from './common.js';

live({ page: 'chat' }, (data) => {
  if (data.type !== 'rooms') return;
  const error = document.getElementById('rooms-error');
  error.hidden = !data.error;
  error.textContent = data.error ?? '';
  fill(document.querySelector('#room-list tbody'), data.rooms.map((r) => cells(
    el('a', { href: `/chat?room=${encodeURIComponent(r.id)}`, text: r.name }), number(r.members), number(r.messages), r.last)));
});
