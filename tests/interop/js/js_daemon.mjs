// A standalone p2pd-compatible daemon built from js-libp2p: a libp2p 3.x node (tcp, noise,
// yamux/mplex, identify, ping, kad-dht, gossipsub/floodsub) wrapped by @libp2p/daemon-server's
// control protocol (https://github.com/libp2p/go-libp2p-daemon/blob/master/specs/CONTROL.md).
// It takes a subset of go p2pd's flags, in both spellings (`-flag=value` and `-flag value`):
//   -listen MA          control socket (default /unix/tmp/p2pd.sock; /ip4/127.0.0.1/tcp/0 works)
//   -hostAddrs A,B      libp2p listen addresses (default /ip4/127.0.0.1/tcp/0)
//   -noListenAddrs      no libp2p listen address
//   -id FILE            private key: raw protobuf PrivateKey bytes
//   -dht -dhtServer -dhtClient, -pubsub, -pubsubRouter gossipsub|floodsub
//   -muxer yamux|mplex, -noise -tls (default noise; =false turns one off), -q
// and prints, as p2pd does: `Control socket: MA`, `Peer ID: ID`, `Peer Addrs:` then one address
// per line. SIGINT/SIGTERM stop it. An unknown flag exits 2 with a one-line message.

import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { createServer } from '@libp2p/daemon-server'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const BOOLEAN = new Set(['noListenAddrs', 'dht', 'dhtServer', 'dhtClient', 'pubsub', 'noise',
  'tls', 'plaintext', 'relay', 'q', 'b', 'quic'])
const STRING = new Set(['listen', 'hostAddrs', 'id', 'pubsubRouter', 'muxer', 'bootstrapPeers',
  'security'])
const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

function usage (message) {
  process.stderr.write(`js_daemon: ${message}\n`)
  process.exit(2)
}

function parseFlags (argv) {
  const flags = { noise: true, relay: true }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const m = /^--?([A-Za-z]+)(?:=(.*))?$/.exec(arg)
    if (m == null) usage(`unexpected argument ${JSON.stringify(arg)}`)
    const [, name, inline] = m
    if (BOOLEAN.has(name)) {
      if (inline != null && !['true', 'false'].includes(inline)) usage(`-${name} takes true or false`)
      flags[name] = inline == null ? true : inline === 'true'
    } else if (STRING.has(name)) {
      const value = inline ?? argv[++i]
      if (value == null) usage(`-${name} needs a value`)
      flags[name] = value
    } else {
      usage(`unknown flag -${name}`)
    }
  }
  return flags
}

async function main () {
  const flags = parseFlags(process.argv.slice(2))
  const privateKey = flags.id != null
    ? privateKeyFromProtobuf(readFileSync(flags.id))
    : await generateKeyPair('Ed25519')
  const listen = flags.noListenAddrs
    ? []
    : (flags.hostAddrs ?? '/ip4/127.0.0.1/tcp/0').split(',').filter(a => a !== '')
  const security = flags.security != null ? [flags.security] : ['noise', 'tls'].filter(s => flags[s])
  const encrypters = { noise: () => noise(), tls: () => tls() }
  for (const s of security) if (encrypters[s] == null) usage(`unsupported security ${s}`)
  const muxers = { yamux: () => yamux(), mplex: () => mplex() }
  const muxer = flags.muxer ?? 'yamux'
  if (muxers[muxer] == null) usage(`unsupported muxer ${muxer}`)
  const services = { identify: identify(), ping: ping() }
  if (flags.dht || flags.dhtServer || flags.dhtClient) {
    services.dht = kadDHT({
      clientMode: flags.dhtClient === true && flags.dhtServer !== true,
      // The default mapper drops loopback addresses: every test daemon is on 127.0.0.1.
      peerInfoMapper: passthroughMapper
    })
  }
  if (flags.pubsub) {
    const router = flags.pubsubRouter ?? 'gossipsub'
    if (router === 'floodsub') services.pubsub = floodsub()
    else if (router === 'gossipsub') services.pubsub = gossipsub({ heartbeatInterval: 1000 })
    else usage(`unsupported pubsub router ${router}`)
  }
  const node = await createLibp2p({
    privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: security.map(s => encrypters[s]()),
    streamMuxers: [muxers[muxer]()],
    connectionManager: { allow: LOOPBACK },
    services
  })
  // @multiformats/multiaddr 13 wants a unix path percent-encoded in text form
  // (`/unix/%2Ftmp%2Fp2pd.sock`); p2pd and its clients write it plainly (`/unix/tmp/p2pd.sock`).
  const listenText = flags.listen ?? '/unix/tmp/p2pd.sock'
  const unixPath = listenText.startsWith('/unix/') ? listenText.slice('/unix'.length) : null
  const control = unixPath != null
    ? multiaddr(`/unix/${encodeURIComponent(unixPath)}`)
    : multiaddr(listenText)
  const server = createServer(control, node)
  await server.start()
  const shown = unixPath != null ? `/unix${unixPath}` : server.getMultiaddr().toString()
  process.stdout.write(`Control socket: ${shown}\n`)
  process.stdout.write(`Peer ID: ${node.peerId.toString()}\n`)
  process.stdout.write('Peer Addrs:\n')
  for (const addr of node.getMultiaddrs()) {
    process.stdout.write(`${addr.decapsulateCode(421).toString()}\n`)
  }
  const stop = () => {
    setTimeout(() => process.exit(0), 3000).unref()
    server.stop().finally(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch(err => {
  process.stderr.write(`js_daemon: ${err?.message ?? err}\n`)
  process.exit(1)
})
