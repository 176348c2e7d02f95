// js-libp2p pubsub benchmark peer (@libp2p/gossipsub 17.1.1, TCP + Noise + yamux): one node that
// speaks the stdin/stdout contract of benchmarks/pubsub_peer.py (the harness is
// benchmarks/pubsub.py); gossipsub at its defaults (D 6, heartbeat 1 s, StrictSign) except
// `floodPublish: false`, as the interop peer.
//
// tests/interop/js/node_modules/.bin/node benchmarks/pubsub_js.mjs [--listen /ip4/127.0.0.1/tcp/0]

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

// The libp2p packages live in the interop peer's node_modules, not beside this script.
const MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'interop', 'js', 'node_modules')

async function load (name) {
  const pkg = JSON.parse(readFileSync(join(MODULES, name, 'package.json'), 'utf8'))
  return import(pathToFileURL(join(MODULES, name, pkg.exports['.'].import)).href)
}

const { createLibp2p } = await load('libp2p')
const { tcp } = await load('@libp2p/tcp')
const { noise } = await load('@chainsafe/libp2p-noise')
const { yamux } = await load('@chainsafe/libp2p-yamux')
const { identify } = await load('@libp2p/identify')
const { gossipsub } = await load('@libp2p/gossipsub')
const { multiaddr } = await load('@multiformats/multiaddr')

const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
const ACK_TOPIC = 'bench-ack'
const STALL_MS = 10000 // a window without an ack for this long ends the publishing

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

/** Index and send time (CLOCK_MONOTONIC ns) in the first 16 bytes, zeros after. */
function payload (index, size) {
  const buf = Buffer.alloc(Math.max(16, size))
  buf.writeBigUInt64BE(BigInt(index), 0)
  buf.writeBigUInt64BE(process.hrtime.bigint(), 8)
  return buf
}

class Bench {
  constructor (node) {
    this.node = node
    this.ps = node.services.pubsub
    this.ackEvery = 0
    this.acked = 0
    this.onAck = null
    this.reset()
    this.ps.addEventListener('message', evt => this.message(evt.detail))
  }

  reset () {
    this.seen = new Set()
    this.latencies = []
    this.firstSent = null
    this.lastArrival = null
    this.duplicates = 0
    this.acked = 0
  }

  message (msg) {
    const now = process.hrtime.bigint()
    const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength)
    if (msg.topic === ACK_TOPIC) {
      this.acked = Math.max(this.acked, Number(data.readBigUInt64BE(0)))
      this.onAck?.()
      return
    }
    const index = Number(data.readBigUInt64BE(0))
    const sent = data.readBigUInt64BE(8)
    if (this.seen.has(index)) {
      this.duplicates++
      return
    }
    this.seen.add(index)
    if (this.firstSent == null || sent < this.firstSent) this.firstSent = sent
    this.lastArrival = now
    this.latencies.push(Number(now - sent) / 1000)
    const n = this.seen.size
    if (this.ackEvery > 0 && n % this.ackEvery === 0) {
      const ack = Buffer.alloc(8)
      ack.writeBigUInt64BE(BigInt(n))
      this.ps.publish(ACK_TOPIC, ack).catch(() => {})
    }
    if (this.waiter != null && n >= this.waiter.count) this.waiter.done()
  }

  async publish (topic, count, size, window, intervalMs) {
    const start = process.hrtime.bigint()
    let stalled = false
    for (let i = 0; i < count && !stalled; i++) {
      while (window > 0 && i - this.acked >= window) {
        const got = await new Promise(resolve => {
          const timer = setTimeout(() => resolve(false), STALL_MS)
          this.onAck = () => { clearTimeout(timer); resolve(true) }
        })
        this.onAck = null
        if (!got) { stalled = true; break }
      }
      if (stalled) break
      await this.ps.publish(topic, payload(i, size))
      if (intervalMs > 0) await new Promise(resolve => setTimeout(resolve, intervalMs))
    }
    return { event: 'published', count, seconds: Number(process.hrtime.bigint() - start) / 1e9, stalled }
  }

  async wait (count, idleSeconds) {
    let last = -1
    while (this.seen.size < count && this.seen.size !== last) {
      last = this.seen.size
      await new Promise(resolve => {
        const timer = setTimeout(resolve, idleSeconds * 1000)
        this.waiter = { count, done: () => { clearTimeout(timer); resolve() } }
      })
      this.waiter = null
    }
    return {
      event: 'received',
      count: this.seen.size,
      duplicates: this.duplicates,
      first_sent_ns: this.firstSent == null ? null : Number(this.firstSent),
      last_arrival_ns: this.lastArrival == null ? null : Number(this.lastArrival),
      latencies_us: this.latencies
    }
  }
}

const COMMANDS = {
  connect: async (b, [addr]) => {
    const conn = await b.node.dial(multiaddr(addr), { signal: AbortSignal.timeout(30000) })
    return { event: 'connected', peer_id: conn.remotePeer.toString() }
  },
  subscribe: async (b, [topic]) => { b.ps.subscribe(topic); return { event: 'subscribed', topic } },
  mesh: async (b, [topic]) => ({ event: 'mesh', topic, peers: b.ps.getMeshPeers(topic).map(String).sort() }),
  ack: async (b, [every]) => { b.ackEvery = Number(every); return { event: 'ack', every: b.ackEvery } },
  reset: async b => { b.reset(); return { event: 'reset' } },
  publish: async (b, [topic, n, size, window, interval]) =>
    b.publish(topic, Number(n), Number(size), Number(window), Number(interval)),
  wait: async (b, [n, idle]) => b.wait(Number(n), Number(idle))
}

async function main () {
  const { values } = parseArgs({ options: { listen: { type: 'string', default: '/ip4/127.0.0.1/tcp/0' } } })
  const node = await createLibp2p({
    addresses: { listen: [values.listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { allow: LOOPBACK },
    services: {
      identify: identify(),
      pubsub: gossipsub({ floodPublish: false, allowPublishToZeroTopicPeers: true })
    }
  })
  const bench = new Bench(node)
  emit('listening', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  emit('ready')
  let queue = Promise.resolve()
  const lines = createInterface({ input: process.stdin, terminal: false })
  lines.on('line', line => {
    const [name, ...args] = line.trim().split(/\s+/)
    if (name === '') return
    queue = queue.then(async () => {
      try {
        const cmd = COMMANDS[name]
        if (cmd == null) throw new Error(`bad command: ${line}`)
        const { event, ...fields } = await cmd(bench, args)
        emit(event, { ...fields, command: name })
      } catch (err) {
        emit('command_error', { command: name, message: String(err) })
      }
    })
  })
  lines.on('close', () => {
    queue.then(() => node.stop()).finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 5000).unref()
  })
}

main().catch(err => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit('error', { message: String(err) })
  process.exit(1)
})
