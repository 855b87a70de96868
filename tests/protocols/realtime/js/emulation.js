// The real centrifuge-js SDK over its bidirectional emulation transports (no websocket):
// node emulation.js BASE_URL http_stream|sse json|protobuf TOKEN CHANNEL
// Connects, subscribes, publishes (the publish goes through /emulation), reads presence and history, then
// waits for the server to disconnect it. One JSON line per event; exit 0 on disconnect, 1 on error or after 20 s.
'use strict';
const EventSource = require('eventsource');

const [base, transport, format, token, channel] = process.argv.slice(2);
const { Centrifuge } = format === 'protobuf' ? require('centrifuge/build/protobuf') : require('centrifuge');
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (why) => { out({ event: 'fail', why: String(why) }); process.exit(1); };
setTimeout(() => fail('timeout'), 20000);
const text = (data) => (data instanceof Uint8Array ? Buffer.from(data).toString('utf8') : JSON.stringify(data));

const client = new Centrifuge([{ transport, endpoint: `${base}/connection/${transport}` }], {
  token, fetch, readableStream: ReadableStream, eventsource: EventSource, emulationEndpoint: `${base}/emulation`,
});
client.on('connected', (ctx) => out({ event: 'connected', client: ctx.client, transport: ctx.transport }));
client.on('disconnected', (ctx) => { out({ event: 'disconnected', code: ctx.code, reason: ctx.reason }); process.exit(0); });
client.on('error', (ctx) => out({ event: 'error', error: String(ctx.error && ctx.error.message) }));

const sub = client.newSubscription(channel);
sub.on('subscribed', async () => {
  out({ event: 'subscribed' });
  try {
    await sub.publish(format === 'protobuf' ? new TextEncoder().encode(JSON.stringify({ from: transport })) : { from: transport });
    const presence = await sub.presence();
    const history = await sub.history({ limit: 10 });
    out({ event: 'ready', presence: Object.keys(presence.clients).length, history: history.publications.map((p) => text(p.data)) });
  } catch (e) {
    fail(e && e.message ? `${e.code} ${e.message}` : e);
  }
});
sub.on('publication', (ctx) => out({ event: 'publication', data: text(ctx.data) }));
sub.on('error', (ctx) => out({ event: 'sub_error', error: String(ctx.error && ctx.error.message) }));
sub.subscribe();
client.connect();
