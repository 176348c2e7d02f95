// js-libp2p FIND_NODE load generator for the DHT benchmark: C clients (each its own libp2p node
// and connection) ask one DHT server FIND_NODE for random peer IDs as fast as it answers. Each
// request goes on a new /ipfs/kad/1.0.0 stream, written and read as @libp2p/kad-dht's network
// does (one length-prefixed Message each way, then close without waiting):
// https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages
//
// tests/interop/js/node_modules/.bin/node benchmarks/kad_js.mjs --target ADDR [--clients 8]
//   [--warmup 2] [--seconds 10]
// prints the JSON `window` and `load` events of benchmarks/kad_load.py.

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

// The libp2p packages live in the interop peer's node_modules, not beside this script.
const MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'interop', 'js', 'node_modules')

async function load (name) {
  const pkg = JSON.parse(readFileSync(join(MODULES, name, 'package.json'), 'utf8'))
  const entry = pkg.exports['.'].import
  return import(pathToFileURL(join(MODULES, name, entry)).href)
}

const { createLibp2p } = await load('libp2p')
const { tcp } = await load('@libp2p/tcp')
const { noise } = await load('@chainsafe/libp2p-noise')
const { yamux } = await load('@chainsafe/libp2p-yamux')
const { identify } = await load('@libp2p/identify')
const { ping } = await load('@libp2p/ping')
const { lpStream } = await load('@libp2p/utils')
const { multiaddr } = await load('@multiformats/multiaddr')

const PROTOCOL = '/ipfs/kad/1.0.0'
const FIND_NODE = 4
const PEER_ID_PREFIX = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) // identity mh, Ed25519
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
const MAX_ERRORS = 1000

/** A FIND_NODE Message: field 1 (type) varint, field 2 (key) bytes; keys are < 128 bytes. */
function findNode (key) {
  return Uint8Array.from([0x08, FIND_NODE, 0x12, key.length, ...key])
}

function readVarint (buf, pos) {
  let value = 0
  let shift = 0
  for (;;) {
    const b = buf[pos++]
    value += (b & 0x7f) * 2 ** shift
    if (b < 0x80) return [value, pos]
    shift += 7
  }
}

/** How many closerPeers (field 8) a Message carries. */
function countCloser (buf) {
  let pos = 0
  let count = 0
  while (pos < buf.length) {
    let tag
    [tag, pos] = readVarint(buf, pos)
    const wire = tag & 7
    if (wire === 0) {
      [, pos] = readVarint(buf, pos)
    } else if (wire === 2) {
      let len
      [len, pos] = readVarint(buf, pos)
      pos += len
      if (tag >>> 3 === 8) count++
    } else if (wire === 1) {
      pos += 8
    } else if (wire === 5) {
      pos += 4
    } else {
      throw new Error(`bad wire type ${wire}`)
    }
  }
  return count
}

async function client (conn, tally) {
  for (;;) {
    const began = performance.now()
    if (began >= tally.end) return
    let stream
    try {
      stream = await conn.newStream(PROTOCOL, { signal: AbortSignal.timeout(10000) })
      const lp = lpStream(stream)
      await lp.write(findNode(Uint8Array.from([...PEER_ID_PREFIX, ...randomBytes(32)])))
      const answer = await lp.read()
      stream.close().catch(err => stream.abort(err))
      const done = performance.now()
      if (done >= tally.start && done <= tally.end) {
        tally.latencies.push(done - began)
        tally.closer += countCloser(answer.subarray())
      }
    } catch (err) {
      stream?.abort(err)
      const name = err?.name ?? 'Error'
      tally.errors[name] = (tally.errors[name] ?? 0) + 1
      if (++tally.failed > MAX_ERRORS) throw err
    }
  }
}

async function main () {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      clients: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '2' },
      seconds: { type: 'string', default: '10' }
    }
  })
  const nodes = []
  for (let i = 0; i < Number(values.clients); i++) {
    nodes.push(await createLibp2p({
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: { allow: LOOPBACK },
      services: { identify: identify(), ping: ping() }
    }))
  }
  const conns = []
  for (const node of nodes) conns.push(await node.dial(multiaddr(values.target), { signal: AbortSignal.timeout(30000) }))
  const now = performance.now()
  const seconds = Number(values.seconds)
  const tally = { start: now + Number(values.warmup) * 1000, latencies: [], closer: 0, errors: {}, failed: 0 }
  tally.end = tally.start + seconds * 1000
  let cpu0 = null
  const announce = setTimeout(() => {
    // The window starts: the harness samples the server's CPU time now.
    cpu0 = process.cpuUsage()
    process.stdout.write(JSON.stringify({ event: 'window' }) + '\n')
  }, tally.start - performance.now())
  await Promise.all(conns.map(conn => client(conn, tally)))
  clearTimeout(announce)
  const cpu = process.cpuUsage(cpu0 ?? undefined)
  const lat = tally.latencies.sort((a, b) => a - b)
  const n = lat.length
  process.stdout.write(JSON.stringify({
    event: 'load',
    requests: n,
    seconds,
    per_second: n / seconds,
    errors: tally.failed,
    error_kinds: tally.errors,
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    closer_mean: n > 0 ? tally.closer / n : null,
    p50_ms: n > 0 ? lat[Math.floor(n / 2)] : null,
    p99_ms: n > 0 ? lat[Math.min(n - 1, Math.floor(n * 0.99))] : null
  }) + '\n')
  await Promise.all(nodes.map(node => node.stop()))
}

main().then(() => process.exit(0), err => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.stdout.write(JSON.stringify({ event: 'error', message: String(err) }) + '\n')
  process.exit(1)
})
