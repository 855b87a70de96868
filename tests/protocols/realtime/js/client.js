// The real centrifuge-js SDK against the hub: node client.js URL TOKEN CHANNEL COUNT
// Prints one JSON line per event; after COUNT publications it asks for presence and history,
// publishes one message itself, disconnects and exits 0 (exit 1 on error or after 15 s).
'use strict';
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

const [url, token, channel, countArg] = process.argv.slice(2);
const count = Number(countArg || 1);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (why) => { out({ event: 'fail', why: String(why) }); process.exit(1); };
setTimeout(() => fail('timeout'), 15000);

const client = new Centrifuge(url, { websocket: WebSocket, token });
client.on('connected', (ctx) => out({ event: 'connected', client: ctx.client, transport: ctx.transport }));
client.on('disconnected', (ctx) => out({ event: 'disconnected', code: ctx.code, reason: ctx.reason }));
client.on('error', (ctx) => out({ event: 'error', error: String(ctx.error && ctx.error.message) }));

const sub = client.newSubscription(channel);
let received = 0;
sub.on('subscribed', (ctx) => out({ event: 'subscribed', channel: ctx.channel, recoverable: ctx.recoverable,
  offset: ctx.streamPosition ? ctx.streamPosition.offset : null }));
sub.on('error', (ctx) => out({ event: 'sub_error', error: String(ctx.error && ctx.error.message) }));
sub.on('publication', async (ctx) => {
  out({ event: 'publication', data: ctx.data, offset: ctx.offset, user: ctx.info ? ctx.info.user : null });
  received += 1;
  if (received !== count) return;
  try {
    const presence = await sub.presence();
    out({ event: 'presence', users: Object.values(presence.clients).map((c) => c.user).sort() });
    const history = await sub.history({ limit: 10 });
    out({ event: 'history', offsets: history.publications.map((p) => p.offset), epoch: history.epoch });
    await sub.publish({ from: 'js' });
    out({ event: 'published' });
    client.disconnect();
    process.exit(0);
  } catch (e) {
    fail(e && e.message ? `${e.code} ${e.message}` : e);
  }
});
sub.subscribe();
client.connect();
