import { el } from './common.js';

const actions = JSON.parse(document.getElementById('actions-data').textContent);
const byName = new Map(actions.map((a) => [a.name, a]));
const form = document.getElementById('action-form');
const argsBox = document.getElementById('action-args');

function select(name, push) {
  const action = byName.get(name);
  if (!action) return;
  document.getElementById('no-action').hidden = true;
  form.hidden = false;
  document.getElementById('action-name').textContent = name;
  document.getElementById('action-input').value = name;
  document.getElementById('action-doc').textContent = action.doc || '(no documentation)';
  document.getElementById('action-result').textContent = '';
  form.elements.args.value = '';
  argsBox.replaceChildren(...Object.entries(action.args).map(([arg, spec]) => el('label', {},
    el('span', { class: 'arg', text: arg }),
    el('span', { class: 'type', text: `${spec.type}${spec.required ? ', required' : `, default ${JSON.stringify(spec.default)}`}` }),
    el('input', { name: `arg.${arg}`, required: spec.required, placeholder: spec.required ? 'JSON or text' : JSON.stringify(spec.default), autocomplete: 'off' }))));
  for (const link of document.querySelectorAll('#action-list a')) {
    if (link.dataset.action === name) link.setAttribute('aria-current', 'true'); else link.removeAttribute('aria-current');
  }
  if (push) history.replaceState(null, '', `/actions?action=${encodeURIComponent(name)}`);
}

document.getElementById('action-list').addEventListener('click', (event) => {
  const link = event.target.closest('a[data-action]');
  if (!link) return;
  event.preventDefault();
  select(link.dataset.action, true);
});

document.getElementById('action-filter').addEventListener('input', (event) => {
  const text = event.target.value.toLowerCase();
  for (const item of document.querySelectorAll('#action-list li')) {
    item.hidden = !item.textContent.toLowerCase().includes(text);
  }
});

const selected = document.getElementById('action-input').value;
if (selected) select(selected, false);
