// The @libp2p/interop daemon factory: the `go` slot runs `p2pstack daemon` (spawned with the
// flags js-libp2p's own runner gives go's p2pd), the `js` slot an in-process js-libp2p node
// behind @libp2p/daemon-server, or, with mode "self", p2pstack's daemon too.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { createClient } from '@libp2p/daemon-client'
import { createServer } from '@libp2p/daemon-server'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { UnsupportedError } from '@libp2p/interop'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { plaintext } from './plaintext.mjs'

const READY_TIMEOUT_MS = 15000

// The command that runs p2pstack's daemon: P2PSTACK_DAEMON (a JSON array), else python -m.
function daemonCommand () {
  if (process.env.P2PSTACK_DAEMON != null) {
    return JSON.parse(process.env.P2PSTACK_DAEMON)
  }
  return [process.env.P2PSTACK_PYTHON ?? 'python3', '-m', 'p2pstack.roots.cli', 'daemon']
}

// The flags js-libp2p's runner (packages/integration-tests/test/interop.ts) passes to p2pd,
// except that the control port is chosen by the daemon and read back from its first line.
export function p2pdFlags (options) {
  const flags = ['-listen=/ip4/127.0.0.1/tcp/0']
  if (options.noListen === true) {
    flags.push('-noListenAddrs')
  } else if (options.transport == null || options.transport === 'tcp') {
    flags.push('-hostAddrs=/ip4/127.0.0.1/tcp/0')
  } else {
    throw new UnsupportedError(`p2pstack daemon: no ${options.transport} transport`)
  }
  if (options.encryption != null) flags.push(`-${options.encryption}=true`)
  if (options.dht === true) flags.push('-dhtServer')
  if (options.relay === true) flags.push('-relay')
  if (options.pubsub === true) flags.push('-pubsub')
  if (options.pubsubRouter != null) flags.push(`-pubsubRouter=${options.pubsubRouter}`)
  if (options.key != null) flags.push(`-id=${options.key}`)
  flags.push(options.muxer === 'mplex' ? '-muxer=mplex' : '-muxer=yamux')
  return flags
}

async function spawnP2pstack (options) {
  const [cmd, ...args] = daemonCommand()
  // Compiled modules are cached (outside the source tree) even where the environment says
  // PYTHONDONTWRITEBYTECODE: recompiling the stack would cost each daemon a second at start.
  const env = { ...process.env, PYTHONPYCACHEPREFIX: process.env.PYTHONPYCACHEPREFIX ?? path.join(os.tmpdir(), 'p2pstack-pycache') }
  delete env.PYTHONDONTWRITEBYTECODE
  const proc = spawn(cmd, [...args, ...p2pdFlags(options)], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const control = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`p2pstack daemon not ready in ${READY_TIMEOUT_MS} ms: ${stderr}`))
    }, READY_TIMEOUT_MS)
    proc.stdout.on('data', (buf) => {
      stdout += buf.toString()
      const match = /Control socket: (\S+)/.exec(stdout)
      if (match != null) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    proc.stderr.on('data', (buf) => { stderr = (stderr + buf.toString()).slice(-4000) })
    proc.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`p2pstack daemon exited (${code}) before it was ready: ${stderr}`))
    })
  })
  return {
    client: createClient(multiaddr(control)),
    stop: async () => {
      if (proc.exitCode != null) return
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  }
}

function encrypter (name) {
  if (name === 'tls') return tls()
  if (name === 'plaintext') return plaintext()
  return noise()
}

async function spawnJs (options) {
  if (options.transport != null && options.transport !== 'tcp') {
    throw new UnsupportedError(`js slot: no ${options.transport} transport installed`)
  }
  const privateKey = options.key != null ? privateKeyFromProtobuf(fs.readFileSync(options.key)) : undefined
  const services = { identify: identify(), ping: ping() }
  if (options.pubsub === true) {
    services.pubsub = options.pubsubRouter === 'floodsub' ? floodsub() : gossipsub()
  }
  if (options.relay === true) services.relay = circuitRelayServer()
  if (options.dht === true) {
    services.dht = kadDHT({ protocol: '/ipfs/kad/1.0.0', peerInfoMapper: passthroughMapper, clientMode: false })
  }
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: options.noListen === true ? [] : ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [encrypter(options.encryption)],
    streamMuxers: [options.muxer === 'mplex' ? mplex() : yamux()],
    services
  })
  const server = createServer(multiaddr('/ip4/127.0.0.1/tcp/0'), node)
  await server.start()
  return {
    client: createClient(server.getMultiaddr()),
    stop: async () => {
      await server.stop()
      await node.stop()
    }
  }
}

// mode "mixed": js slot = js-libp2p, go slot = p2pstack; mode "self": both slots p2pstack.
export function makeFactory (mode) {
  return {
    async spawn (options) {
      if (options.type === 'go' || mode === 'self') {
        return spawnP2pstack(options)
      }
      return spawnJs(options)
    }
  }
}
