// Kademlia DHT part of the js interop peer (@libp2p/kad-dht, /ipfs/kad/1.0.0,
// https://github.com/libp2p/specs/blob/master/kad-dht/README.md): the service configuration
// and the commands read from stdin. The contract is described in ../README.md.

import { createInterface } from 'node:readline'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The kad-dht service: server or client mode, loopback addresses kept, one accept-anything
 * validator (and first-wins selector) per `--dht-namespace`, next to js's own `pk` and `ipns`. */
export function kadService (cfg) {
  const validators = {}
  const selectors = {}
  for (const ns of cfg.dhtNamespaces) {
    validators[ns] = async () => {}
    selectors[ns] = () => 0
  }
  return kadDHT({
    clientMode: cfg.dht === 'client',
    // The default mapper drops private and loopback addresses: every test node is on 127.0.0.1.
    peerInfoMapper: passthroughMapper,
    validators,
    selectors
  })
}

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function textOrNull (bytes) {
  try {
    return decoder.decode(bytes)
  } catch {
    return null
  }
}

function peerInfo (peer) {
  return { peer_id: peer.id.toString(), addrs: [...new Set(peer.multiaddrs.map(a => a.toString()))] }
}

async function put (ctx, [key, value]) {
  let storedAt = 0
  for await (const event of ctx.dht.put(encoder.encode(key), encoder.encode(value), ctx.opts())) {
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') storedAt++
  }
  return { event: 'put', key, stored_at: storedAt }
}

async function get (ctx, [key]) {
  let value = null
  try {
    for await (const event of ctx.dht.get(encoder.encode(key), ctx.opts())) {
      if (event.name === 'VALUE') value = event.value // the last VALUE event is the selected one
    }
  } catch (err) {
    if (err?.name !== 'NotFoundError') throw err
  }
  if (value == null) return { event: 'not_found', key }
  return { event: 'value', key, value: textOrNull(value), value_b64: Buffer.from(value).toString('base64') }
}

async function provide (ctx, [cid]) {
  let storedAt = 0
  for await (const event of ctx.dht.provide(CID.parse(cid), ctx.opts())) {
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') storedAt++
  }
  return { event: 'provide', cid, stored_at: storedAt }
}

async function findProviders (ctx, [cid]) {
  const found = new Map()
  for await (const event of ctx.dht.findProviders(CID.parse(cid), ctx.opts())) {
    if (event.name !== 'PROVIDER') continue
    for (const p of event.providers) found.set(p.id.toString(), peerInfo(p))
  }
  return { event: 'providers', cid, providers: [...found.values()] }
}

async function findPeer (ctx, [id]) {
  // useCache: false makes it a network lookup even when the peer store already knows the peer.
  for await (const event of ctx.dht.findPeer(peerIdFromString(id), { ...ctx.opts(), useCache: false })) {
    if (event.name === 'FINAL_PEER') return { event: 'peer', ...peerInfo(event.peer) }
  }
  return { event: 'not_found', peer_id: id }
}

async function table (ctx) {
  const self = ctx.node.peerId.toString()
  const peers = [...ctx.dht.routingTable.kb.toIterable()].map(p => p.peerId.toString())
  return { event: 'table', peers: peers.filter(p => p !== self).sort() }
}

async function connect (ctx, [addr]) {
  const conn = await ctx.node.dial(multiaddr(addr), ctx.opts())
  return { event: 'connected', peer_id: conn.remotePeer.toString(), muxer: conn.multiplexer ?? null }
}

async function bootstrap (ctx) {
  // A self lookup through the current table (js runs one itself a little after start).
  let found = 0
  for await (const event of ctx.dht.getClosestPeers(ctx.node.peerId.toMultihash().bytes, ctx.opts())) {
    if (event.name === 'FINAL_PEER') found++
  }
  return { event: 'bootstrap', closest: found }
}

const COMMANDS = {
  put: [put, 2],
  get: [get, 1],
  provide: [provide, 1],
  'find-providers': [findProviders, 1],
  'find-peer': [findPeer, 1],
  table: [table, 0],
  connect: [connect, 1],
  bootstrap: [bootstrap, 0]
}

async function runCommand (ctx, line) {
  const [name, ...args] = line.trim().split(/\s+/)
  const spec = COMMANDS[name]
  try {
    if (spec == null || spec[1] !== args.length) throw new Error(`bad command: ${line}`)
    const { event, ...fields } = await spec[0](ctx, args)
    emit(event, { ...fields, command: name })
  } catch (err) {
    // A failed command is reported and the peer keeps serving.
    emit('command_error', { command: name, message: err?.name != null ? `${err.name}: ${err.message}` : String(err) })
  }
}

/** Read one command per line from stdin and run them in order, each bounded by --timeout. */
export function serveCommands (node, cfg) {
  const ctx = { node, dht: node.services.dht, opts: () => ({ signal: AbortSignal.timeout(cfg.timeoutMs) }) }
  let queue = Promise.resolve()
  const lines = createInterface({ input: process.stdin, terminal: false })
  lines.on('line', line => {
    if (line.trim() !== '') queue = queue.then(() => runCommand(ctx, line))
  })
}
