// js-libp2p 3.x AutoNAT interop peer: TCP + Noise + yamux + identify, and
//   --mode serve : runs @libp2p/autonat (v1) and @libp2p/autonat-v2 as servers (and clients);
//   --mode ask-v1: sends one AutoNAT v1 DIAL (js's own protobuf codec) to the --dial peer;
//   --mode ask-v2: sends one AutoNAT v2 DialRequest, pays dial data if asked, answers the
//                  dial back on /libp2p/autonat/2/dial-back.
// js's own AutoNAT clients never ask about private or loopback addresses, so the ask modes
// drive the exchange with js's codecs and streams to reach our server on loopback.
// Specs: https://github.com/libp2p/specs/tree/master/autonat
// Output: JSON lines (listening, connected, v1_response, dial_data_request, dial_back,
// v2_response, v2_closed, done, error).

import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNAT } from '@libp2p/autonat'
import { autoNATv2 } from '@libp2p/autonat-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { pbStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Message as V1Message } from './node_modules/@libp2p/autonat/dist/src/pb/index.js'
import { DialBack, DialBackResponse, Message as V2Message } from './node_modules/@libp2p/autonat-v2/dist/src/pb/index.js'

const V1 = '/libp2p/autonat/1.0.0'
const DIAL_REQUEST = '/libp2p/autonat/2/dial-request'
const DIAL_BACK = '/libp2p/autonat/2/dial-back'
const CHUNK = 4096
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8']

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function fail (err) {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit('error', { message: String(err?.message ?? err) })
  process.exit(1)
}

const { values: opts } = parseArgs({
  options: {
    mode: { type: 'string', default: 'serve' },
    listen: { type: 'string', multiple: true },
    dial: { type: 'string' },
    ask: { type: 'string', multiple: true },
    'peer-id': { type: 'string' }
  },
  strict: true
})

async function askV1 (node, conn) {
  const stream = await conn.newStream(V1)
  const messages = pbStream(stream).pb(V1Message)
  const id = opts['peer-id'] != null
    ? (await import('@libp2p/peer-id')).peerIdFromString(opts['peer-id']).toMultihash().bytes
    : node.peerId.toMultihash().bytes
  await messages.write({
    type: V1Message.MessageType.DIAL,
    dial: { peer: { id, addrs: (opts.ask ?? []).map(a => multiaddr(a).bytes) } }
  })
  const reply = await messages.read()
  const r = reply.dialResponse ?? {}
  emit('v1_response', {
    type: reply.type,
    status: r.status,
    status_text: r.statusText ?? '',
    addr: r.addr != null ? multiaddr(r.addr).toString() : null
  })
  await stream.close()
}

async function askV2 (node, conn) {
  const nonce = BigInt.asUintN(64, BigInt(Date.now()) * 7919n + 12345n)
  await node.handle(DIAL_BACK, async (stream) => {
    const messages = pbStream(stream)
    const back = await messages.read(DialBack)
    emit('dial_back', { nonce_matches: back.nonce === nonce })
    await messages.write({ status: DialBackResponse.DialBackStatus.OK }, DialBackResponse)
    await stream.close()
  })
  const stream = await conn.newStream(DIAL_REQUEST)
  const messages = pbStream(stream).pb(V2Message)
  await messages.write({ dialRequest: { addrs: (opts.ask ?? []).map(a => multiaddr(a).bytes), nonce } })
  for (;;) {
    let msg
    try {
      msg = await messages.read()
    } catch (err) {
      emit('v2_closed', { error: String(err?.name ?? err) })
      return
    }
    if (msg.dialDataRequest != null) {
      const want = Number(msg.dialDataRequest.numBytes)
      emit('dial_data_request', { addr_idx: msg.dialDataRequest.addrIdx, num_bytes: want })
      for (let sent = 0; sent < want; sent += CHUNK) {
        await messages.write({ dialDataResponse: { data: new Uint8Array(CHUNK) } })
      }
      continue
    }
    if (msg.dialResponse != null) {
      const r = msg.dialResponse
      emit('v2_response', { status: r.status, addr_idx: r.addrIdx, dial_status: r.dialStatus })
      await stream.close()
      return
    }
  }
}

async function main () {
  const services = { identify: identify() }
  if (opts.mode === 'serve') {
    services.autoNAT = autoNAT()
    services.autoNATv2 = autoNATv2()
  }
  const node = await createLibp2p({
    addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { allow: LOOPBACK },
    services
  })
  const stop = async () => {
    setTimeout(() => process.exit(0), 3000).unref()
    await node.stop()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  emit('listening', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  if (opts.dial == null) return
  const conn = await node.dial(multiaddr(opts.dial))
  emit('connected', { peer_id: conn.remotePeer.toString() })
  if (opts.mode === 'ask-v1') await askV1(node, conn)
  if (opts.mode === 'ask-v2') await askV2(node, conn)
  emit('done')
}

main().catch(fail)
