// interop.js: the peer channel against the npm implementations (secret-handshake, pull-box-stream).
// Usage: node interop.js BUILD_DIR. Parts:
//   tool   the npm client calls rpc.ping on a C peer (build/tests/interop/peer_tool serve); a client
//          with a wrong network key fails its handshake and the server keeps serving.
//   back   a JS secret-handshake server answers msgpack-RPC; the C client (peer_tool call) calls it
//          through rpc_peer_call().
//   node   a real p2p-node: the npm client calls rpc.ping and, with a `_token`,
//          system.local.node.info on its TCP port (the DHT port number); a wrong network key
//          fails and the node keeps serving.
// Prints one line per check and "N passed, M failed"; exits 1 on any failure.
'use strict'
const fs = require('fs')
const os = require('os')
const path = require('path')
const net = require('net')
const crypto = require('crypto')
const { spawn, execFileSync } = require('child_process')
const pull = require('pull-stream')
const Pushable = require('pull-pushable')
const toPull = require('stream-to-pull-stream')
const shs = require('secret-handshake')
const cl = require('chloride')
const { encode, decode } = require('@msgpack/msgpack')

const build = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'build'))
let passed = 0
let failed = 0
const cleanups = []

function check (name, ok, detail) {
  if (ok) passed++
  else failed++
  console.log((ok ? 'ok   ' : 'FAIL ') + name + (detail ? ' (' + detail + ')' : ''))
}

function withTimeout (p, ms, what) {
  let t
  return Promise.race([p, new Promise((resolve, reject) => {
    t = setTimeout(() => reject(new Error(what + ': timed out after ' + ms + ' ms')), ms)
  })]).finally(() => clearTimeout(t))
}

// Connects with the npm client; resolves to an RPC client or rejects with the handshake error.
function shsConnect (port, appKey, serverPk) {
  return new Promise((resolve, reject) => {
    const keys = cl.crypto_sign_keypair()
    const sock = net.connect(port, '127.0.0.1')
    sock.on('error', reject)
    const duplex = toPull.duplex(sock)
    const client = shs.createClient(keys, appKey, 5000)
    pull(duplex, client(serverPk, (err, stream) => {
      if (err) { sock.destroy(); return reject(err) }
      resolve(rpcClient(stream, sock))
    }), duplex)
  })
}

// A msgpack-RPC client over a box-stream duplex: call(method, params) -> Promise<[error, result]>.
function rpcClient (stream, sock) {
  const out = Pushable()
  const pending = new Map()
  let msgid = 0
  let buf = Buffer.alloc(0)
  pull(out, stream.sink)
  pull(stream.source, pull.drain((chunk) => {
    buf = Buffer.concat([buf, chunk])
    let msg
    try { msg = decode(buf) } catch (e) {
      if (e instanceof RangeError) return // incomplete: wait for more
      throw e
    }
    buf = Buffer.alloc(0)
    if (Array.isArray(msg) && msg[0] === 1 && pending.has(msg[1])) {
      pending.get(msg[1])([msg[2], msg[3]])
      pending.delete(msg[1])
    }
  }, () => {
    for (const [, cb] of pending) cb([{ code: 'closed' }, null])
    pending.clear()
  }))
  return {
    call (method, params) {
      const id = ++msgid
      return new Promise((resolve) => {
        pending.set(id, resolve)
        out.push(Buffer.from(encode([0, id, method, params || []])))
      })
    },
    close () { out.end(); setTimeout(() => sock.destroy(), 100) }
  }
}

// Starts a JS secret-handshake server answering msgpack-RPC calls with reply(method).
function jsServer (appKey, keys, reply) {
  return new Promise((resolve) => {
    const server = shs.createServer(keys, (id, cb) => cb(null, true), appKey, 5000)
    const srv = net.createServer((sock) => {
      sock.on('error', () => {})
      const duplex = toPull.duplex(sock)
      pull(duplex, server((err, stream) => {
        if (err) return sock.destroy()
        const out = Pushable()
        pull(out, stream.sink)
        pull(stream.source, pull.drain((chunk) => {
          const m = decode(chunk)
          if (Array.isArray(m) && m[0] === 0) out.push(Buffer.from(encode([1, m[1], null, reply(m[2])])))
        }, () => out.end()))
      }), duplex)
    })
    srv.listen(0, '127.0.0.1', () => resolve(srv))
  })
}

