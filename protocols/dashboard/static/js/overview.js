import { cells, fill, live, number } from './common.js';
import { RateChart } from './chart.js';

const chart = new RateChart(document.getElementById('rate-chart'), document.getElementById('chart-scale'));
const set = (id, value) => { document.getElementById(id).textContent = value; };

live({ page: 'overview' }, (data) => {
  if (data.type !== 'overview') return;
  const t = data.total;
  set('connections', number(t.sessions));
  set('subscriptions', number(t.subscriptions));
  set('channels', number(t.channels));
  set('publications-rate', number(t.publications_per_s));
  set('deliveries-rate', number(t.deliveries_per_s));
  set('dropped', number(t.messages_dropped));
  set('slow-disconnects', number(t.slow_disconnects));
  set('uptime', `${number(t.uptime)} s`);
  if (data.series) chart.reset(data.series); else chart.add(data.point);
  fill(document.querySelector('#protocols tbody'), Object.entries(t.protocols).map(([name, row]) =>
    cells(name, number(row.sessions), number(row.subscriptions), number(row.delivered), number(row.dropped), number(row.slow_disconnects))));
  fill(document.querySelector('#adapters tbody'), Object.entries(t.adapters).map(([name, row]) =>
    cells(name, number(row.requests), number(row.requests_per_s))));
  fill(document.querySelector('#nodes tbody'), Object.entries(data.nodes).map(([name, n]) =>
    cells(name === data.node ? `${name} (this node)` : name, number(n.sessions), number(n.subscriptions),
      number(n.messages_in), number(n.messages_delivered), number(n.messages_dropped), number(n.slow_disconnects))));
});
