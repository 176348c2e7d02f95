// js-libp2p 3.x circuit relay v2 *client* peer (@libp2p/circuit-relay-v2 transport) for testing
// a relay (https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md): TCP + Noise + yamux.
//   --relay MA --listen          reserve at the relay, serve echo over relayed connections,
//                                print {"event":"listening","peer_id","addrs"} once reserved
//   --relay MA --dial PEER_ID    connect through the relay to PEER_ID, echo --size bytes, print
//                                {"event":"echoed","bytes"} or {"event":"dial_failed"|"echo_failed","message"}
//   --refused PEER_ID            (with --dial) first dial PEER_ID, which has no reservation, and
//                                print {"event":"dial_failed","peer_id","message"}
// JSON lines on stdout; stdin EOF or SIGTERM stops a listener.

import { fstatSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const ECHO_PROTOCOL = '/p2pstack/echo/1.0.0'
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
const BLOCK = 16 * 1024

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function fail (err) {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit('error', { message: String(err?.message ?? err) })
  process.exit(1)
}

const { values } = parseArgs({
  options: {
    relay: { type: 'string' },
    listen: { type: 'boolean', default: false },
    dial: { type: 'string' },
    refused: { type: 'string' },
    size: { type: 'string', default: '1000' },
    timeout: { type: 'string', default: '30' }
  },
  strict: true
})
if (values.relay == null || (values.listen === (values.dial != null))) {
  fail(new Error('need --relay MA and one of --listen, --dial PEER_ID'))
}
const timeoutMs = Number(values.timeout) * 1000

const node = await createLibp2p({
  addresses: { listen: values.listen ? [`${values.relay}/p2p-circuit`] : [] },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { allow: LOOPBACK },
  connectionGater: { denyDialMultiaddr: () => false },
  services: { identify: identify() }
})

async function send (stream, chunk) {
  if (!stream.send(chunk)) await stream.onDrain()
}

async function serveEcho (stream, connection) {
  let bytes = 0
  try {
    for await (const chunk of stream) {
      bytes += chunk.byteLength
      await send(stream, chunk.subarray())
    }
    await stream.close()
    emit('served', { peer_id: connection.remotePeer.toString(), bytes, limited: connection.limits != null })
  } catch (err) {
    emit('handler_error', { message: String(err?.message ?? err), bytes })
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

async function listen () {
  await node.handle(ECHO_PROTOCOL, serveEcho, { runOnLimitedConnection: true })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const addrs = node.getMultiaddrs().map(a => a.toString()).filter(a => a.includes('/p2p-circuit'))
    if (addrs.length > 0) {
      emit('listening', { peer_id: node.peerId.toString(), addrs })
      break
    }
    if (Date.now() > deadline) throw new Error('no relayed address within the timeout')
    await new Promise(resolve => node.addEventListener('self:peer:update', resolve, { once: true }))
  }
  const stop = async () => {
    setTimeout(() => process.exit(0), 5000).unref()
    await node.stop()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  const st = fstatSync(0)
  if (st.isFIFO() || st.isSocket()) {
    process.stdin.on('end', stop)
    process.stdin.resume()
  }
}

async function dialRefused (peer) {
  try {
    await node.dial(multiaddr(`${values.relay}/p2p-circuit/p2p/${peer}`), { signal: AbortSignal.timeout(timeoutMs) })
    emit('connected', { peer_id: peer })
  } catch (err) {
    emit('dial_failed', { peer_id: peer, message: String(err?.message ?? err) })
  }
}

async function dial () {
  if (values.refused != null) await dialRefused(values.refused)
  const target = multiaddr(`${values.relay}/p2p-circuit/p2p/${values.dial}`)
  let stream
  try {
    const conn = await node.dial(target, { signal: AbortSignal.timeout(timeoutMs) })
    emit('connected', { peer_id: conn.remotePeer.toString(), limited: conn.limits != null })
    stream = await conn.newStream(ECHO_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    emit('dial_failed', { peer_id: values.dial, message: String(err?.message ?? err) })
    return
  }
  const size = Number(values.size)
  let received = 0
  try {
    const reading = (async () => {
      for await (const chunk of stream) received += chunk.byteLength
    })()
    const block = new Uint8Array(BLOCK).fill(7)
    for (let left = size; left > 0; left -= BLOCK) {
      await send(stream, left >= BLOCK ? block : block.subarray(0, left))
    }
    await stream.close()
    await Promise.race([reading, new Promise((_resolve, reject) => setTimeout(() => reject(new Error('echo timed out')), timeoutMs))])
    if (received !== size) throw new Error(`echo returned ${received} of ${size} bytes`)
    emit('echoed', { bytes: received })
  } catch (err) {
    emit('echo_failed', { message: String(err?.message ?? err), received })
  }
}

process.on('unhandledRejection', fail)
process.on('uncaughtException', fail)
if (values.listen) {
  await listen()
} else {
  await dial()
  setTimeout(() => process.exit(0), 5000).unref()
  await node.stop()
  process.exit(0)
}