function startTool (netKeyHex) {
  return new Promise((resolve, reject) => {
    const bin = path.join(build, 'tests', 'interop', 'peer_tool')
    const p = spawn(bin, ['serve', netKeyHex, crypto.randomBytes(32).toString('hex')],
      { stdio: ['ignore', 'pipe', 'inherit'] })
    cleanups.push(() => p.kill('SIGTERM'))
    let out = ''
    p.on('error', reject)
    p.stdout.on('data', (d) => {
      out += d
      const m = /READY (\d+) ([0-9a-f]{64})/.exec(out)
      if (m) resolve({ proc: p, port: +m[1], pk: Buffer.from(m[2], 'hex') })
    })
    p.on('exit', (code) => reject(new Error('peer_tool exited ' + code)))
  })
}

async function partTool () {
  const netKey = crypto.randomBytes(32)
  const tool = await startTool(netKey.toString('hex'))
  const c = await withTimeout(shsConnect(tool.port, netKey, tool.pk), 10000, 'connect')
  const [err, res] = await withTimeout(c.call('rpc.ping'), 10000, 'rpc.ping')
  check('tool: npm client -> C server rpc.ping', err === null && res === 'pong', JSON.stringify([err, res]))
  const [err2] = await withTimeout(c.call('system.local.node.methods'), 10000, 'node.methods')
  check('tool: second call on the same connection', err2 === null)
  c.close()
  let hsErr = null
  try {
    const bad = await withTimeout(shsConnect(tool.port, crypto.randomBytes(32), tool.pk), 10000, 'bad key')
    bad.close()
  } catch (e) { hsErr = e }
  check('tool: wrong network key fails the handshake', hsErr !== null, hsErr && hsErr.message.split('\n')[0])
  const c2 = await withTimeout(shsConnect(tool.port, netKey, tool.pk), 10000, 'reconnect')
  const [err3, res3] = await withTimeout(c2.call('rpc.ping'), 10000, 'rpc.ping again')
  check('tool: server keeps serving after the bad handshake', err3 === null && res3 === 'pong')
  c2.close()
  tool.proc.kill('SIGTERM')
}

async function partBack () {
  const netKey = crypto.randomBytes(32)
  const keys = cl.crypto_sign_keypair()
  const srv = await jsServer(netKey, keys, (m) => m === 'rpc.ping' ? 'pong from js' : null)
  cleanups.push(() => srv.close())
  const bin = path.join(build, 'tests', 'interop', 'peer_tool')
  const args = ['call', netKey.toString('hex'), Buffer.from(keys.publicKey).toString('hex'),
    String(srv.address().port), 'rpc.ping']
  const out = await withTimeout(new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let s = ''
    p.stdout.on('data', (d) => { s += d })
    p.on('exit', (code) => resolve({ code, s }))
  }), 15000, 'peer_tool call')
  check('back: C client (rpc_peer_call) -> npm server', out.code === 0 && /RESULT pong from js/.test(out.s),
    out.s.trim().replace(/\n/g, '; '))
  // the C client expecting another server key must fail
  const other = cl.crypto_sign_keypair()
  args[2] = Buffer.from(other.publicKey).toString('hex')
  const out2 = await withTimeout(new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let s = ''
    p.stdout.on('data', (d) => { s += d })
    p.on('exit', (code) => resolve({ code, s }))
  }), 15000, 'peer_tool call wrong key')
  check('back: C client expecting another server key fails', out2.code !== 0 && /STATUS -/.test(out2.s),
    out2.s.trim().replace(/\n/g, '; '))
  srv.close()
}

