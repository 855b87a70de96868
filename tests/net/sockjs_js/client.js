// The real sockjs-client speaking the original Centrifuge protocol, one JSON line per event on stdout.
// usage: node client.js <base url>/connection <transport> <connect params JSON> <channel>
// transport: websocket | xhr-streaming | xhr-polling
// Connects, subscribes to <channel>, prints every push, publishes {"from": "sockjs"} after the first
// message, answers "close" lines on stdin by closing, and prints the close code and reason.
const SockJS = require("sockjs-client");

const [url, transport, params, channel] = process.argv.slice(2);
const out = (event, extra) => process.stdout.write(JSON.stringify({ event, ...extra }) + "\n");
const sock = new SockJS(url, null, { transports: [transport] });
let published = false;

const send = (method, p) => sock.send(JSON.stringify({ uid: String(Date.now()), method, params: p }));

sock.onopen = () => {
  out("open", { transport: sock.transport });
  send("connect", JSON.parse(params));
};

sock.onmessage = (e) => {
  const data = JSON.parse(e.data);
  const items = Array.isArray(data) ? data : [data];
  for (const msg of items) {
    if (Array.isArray(data)) {
      out("reply", { method: msg.method, error: msg.error, body: msg.body });
      if (msg.method === "connect" && msg.error === null) send("subscribe", { channel });
      if (msg.method === "subscribe" && msg.error === null) out("subscribed", { channel: msg.body.channel });
    } else {
      out("push", { method: msg.method, body: msg.body });
      if (msg.method === "message" && !published) {
        published = true;
        send("publish", { channel, data: { from: "sockjs" } });
      }
    }
  }
};

sock.onclose = (e) => {
  out("closed", { code: e.code, reason: e.reason });
  process.exit(0);
};

process.stdin.on("data", (chunk) => {
  if (chunk.toString().includes("close")) sock.close();
});
setTimeout(() => { out("fail", { why: "timeout" }); process.exit(1); }, 20000);
