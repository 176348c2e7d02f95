// js-libp2p 3.x circuit relay v2 interop peer (@libp2p/circuit-relay-v2): TCP + Noise + yamux +
// identify + ping, in one of three roles, printing JSON lines:
//   --role relay --listen MA                 a relay (hop) server; prints `listening`
//   --role listener --relay MA               reserves at the relay, listens on MA/p2p-circuit,
//                                            serves echo on limited connections; prints
//                                            `listening` once a /p2p-circuit address is known
//   --role dialer --dial MA [--bytes N]      dials MA (a /p2p-circuit address), echoes N bytes
//                                            over a limited connection; prints `echo` or
//                                            `dial_error` {message}, then `done`
// Loopback: js's relay server refuses nothing for loopback peers by default; the connection
// manager's inbound rate limit is lifted for loopback as in peer.mjs.

import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const ECHO_PROTOCOL = '/p2pstack/echo/1.0.0'
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function fail (err) {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit('error', { message: String(err?.message ?? err) })
  process.exit(1)
}

const { values: cfg } = parseArgs({
  args: process.argv.slice(2),
  options: {
    role: { type: 'string' },
    listen: { type: 'string', default: '/ip4/127.0.0.1/tcp/0' },
    relay: { type: 'string' },
    dial: { type: 'string' },
    bytes: { type: 'string', default: '1024' },
    timeout: { type: 'string', default: '30' }
  },
  strict: true
})
const timeoutMs = Number(cfg.timeout) * 1000

async function createNode () {
  const services = { identify: identify(), ping: ping() }
  const addresses = { listen: [] }
  const transports = [tcp()]
  if (cfg.role === 'relay') {
    services.relay = circuitRelayServer({ reservations: { maxReservations: 32 } })
    addresses.listen = [cfg.listen]
  } else {
    transports.push(circuitRelayTransport())
    if (cfg.role === 'listener') addresses.listen = [`${cfg.relay}/p2p-circuit`]
  }
  return createLibp2p({
    addresses,
    transports,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { allow: LOOPBACK },
    services
  })
}

async function echoHandler (stream) {
  for await (const chunk of stream) {
    const data = chunk.subarray()
    if (!stream.send(data)) await stream.onDrain()
  }
  await stream.close()
}

async function echoOnce (conn, size) {
  const stream = await conn.newStream(ECHO_PROTOCOL, {
    runOnLimitedConnection: true,
    signal: AbortSignal.timeout(timeoutMs)
  })
  const payload = new Uint8Array(size).map((_, i) => i % 251)
  const reading = (async () => {
    const parts = []
    let got = 0
    for await (const chunk of stream) {
      parts.push(chunk.subarray())
      got += chunk.byteLength
      if (got >= size) break
    }
    return Buffer.concat(parts)
  })()
  if (!stream.send(payload)) await stream.onDrain()
  await stream.close()
  const back = await reading
  return Buffer.compare(back, Buffer.from(payload)) === 0
}

function watchShutdown (node) {
  const stop = () => { node.stop().finally(() => process.exit(0)) }
  process.on('SIGTERM', stop)
  process.stdin.on('end', stop)
  process.stdin.resume()
}

async function main () {
  const node = await createNode()
  await node.handle(ECHO_PROTOCOL, echoHandler, { runOnLimitedConnection: true })
  if (cfg.role === 'relay') {
    watchShutdown(node)
    emit('listening', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(a => a.toString()) })
    return
  }
  if (cfg.role === 'listener') {
    watchShutdown(node)
    const circuit = () => node.getMultiaddrs().map(a => a.toString()).filter(a => a.includes('/p2p-circuit'))
    const deadline = Date.now() + timeoutMs
    while (circuit().length === 0) {
      if (Date.now() > deadline) throw new Error('no /p2p-circuit address within the timeout')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    emit('listening', { peer_id: node.peerId.toString(), addrs: circuit() })
    return
  }
  if (cfg.role === 'dialer') {
    try {
      const conn = await node.dial(multiaddr(cfg.dial), { signal: AbortSignal.timeout(timeoutMs) })
      const ok = await echoOnce(conn, Number(cfg.bytes))
      emit('echo', { ok, bytes: Number(cfg.bytes), limited: conn.limits != null })
    } catch (err) {
      emit('dial_error', { message: String(err?.message ?? err) })
    }
    emit('done')
    await node.stop()
    process.exit(0)
  }
  throw new Error(`unknown role ${cfg.role}`)
}

main().catch(fail)
