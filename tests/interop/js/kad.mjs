// Kademlia DHT part of the js interop peer (@libp2p/kad-dht, /ipfs/kad/1.0.0,
// https://github.com/libp2p/specs/blob/master/kad-dht/README.md): the service configuration
// and the commands read from stdin. The contract is described in ../README.md.

import { createInterface } from 'node:readline'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createIPNSRecord, marshalIPNSRecord, multihashToIPNSRoutingKey } from 'ipns'
import { ipnsSelector } from 'ipns/selector'
import { ipnsValidator } from 'ipns/validator'
import { CID } from 'multiformats/cid'

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The kad-dht service: server or client mode, loopback addresses kept, one accept-anything
 * validator (and first-wins selector) per `--dht-namespace`, next to kad-dht's own `pk` and the
 * `ipns` package's IPNS validator and selector (kad-dht has no `ipns` one of its own: Helia
 * registers these two, as here). */
export function kadService (cfg) {
  const validators = { ipns: ipnsValidator }
  const selectors = { ipns: ipnsSelector }
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
  const errors = [] // e.g. "Value not put correctly": the answer did not echo the record
  for await (const event of ctx.dht.put(encoder.encode(key), encoder.encode(value), ctx.opts())) {
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') storedAt++
    if (event.name === 'QUERY_ERROR') errors.push({ peer_id: event.from.toString(), message: String(event.error?.message ?? event.error) })
  }
  return { event: 'put', key, stored_at: storedAt, errors }
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

// Binary keys and values (the /pk/ and /ipns/ namespaces) travel as base64 on the command line.
const fromB64 = text => new Uint8Array(Buffer.from(text, 'base64'))
const toB64 = bytes => Buffer.from(bytes).toString('base64')

function errorText (event) {
  return String(event.error?.message ?? event.error)
}

async function putB64 (ctx, [keyB64, valueB64]) {
  let storedAt = 0
  const errors = []
  for await (const event of ctx.dht.put(fromB64(keyB64), fromB64(valueB64), ctx.opts())) {
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') storedAt++
    if (event.name === 'QUERY_ERROR') errors.push({ peer_id: event.from.toString(), message: errorText(event) })
  }
  return { event: 'put', key_b64: keyB64, stored_at: storedAt, errors }
}

async function getB64 (ctx, [keyB64]) {
  // `errors` lists records peers sent that failed validation ("invalid record received").
  let value = null
  const errors = []
  try {
    for await (const event of ctx.dht.get(fromB64(keyB64), ctx.opts())) {
      if (event.name === 'VALUE') value = event.value
      if (event.name === 'QUERY_ERROR') errors.push({ peer_id: event.from.toString(), message: errorText(event) })
    }
  } catch (err) {
    if (err?.name !== 'NotFoundError') throw err
  }
  if (value == null) return { event: 'not_found', key_b64: keyB64, errors }
  return { event: 'value', key_b64: keyB64, value_b64: toB64(value), errors }
}

async function ipnsRecord (_ctx, [keyType, value, seq, lifetimeMs]) {
  // A fresh key (Ed25519 or RSA) and an IPNS record of its name made by the `ipns` package (V1
  // fields included, its default); RSA records embed the public key. Nothing is put.
  const key = await generateKeyPair(keyType)
  const record = await createIPNSRecord(key, value, BigInt(seq), Number(lifetimeMs))
  const multihash = key.publicKey.toMultihash()
  return {
    event: 'ipns_record',
    name: key.publicKey.toString(),
    ipns_key_b64: toB64(multihashToIPNSRoutingKey(multihash)),
    record_b64: toB64(marshalIPNSRecord(record)),
    pk_key_b64: toB64(Buffer.concat([encoder.encode('/pk/'), multihash.bytes])),
    public_key_b64: toB64(publicKeyToProtobuf(key.publicKey))
  }
}

const COMMANDS = {
  put: [put, 2],
  get: [get, 1],
  provide: [provide, 1],
  'find-providers': [findProviders, 1],
  'find-peer': [findPeer, 1],
  table: [table, 0],
  connect: [connect, 1],
  bootstrap: [bootstrap, 0],
  'put-b64': [putB64, 2],
  'get-b64': [getB64, 1],
  'ipns-record': [ipnsRecord, 4]
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
