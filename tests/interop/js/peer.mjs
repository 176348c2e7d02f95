// js-libp2p 3.x interop peer: TCP + Noise or TLS (https://github.com/libp2p/specs/blob/master/tls/tls.md)
// + yamux/mplex (and QUIC-v1 when an address asks for it) + identify + ping, plus the echo
// protocol and /perf/1.0.0 (https://github.com/libp2p/specs/blob/master/perf/perf.md).
// With --dht it is also a Kademlia DHT node driven by commands on stdin (kad.mjs).
// The command-line and JSON-lines contract is described in ../README.md.

import { createHash, randomBytes } from 'node:crypto'
import { fstatSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { quic } from '@chainsafe/libp2p-quic'
import { yamux } from '@chainsafe/libp2p-yamux'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKeyPair, generateKeyPairFromSeed, publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { kadService, serveCommands } from './kad.mjs'
import { pubsubService, servePubsubCommands } from './pubsub.mjs'

const ECHO_PROTOCOL = '/p2pstack/echo/1.0.0'
const PERF_PROTOCOL = '/perf/1.0.0'
const BLOCK = 64 * 1024 // write size for echo and perf payloads
const MAX_STREAMS = 1024 // per-protocol stream limit (streams:100:N needs > the default 32)
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

// ---------------------------------------------------------------- output

function emit (event, fields = {}) {
  // stdout to a pipe or file is synchronous in Node on Linux: each line is flushed at once.
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function fail (err) {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit('error', { message: err?.name != null ? `${err.name}: ${err.message}` : String(err) })
  process.exit(1)
}

// ---------------------------------------------------------------- command line

function parseCommandLine (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      muxer: { type: 'string', multiple: true },
      security: { type: 'string', multiple: true },
      dial: { type: 'string' },
      actions: { type: 'string' },
      seed: { type: 'string' },
      timeout: { type: 'string', default: '120' },
      'mplex-disconnect-threshold': { type: 'string', default: '10000' },
      dht: { type: 'string' },
      'dht-namespace': { type: 'string', multiple: true },
      bootstrap: { type: 'string', multiple: true },
      pubsub: { type: 'string' },
      'pubsub-score': { type: 'boolean', default: false },
      'pubsub-topic': { type: 'string', multiple: true },
      'gossip-d': { type: 'string', default: '6' },
      'gossip-dlo': { type: 'string', default: '4' },
      'gossip-dhi': { type: 'string', default: '12' },
      mdns: { type: 'boolean', default: false },
      'mdns-interval': { type: 'string', default: '10' }
    },
    strict: true,
    allowPositionals: false
  })
  const muxers = values.muxer ?? ['yamux', 'mplex']
  for (const m of muxers) {
    if (m !== 'yamux' && m !== 'mplex') throw new Error(`unknown muxer ${m}`)
  }
  const security = values.security ?? ['noise']
  for (const s of security) {
    if (s !== 'noise' && s !== 'tls') throw new Error(`unknown security ${s}`)
  }
  const actions = (values.actions ?? '').split(',').filter(a => a !== '').map(parseAction)
  if (actions.length > 0 && values.dial == null) throw new Error('--actions needs --dial')
  if (values.listen == null && values.dial == null) throw new Error('need --listen and/or --dial')
  if (values.dht != null && values.dht !== 'server' && values.dht !== 'client') throw new Error('--dht is server or client')
  if (values.dht != null && values.listen == null) throw new Error('--dht needs --listen')
  if (values.pubsub != null && values.pubsub !== 'gossipsub' && values.pubsub !== 'floodsub') throw new Error('--pubsub is gossipsub or floodsub')
  if (values.pubsub != null && values.listen == null) throw new Error('--pubsub needs --listen')
  if (values.pubsub != null && values.dht != null) throw new Error('--pubsub and --dht do not mix')
  return {
    listen: values.listen,
    dial: values.dial,
    muxers,
    security,
    actions,
    seed: values.seed,
    timeoutMs: Number(values.timeout) * 1000,
    mplexThreshold: Number(values['mplex-disconnect-threshold']),
    dht: values.dht,
    dhtNamespaces: values['dht-namespace'] ?? [],
    bootstrap: values.bootstrap ?? [],
    pubsub: values.pubsub,
    pubsubScore: values['pubsub-score'],
    pubsubTopics: values['pubsub-topic'] ?? [],
    gossipD: Number(values['gossip-d']),
    gossipDlo: Number(values['gossip-dlo']),
    gossipDhi: Number(values['gossip-dhi']),
    mdns: values.mdns,
    mdnsIntervalMs: Number(values['mdns-interval']) * 1000
  }
}

