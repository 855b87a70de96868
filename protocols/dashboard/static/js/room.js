import { el, live } from './common.js';

const room = document.getElementById('room-name').dataset.room;
const list = document.getElementById('messages');
const KEEP = 500;

function show(m) {
  if (m.id && list.querySelector(`li[data-id="${CSS.escape(m.id)}"]`)) return;
  list.append(el('li', { dataset: { id: m.id ?? '' } }, el('span', { class: 'who', text: m.user }), el('time', { text: m.ts }), el('p', { text: m.text })));
  while (list.children.length > KEEP) list.firstElementChild.remove();
  list.lastElementChild.scrollIntoView({ block: 'nearest' });
}

live({ page: 'room', room }, (data) => {
  if (data.type !== 'messages') return;
  data.messages.forEach(show);
  if (data.skipped) list.append(el('li', { class: 'skipped', text: `${data.skipped} more messages not shown` }));
});
