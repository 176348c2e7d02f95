// js-libp2p 3.x DCUtR interop peer (@libp2p/dcutr, https://github.com/libp2p/specs/blob/master/relay/DCUtR.md):
// TCP + Noise + yamux + identify + dcutr, listening on --listen. JSON lines on stdout:
//   listening {peer_id, addrs}            once listening
//   connection {peer_id, direction, addr, limited}   each connection opened
//   closed {peer_id, direction, addr}      each connection closed
//   upgrade {ok, error?}                   --initiate only: the result of js's upgradeInbound
// --initiate: js plays the spec's B on the first inbound connection: it runs the DCUtR
// service's upgradeInbound() on it once identified (js only starts DCUtR by itself on relayed connections,
// and there is no relay here). Without it js only answers (the spec's A).
// Ends on stdin EOF or SIGTERM.

import { fstatSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    listen: { type: 'string', default: '/ip4/127.0.0.1/tcp/0' },
    initiate: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '5000' }
  },
  strict: true
})

const node = await createLibp2p({
  addresses: { listen: [values.listen] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { allow: LOOPBACK },
  services: { identify: identify(), dcutr: dcutr({ timeout: Number(values.timeout) }) }
})

let initiated = false
node.addEventListener('connection:open', evt => {
  const c = evt.detail
  emit('connection', {
    peer_id: c.remotePeer.toString(),
    direction: c.direction,
    addr: c.remoteAddr.toString(),
    limited: c.limits != null
  })
})
// B looks the peer up in its peer store first (identify fills it): start after identify.
node.addEventListener('peer:identify', evt => {
  const c = evt.detail.connection
  if (values.initiate && !initiated && c.direction === 'inbound') {
    initiated = true
    node.services.dcutr.upgradeInbound(c)
      .then(() => emit('upgrade', { ok: true }))
      .catch(err => emit('upgrade', { ok: false, error: `${err?.name}: ${err?.message}` }))
  }
})
node.addEventListener('connection:close', evt => {
  const c = evt.detail
  emit('closed', { peer_id: c.remotePeer.toString(), direction: c.direction, addr: c.remoteAddr.toString() })
})

const stop = async () => {
  setTimeout(() => process.exit(0), 3000).unref()
  try { await node.stop() } finally { process.exit(0) }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
const st = fstatSync(0)
if (st.isFIFO() || st.isSocket()) {
  process.stdin.on('end', stop)
  process.stdin.resume()
}
emit('listening', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(a => a.toString()) })