function parseAction (text) {
  const [name, ...rest] = text.split(':')
  const nums = rest.map(x => {
    const n = Number(x)
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad number in action ${text}`)
    return n
  })
  const arity = { ping: 1, identify: 0, echo: 1, streams: 2, perf: 2, idle: 1, dials: 1, rate: 1 }[name]
  if (arity == null || arity !== nums.length) throw new Error(`bad action ${text}`)
  return { name, args: nums }
}

// ---------------------------------------------------------------- stream helpers

/** Abort the stream if `ms` pass before `fn` settles; bounds every network wait. */
async function withDeadline (stream, ms, what, fn) {
  const timer = setTimeout(() => stream.abort(new Error(`${what} timed out after ${ms} ms`)), ms)
  try {
    return await fn()
  } finally {
    clearTimeout(timer)
  }
}

/** Send one chunk, waiting for the stream to drain when it reports backpressure. */
async function sendChunk (stream, chunk) {
  if (!stream.send(chunk)) await stream.onDrain()
}

async function sendAll (stream, data) {
  for (let off = 0; off < data.byteLength; off += BLOCK) {
    await sendChunk(stream, data.subarray(off, Math.min(off + BLOCK, data.byteLength)))
  }
}

async function sendZeros (stream, count) {
  const block = new Uint8Array(BLOCK)
  for (let left = count; left > 0; left -= BLOCK) {
    await sendChunk(stream, left >= BLOCK ? block : block.subarray(0, left))
  }
}

/** Read to end of stream; returns byte count and sha256 hex of everything read. */
async function readAllHashed (stream) {
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of stream) {
    const buf = chunk.subarray()
    hash.update(buf)
    bytes += buf.byteLength
  }
  return { bytes, digest: hash.digest('hex') }
}

// ---------------------------------------------------------------- servers

function serverHandlers (cfg) {
  const served = (protocol, connection, bytesIn, bytesOut) =>
    emit('served', { protocol, peer_id: connection.remotePeer.toString(), bytes_in: bytesIn, bytes_out: bytesOut })
  const guard = (protocol, fn) => async (stream, connection) => {
    try {
      await withDeadline(stream, cfg.timeoutMs, protocol, () => fn(stream, connection))
    } catch (err) {
      // A bad remote must not take the peer down: report, reset the stream, keep serving.
      emit('handler_error', { protocol, peer_id: connection.remotePeer.toString(), message: String(err?.message ?? err) })
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
  const echo = guard(ECHO_PROTOCOL, async (stream, connection) => {
    let bytes = 0
    for await (const chunk of stream) {
      bytes += chunk.byteLength
      await sendChunk(stream, chunk)
    }
    await stream.close()
    served(ECHO_PROTOCOL, connection, bytes, bytes)
  })
  const perf = guard(PERF_PROTOCOL, async (stream, connection) => {
    let header = new Uint8Array(0)
    let uploaded = 0
    for await (const chunk of stream) {
      let buf = chunk.subarray()
      if (header.byteLength < 8) {
        const take = Math.min(8 - header.byteLength, buf.byteLength)
        header = Buffer.concat([header, buf.subarray(0, take)])
        buf = buf.subarray(take)
      }
      uploaded += buf.byteLength
    }
    if (header.byteLength < 8) throw new Error('perf: stream ended before the 8-byte length')
    const wanted = Buffer.from(header).readBigUInt64BE(0)
    if (wanted > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`perf: absurd length ${wanted}`)
    await sendZeros(stream, Number(wanted))
    await stream.close()
    served(PERF_PROTOCOL, connection, uploaded + 8, Number(wanted))
  })
  return { echo, perf }
}

// ---------------------------------------------------------------- client actions

async function actionPing (ctx, [count]) {
  for (let seq = 0; seq < count; seq++) {
    const start = performance.now()
    const rtt = await ctx.node.services.ping.ping(ctx.peer, { signal: AbortSignal.timeout(ctx.cfg.timeoutMs) })
    emit('ping', { seq, rtt_ms: rtt, total_ms: performance.now() - start })
  }
}

async function actionIdentify (ctx) {
  const r = await ctx.node.services.identify.identify(ctx.conn, { signal: AbortSignal.timeout(ctx.cfg.timeoutMs) })
  const key = r.publicKey != null ? publicKeyFromProtobuf(r.publicKey) : r.peerId.publicKey
  emit('identify', {
    peer_id: r.peerId.toString(),
    agent_version: r.agentVersion ?? null,
    protocol_version: r.protocolVersion ?? null,
    protocols: [...r.protocols].sort(),
    listen_addrs: r.listenAddrs.map(a => a.toString()),
    observed_addr: r.observedAddr?.toString() ?? null,
    public_key_type: key?.type ?? null,
    public_key_matches_peer_id: key != null && key.toString() === r.peerId.toString(),
    signed_peer_record: r.signedPeerRecord != null
      ? { seq: String(r.signedPeerRecord.seq), addrs: r.signedPeerRecord.addresses.map(a => a.toString()) }
      : null
  })
}

/** One echo exchange: upload random bytes while reading them back, then compare. */
async function echoOnce (ctx, size) {
  const data = randomBytes(size)
  const stream = await ctx.conn.newStream(ECHO_PROTOCOL, { signal: AbortSignal.timeout(ctx.cfg.timeoutMs) })
  return withDeadline(stream, ctx.cfg.timeoutMs, 'echo', async () => {
    const reading = readAllHashed(stream)
    await sendAll(stream, data)
    await stream.close()
    const got = await reading
    const want = createHash('sha256').update(data).digest('hex')
    return got.bytes === size && got.digest === want
  })
}

async function actionEcho (ctx, [size]) {
  const start = performance.now()
  const ok = await echoOnce(ctx, size)
  const seconds = (performance.now() - start) / 1000
  if (!ok) throw new Error(`echo of ${size} bytes came back different`)
  emit('echo', { bytes: size, ok, seconds })
}

async function actionStreams (ctx, [count, size]) {
  const start = performance.now()
  const results = await Promise.all(Array.from({ length: count }, () => echoOnce(ctx, size)))
  const ok = results.every(Boolean)
  if (!ok) throw new Error(`${results.filter(r => !r).length} of ${count} echo streams came back different`)
  emit('streams', { count, bytes: size, ok, seconds: (performance.now() - start) / 1000 })
}

async function actionPerf (ctx, [up, down]) {
  const start = performance.now()
  const stream = await ctx.conn.newStream(PERF_PROTOCOL, { signal: AbortSignal.timeout(ctx.cfg.timeoutMs) })
  const r = await withDeadline(stream, ctx.cfg.timeoutMs, 'perf', async () => {
    // The server answers only after reading our EOF, so the first byte back ends the upload phase.
    let firstByte = null
    let received = 0
    const reading = (async () => {
      for await (const chunk of stream) {
        if (firstByte == null) firstByte = performance.now()
        received += chunk.byteLength
      }
    })()
    const header = Buffer.alloc(8)
    header.writeBigUInt64BE(BigInt(down))
    await sendChunk(stream, header)
    await sendZeros(stream, up)
    await stream.close()
    await reading
    return { firstByte: firstByte ?? performance.now(), end: performance.now(), received }
  })
  if (r.received !== down) throw new Error(`perf: asked for ${down} bytes, got ${r.received}`)
  const upSec = (r.firstByte - start) / 1000
  const downSec = (r.end - r.firstByte) / 1000
  emit('perf', {
    upload_bytes: up,
    download_bytes: down,
    seconds: (r.end - start) / 1000,
    upload_seconds: upSec,
    download_seconds: downSec,
    upload_mbps: upSec > 0 ? up / 1e6 / upSec : null,
    download_mbps: downSec > 0 ? down / 1e6 / downSec : null
  })
}

async function actionIdle (ctx, [seconds]) {
  const before = ctx.conn.id
  let closed = false
  const onClose = evt => { if (evt.detail.id === before) closed = true }
  ctx.node.addEventListener('connection:close', onClose)
  try {
    await new Promise(resolve => setTimeout(resolve, seconds * 1000))
  } finally {
    ctx.node.removeEventListener('connection:close', onClose)
  }
  const ids = ctx.node.getConnections(ctx.peer).map(c => c.id)
  const still = !closed && ctx.conn.status === 'open' && ids.length === 1 && ids[0] === before
  if (!still) throw new Error(`connection did not survive idle: status=${ctx.conn.status} ids=${ids}`)
  // Prove it carries traffic, on the same connection.
  const rtt = await ctx.node.services.ping.ping(ctx.peer, { signal: AbortSignal.timeout(ctx.cfg.timeoutMs) })
  const after = ctx.node.getConnections(ctx.peer).map(c => c.id)
  if (after.length !== 1 || after[0] !== before) throw new Error(`reconnected during idle check: ${after}`)
  emit('idle', { seconds, still_connected: true, connection_id: before, rtt_ms_after: rtt })
}

// ---------------------------------------------------------------- benchmark actions

/** Close every connection to the target, dial a new one (TCP + Noise + muxer) and optionally
 * ping once over it; returns ms from dial start to the end of the ping (or of the upgrade). */
async function freshDial (ctx, withPing) {
  const signal = AbortSignal.timeout(ctx.cfg.timeoutMs)
  await Promise.all(ctx.node.getConnections(ctx.peer).map(c => c.close({ signal })))
  const start = performance.now()
  const conn = await ctx.node.dial(ctx.target, { signal })
  if (withPing) await ctx.node.services.ping.ping(ctx.peer, { signal })
  const ms = performance.now() - start
  ctx.conn = conn
  return ms
}

/** dials:N = N x (fresh dial + upgrade + first ping), every latency reported. */
async function actionDials (ctx, [count]) {
  const ms = []
  for (let i = 0; i < count; i++) ms.push(await freshDial(ctx, true))
  emit('dials', { count, ms })
}

/** rate:N = N sequential fresh dials + upgrades, reported as handshakes per second. */
async function actionRate (ctx, [count]) {
  const start = performance.now()
  for (let i = 0; i < count; i++) await freshDial(ctx, false)
  const seconds = (performance.now() - start) / 1000
  emit('rate', { count, seconds, per_second: seconds > 0 ? count / seconds : null })
}

const ACTIONS = {
  dials: actionDials,
  rate: actionRate,
  ping: actionPing,
  identify: actionIdentify,
  echo: actionEcho,
  streams: actionStreams,
  perf: actionPerf,
  idle: actionIdle
}

// ---------------------------------------------------------------- node

async function seededKey (seed) {
  if (seed == null) return generateKeyPair('Ed25519')
  // Same derivation as the py peer: Ed25519 seed = SHA-256 of the decimal seed string.
  return generateKeyPairFromSeed('Ed25519', createHash('sha256').update(String(seed)).digest())
}

function usesQuic (cfg) {
  return [cfg.listen, cfg.dial, ...cfg.bootstrap].some(a => a != null && a.includes('/quic-v1'))
}

async function createNode (cfg) {
  const factories = { yamux: () => yamux(), mplex: () => mplex({ disconnectThreshold: cfg.mplexThreshold }) }
  // TLS offers the muxers in ALPN (muxer ids first, then 'libp2p'): a muxer chosen there skips
  // the multistream-select muxer round.
  const encrypters = { noise: () => noise(), tls: () => tls() }
  const privateKey = await seededKey(cfg.seed)
  cfg.selfPeerId = peerIdFromPrivateKey(privateKey)
  const extra = {}
  // QUIC (quinn + rustls addon, library defaults: 10 s idle timeout, 5 s keep-alive, 256 streams)
  // only when an address asks for it, so that TCP-only runs stay exactly as before.
  const transports = usesQuic(cfg) ? [tcp(), quic()] : [tcp()]
  if (cfg.dht != null) extra.dht = kadService(cfg)
  if (cfg.pubsub != null) extra.pubsub = pubsubService(cfg)
  return createLibp2p({
    privateKey,
    addresses: { listen: cfg.listen != null ? [cfg.listen] : [] },
    transports,
    connectionEncrypters: cfg.security.map(s => encrypters[s]()),
    streamMuxers: cfg.muxers.map(m => factories[m]()),
    // Loopback is exempt from the inbound rate limit (5 connections/s/host by default).
    connectionManager: { allow: LOOPBACK },
    // Left at its defaults on purpose: it pings every connection every 10 s.
    connectionMonitor: { enabled: true },
    services: { identify: identify(), ping: ping(), ...extra },
    // --mdns: @libp2p/mdns on 224.0.0.251:5353, querying every --mdns-interval seconds
    peerDiscovery: cfg.mdns ? [mdns({ interval: cfg.mdnsIntervalMs })] : []
  })
}

const SHUTDOWN_GRACE_MS = 5000 // bound on node.stop(): exit anyway after this

async function stopAndExit (node, code) {
  setTimeout(() => process.exit(code), SHUTDOWN_GRACE_MS).unref()
  try {
    await node.stop()
  } finally {
    process.exit(code)
  }
}

function watchShutdown (node) {
  const stop = () => stopAndExit(node, 0)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // stdin EOF ends the peer when stdin is a pipe, socket or tty (not /dev/null).
  const st = fstatSync(0)
  if (st.isFIFO() || st.isSocket() || process.stdin.isTTY) {
    process.stdin.on('end', stop)
    process.stdin.resume()
  }
}

async function main () {
  const cfg = parseCommandLine(process.argv.slice(2))
  const node = await createNode(cfg)
  const handlers = serverHandlers(cfg)
  const opts = { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS }
  await node.handle(ECHO_PROTOCOL, handlers.echo, opts)
  await node.handle(PERF_PROTOCOL, handlers.perf, opts)
  node.addEventListener('connection:open', evt => {
    const c = evt.detail
    if (c.direction === 'inbound') emit('inbound', { peer_id: c.remotePeer.toString(), muxer: c.multiplexer ?? null, encryption: c.encryption ?? null })
  })
  if (cfg.mdns) {
    node.addEventListener('peer:discovery', evt => {
      emit('peer:discovery', { peer_id: evt.detail.id.toString(), addrs: evt.detail.multiaddrs.map(a => a.toString()), source: 'mdns' })
    })
  }
  if (cfg.listen != null) {
    watchShutdown(node)
    emit('listening', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(a => a.toString()) })
  }
  if (cfg.pubsub != null) {
    for (const addr of cfg.bootstrap) {
      const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(cfg.timeoutMs) })
      emit('connected', { peer_id: conn.remotePeer.toString(), muxer: conn.multiplexer ?? null, bootstrap: true })
    }
    servePubsubCommands(node, cfg)
    emit('ready')
  }
  if (cfg.dht != null) {
    for (const addr of cfg.bootstrap) {
      const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(cfg.timeoutMs) })
      emit('connected', { peer_id: conn.remotePeer.toString(), muxer: conn.multiplexer ?? null, bootstrap: true })
    }
    serveCommands(node, cfg)
    emit('ready')
  }
  if (cfg.dial != null) {
    const target = multiaddr(cfg.dial)
    const start = performance.now()
    const conn = await node.dial(target, { signal: AbortSignal.timeout(cfg.timeoutMs) })
    emit('connected', {
      peer_id: conn.remotePeer.toString(),
      muxer: conn.multiplexer ?? null,
      encryption: conn.encryption ?? null,
      dial_ms: performance.now() - start
    })
    const ctx = { node, conn, peer: conn.remotePeer, cfg, target }
    for (const action of cfg.actions) await ACTIONS[action.name](ctx, action.args)
    emit('done')
    if (cfg.listen == null) await stopAndExit(node, 0)
  }
}

process.on('unhandledRejection', fail)
process.on('uncaughtException', fail)
main().catch(fail)
