// The real centrifuge-js SDK (JSON or its protobuf build) against a hub started from a Centrifugo config.json:
// node scenario.js URL TOKEN CHANNEL json|protobuf
// Subscribes with join/leave and a tags-free stream, prints one JSON line per event, publishes once,
// reads history, then waits for the server to disconnect it (exit 0 on disconnect, 1 on error or after 20 s).
'use strict';
const WebSocket = require('ws');

const [url, token, channel, format] = process.argv.slice(2);
const { Centrifuge } = format === 'protobuf' ? require('centrifuge/build/protobuf') : require('centrifuge');
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (why) => { out({ event: 'fail', why: String(why) }); process.exit(1); };
setTimeout(() => fail('timeout'), 20000);
const text = (data) => (data instanceof Uint8Array ? Buffer.from(data).toString('utf8') : JSON.stringify(data));

const client = new Centrifuge(url, { websocket: WebSocket, token });
client.on('connected', (ctx) => out({ event: 'connected', client: ctx.client }));
client.on('disconnected', (ctx) => { out({ event: 'disconnected', code: ctx.code, reason: ctx.reason }); process.exit(0); });
client.on('error', (ctx) => out({ event: 'error', error: String(ctx.error && ctx.error.message) }));

// Fossil deltas where the namespace allows them (the hub sends the first publication whole, then deltas).
const sub = client.newSubscription(channel, { joinLeave: true, delta: 'fossil' });
sub.on('subscribed', async (ctx) => {
  out({ event: 'subscribed', recoverable: ctx.recoverable, offset: ctx.streamPosition ? ctx.streamPosition.offset : null });
  try {
    await sub.publish(format === 'protobuf' ? new TextEncoder().encode(JSON.stringify({ from: 'js' })) : { from: 'js' });
    const history = await sub.history({ limit: 10 });
    out({ event: 'history', data: history.publications.map((p) => text(p.data)) });
    out({ event: 'ready' });
  } catch (e) {
    fail(e && e.message ? `${e.code} ${e.message}` : e);
  }
});
sub.on('join', (ctx) => out({ event: 'join', user: ctx.info.user }));
sub.on('publication', (ctx) => out({ event: 'publication', data: text(ctx.data), tags: ctx.tags || null }));
sub.on('error', (ctx) => out({ event: 'sub_error', error: String(ctx.error && ctx.error.message) }));
sub.subscribe();
client.connect();
