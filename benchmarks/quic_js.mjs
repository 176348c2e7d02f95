// js-libp2p QUIC benchmark peer (@chainsafe/libp2p-quic 2.1.1: rust quinn + rustls in a native
// addon) with /perf/1.0.0 (https://github.com/libp2p/specs/blob/master/perf/perf.md) and ping,
// speaking the benchmark peers' contract (benchmarks/quic.py): `--listen MA` prints `listening`
// and serves until stdin ends; `--dial MA --actions perf:UP:DOWN,dials:N` prints one event per
// action and `done`. Perf events carry this process's CPU time of each phase (process.cpuUsage,
// every thread: quinn runs in the addon's own threads).
//
// tests/interop/js/node_modules/.bin/node benchmarks/quic_js.mjs --listen /ip4/127.0.0.1/udp/0/quic-v1

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

// The libp2p packages live in the interop peer's node_modules, not beside this script.
const MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'interop', 'js', 'node_modules')

async function load (name) {
  const pkg = JSON.parse(readFileSync(join(MODULES, name, 'package.json'), 'utf8'))
  const entry = pkg.exports['.']
  return import(pathToFileURL(join(MODULES, name, entry.import ?? entry)).href)
}

const { createLibp2p } = await load('libp2p')
const { quic } = await load('@chainsafe/libp2p-quic')
const { ping } = await load('@libp2p/ping')
const { identify } = await load('@libp2p/identify')
const { multiaddr } = await load('@multiformats/multiaddr')

const PERF = '/perf/1.0.0'
const BLOCK = 256 * 1024 // bytes per send
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
const ZEROS = new Uint8Array(BLOCK)

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function cpuSeconds () {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** Send `count` zero bytes, waiting for the stream to drain under backpressure. */
async function sendZeros (stream, count) {
  while (count > 0) {
    const n = Math.min(BLOCK, count)
    if (!stream.send(n === BLOCK ? ZEROS : ZEROS.subarray(0, n))) await stream.onDrain()
    count -= n
  }
}

async function servePerf (stream) {
  let header = new Uint8Array(0)
  for await (const chunk of stream) {
    if (header.byteLength < 8) {
      const buf = chunk.subarray()
      header = Buffer.concat([header, buf.subarray(0, Math.min(8 - header.byteLength, buf.byteLength))])
    }
  }
  await sendZeros(stream, Number(Buffer.from(header).readBigUInt64BE(0)))
  await stream.close()
}

async function perf (node, conn, up, down, timeoutMs) {
  const cpu0 = cpuSeconds()
  const start = performance.now()
  const stream = await conn.newStream(PERF, { signal: AbortSignal.timeout(timeoutMs) })
  let first = null
  let cpu1 = null
  let received = 0
  // Read concurrently with closing: a reader attached after close() can miss the FIN.
  const reading = (async () => {
    for await (const chunk of stream) {
      if (first == null) { first = performance.now(); cpu1 = cpuSeconds() }
      received += chunk.byteLength
    }
  })()
  const header = Buffer.alloc(8)
  header.writeBigUInt64BE(BigInt(down))
  stream.send(header)
  await sendZeros(stream, up)
  await stream.close()
  await reading
  const end = performance.now()
  if (received !== down) throw new Error(`perf: asked for ${down} bytes, got ${received}`)
  first ??= end
  cpu1 ??= cpuSeconds()
  const upS = (first - start) / 1000
  const downS = (end - first) / 1000
  emit('perf', {
    upload_bytes: up,
    download_bytes: down,
    seconds: (end - start) / 1000,
    upload_mbps: upS > 0 ? up / 1e6 / upS : null,
    download_mbps: downS > 0 ? down / 1e6 / downS : null,
    upload_cpu_s: cpu1 - cpu0,
    download_cpu_s: cpuSeconds() - cpu1
  })
}

/** N x (close the connection, dial anew, first ping): ms from dial start to the pong. */
async function dials (node, target, count, timeoutMs) {
  const ms = []
  for (let i = 0; i < count; i++) {
    const signal = AbortSignal.timeout(timeoutMs)
    await Promise.all(node.getConnections().map(c => c.close({ signal })))
    const start = performance.now()
    const conn = await node.dial(target, { signal })
    await node.services.ping.ping(conn.remotePeer, { signal })
    ms.push(performance.now() - start)
  }
  emit('dials', { count, ms })
}

async function main () {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string' },
      dial: { type: 'string' },
      actions: { type: 'string', default: '' },
      timeout: { type: 'string', default: '300' },
      muxer: { type: 'string', multiple: true } // ignored: QUIC has its own streams
    }
  })
  const timeoutMs = Number(values.timeout) * 1000
  const node = await createLibp2p({
    addresses: { listen: values.listen != null ? [values.listen] : [] },
    transports: [quic()],
    connectionManager: { allow: LOOPBACK },
    services: { ping: ping(), identify: identify() }
  })
  await node.handle(PERF, (stream) => servePerf(stream).catch(err => stream.abort(err)), { maxInboundStreams: 64 })
  if (values.listen != null) {
    emit('listening', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(a => a.toString()) })
    process.stdin.on('end', () => node.stop().finally(() => process.exit(0)))
    process.stdin.resume()
    return
  }
  const target = multiaddr(values.dial)
  const conn = await node.dial(target, { signal: AbortSignal.timeout(timeoutMs) })
  emit('connected', { peer_id: conn.remotePeer.toString(), muxer: conn.multiplexer ?? null })
  for (const item of values.actions.split(',').filter(Boolean)) {
    const [name, ...nums] = item.split(':').map((x, i) => i === 0 ? x : Number(x))
    if (name === 'perf') await perf(node, node.getConnections()[0] ?? await node.dial(target), nums[0], nums[1], timeoutMs)
    else if (name === 'dials') await dials(node, target, nums[0], timeoutMs)
    else throw new Error(`bad action ${item}`)
  }
  emit('done')
  setTimeout(() => process.exit(0), 3000).unref()
  await node.stop()
  process.exit(0)
}

main().catch(err => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit('error', { message: String(err?.message ?? err) })
  process.exit(1)
})
