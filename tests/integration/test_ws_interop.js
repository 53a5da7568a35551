// test_ws_interop.js URL TOKEN NODE: the npm `ws` client against a node's /ws (issue 5 interop).
// Connects to URL (ws://host:port/ws) with ?access_token=TOKEN, subscribes to `metrics` and waits
// (20 s at most) for a metrics event from NODE (a remote node of the network), then makes one
// JSON-RPC call over the socket (rpc.ping), sends a ping (expecting its pong) and closes with
// 1000, expecting the node's 1000 back. Exits 0 on success, 1 with a reason otherwise. The `ws`
// package is looked up in tests/interop/node_modules (npm ci by run.sh).
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'interop', 'node_modules', 'ws'));

const [url, token, want] = process.argv.slice(2);
if (!url || !token || !want) {
  console.error('usage: test_ws_interop.js URL TOKEN NODE');
  process.exit(2);
}
const fail = (why) => {
  console.error('ws interop: ' + why);
  process.exit(1);
};
const timer = setTimeout(() => fail('timed out'), 20000);
const ws = new WebSocket(url + '?access_token=' + encodeURIComponent(token));
let step = 'metrics';
ws.on('error', (e) => fail('error: ' + e.message));
ws.on('open', () => ws.send(JSON.stringify({subscribe: 'metrics'})));
ws.on('message', (data, isBinary) => {
  if (isBinary) fail('binary message from the node');
  const m = JSON.parse(data.toString('utf8'));
  if (step === 'metrics' && m.topic === 'metrics' && m.node === want) {
    if (typeof m.data !== 'object' || m.data === null) fail('metrics event without data');
    step = 'call';
    ws.send(JSON.stringify({id: 1, method: 'rpc.ping'}));
  } else if (step === 'call' && m.id === 1) {
    if (m.error) fail('rpc.ping answered ' + JSON.stringify(m.error));
    step = 'pong';
    ws.ping(Buffer.from('interop'));
  }
});
ws.on('pong', (data) => {
  if (step !== 'pong') return;
  if (data.toString() !== 'interop') fail('pong payload ' + data.toString());
  step = 'close';
  ws.close(1000, 'done');
});
ws.on('close', (code) => {
  clearTimeout(timer);
  if (step !== 'close') fail('closed by the node with ' + code + ' during ' + step);
  if (code !== 1000) fail('close code ' + code);
  console.log('ws interop: ok');
  process.exit(0);
});