function freePort () {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

async function waitFor (fn, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return false
}

async function partNode () {
  const bin = path.join(build, 'p2p-node')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-interop-'))
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  const netKey = crypto.randomBytes(32)
  const env = Object.assign({}, process.env, {
    NETWORK_KEY: netKey.toString('base64'),
    AUTH_SECRET: crypto.randomBytes(32).toString('base64'),
    LOG_FORMAT: 'json'
  })
  for (const k of ['NODE_NAME', 'DATA_DIR', 'BOOTSTRAP_NODES', 'CONFIG_FILE', 'DHT_PORT', 'NODE_PORT']) delete env[k]
  const dhtPort = await freePort()
  const httpPort = await freePort()
  const data = path.join(dir, 'n1')
  const log = fs.openSync(path.join(dir, 'n1.log'), 'a')
  const p = spawn(bin, ['--name', 'interop1', '--dht-host', '127.0.0.1', '--dht-port', String(dhtPort),
    '--port', String(httpPort), '--data-dir', data], { env, stdio: ['ignore', log, log] })
  cleanups.push(() => p.kill('SIGKILL'))
  const ready = await waitFor(() => fs.existsSync(path.join(data, 'rpc.sock')), 20000)
  check('node: p2p-node started', ready)
  if (!ready) return
  const sk = Buffer.from(fs.readFileSync(path.join(data, 'identity.key'), 'utf8').trim(), 'base64')
  const pk = sk.slice(32, 64)
  const listening = await waitFor(() => new Promise((resolve) => {
    const s = net.connect(dhtPort, '127.0.0.1')
    s.on('connect', () => { s.destroy(); resolve(true) })
    s.on('error', () => resolve(false))
  }), 10000)
  check('node: peer channel listens on TCP at the DHT port number', listening,
    listening ? '' : 'nothing accepts on 127.0.0.1:' + dhtPort + ' (is the peer channel wired into the daemon?)')
  if (!listening) return
  const c = await withTimeout(shsConnect(dhtPort, netKey, pk), 10000, 'connect to node')
  const [err, res] = await withTimeout(c.call('rpc.ping'), 10000, 'node rpc.ping')
  check('node: npm client -> p2p-node rpc.ping', err === null && res === 'pong', JSON.stringify([err, res]))
  const token = execFileSync(bin, ['token', '--role', 'admin', '--data-dir', data], { env }).toString().trim()
    .split('\n').pop().trim()
  const [err2, res2] = await withTimeout(c.call('system.local.node.info', [{ _token: token }]), 10000, 'node.info')
  const unauth = err2 && err2.code === -32001
  check('node: system.local.node.info with _token', err2 === null && res2 && res2.public_key === pk.toString('hex'),
    unauth ? 'UNAUTHENTICATED: the node does not accept `_token` on the peer channel yet'
      : JSON.stringify(err2 || (res2 && res2.public_key)))
  c.close()
  let hsErr = null
  try {
    const bad = await withTimeout(shsConnect(dhtPort, crypto.randomBytes(32), pk), 10000, 'bad key')
    bad.close()
  } catch (e) { hsErr = e }
  check('node: wrong network key fails the handshake', hsErr !== null)
  const c2 = await withTimeout(shsConnect(dhtPort, netKey, pk), 10000, 'reconnect to node')
  const [err3, res3] = await withTimeout(c2.call('rpc.ping'), 10000, 'node rpc.ping again')
  check('node: keeps serving after the bad handshake', err3 === null && res3 === 'pong')
  c2.close()
}

async function main () {
  for (const [name, fn] of [['tool', partTool], ['back', partBack], ['node', partNode]]) {
    try { await fn() } catch (e) { check(name + ': completed', false, e.message) }
  }
  for (const f of cleanups.reverse()) { try { f() } catch (e) {} }
  console.log(passed + ' passed, ' + failed + ' failed')
  process.exit(failed ? 1 : 0)
}

main()
