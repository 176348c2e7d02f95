// Pubsub part of the js interop peer: @libp2p/gossipsub (/meshsub/1.1.0 and friends,
// https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md) or
// @libp2p/floodsub (/floodsub/1.0.0), plus the commands read from stdin.
// The contract is described in ../README.md ("Pubsub mode").

import { createInterface } from 'node:readline'
import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'

const decoder = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()
const LOOPBACK_IP = '127.0.0.1'

/** Message id as js computes it for signed messages: protobuf(public key) ++ seqno (8 bytes BE). */
function jsMsgIdBytes (key, seqno) {
  const id = Buffer.alloc(8)
  id.writeBigUInt64BE(seqno)
  return new Uint8Array(Buffer.concat([publicKeyToProtobuf(key), id]))
}

function jsMsgId (key, seqno) {
  return Buffer.from(jsMsgIdBytes(key, seqno)).toString('hex')
}

/** Topic score parameters for every topic named on the command line (--pubsub-score). */
function scoreParams (topics) {
  const topic = {
    topicWeight: 1,
    timeInMeshWeight: 0.01,
    timeInMeshQuantum: 1000,
    timeInMeshCap: 10,
    firstMessageDeliveriesWeight: 1,
    firstMessageDeliveriesDecay: 0.9,
    firstMessageDeliveriesCap: 100,
    meshMessageDeliveriesWeight: 0,
    meshFailurePenaltyWeight: 0,
    invalidMessageDeliveriesWeight: -100,
    invalidMessageDeliveriesDecay: 0.5
  }
  return {
    topics: Object.fromEntries(topics.map(t => [t, topic])),
    // Every test node is on 127.0.0.1: the IP colocation factor (P6) would punish them all.
    IPColocationFactorWeight: 0,
    IPColocationFactorWhitelist: new Set([LOOPBACK_IP]),
    behaviourPenaltyWeight: -10,
    behaviourPenaltyThreshold: 0,
    behaviourPenaltyDecay: 0.9,
    decayInterval: 1000
  }
}

/** The pubsub service of the node, from `--pubsub gossipsub|floodsub` and the D options. */
export function pubsubService (cfg) {
  const state = { lastPublished: null }
  cfg.pubsubState = state
  if (cfg.pubsub === 'floodsub') return floodsub()
  const opts = {
    D: cfg.gossipD,
    Dlo: cfg.gossipDlo,
    Dhi: cfg.gossipDhi,
    Dout: Math.min(2, Math.floor(cfg.gossipD / 2)),
    heartbeatInterval: 1000,
    fallbackToFloodsub: true,
    // Publish only to the mesh (and fanout), as the spec describes; no flooding to all peers.
    floodPublish: false,
    allowPublishToZeroTopicPeers: true,
    msgIdFn: msg => {
      if (msg.type !== 'signed') throw new Error('expected a signed message')
      const id = jsMsgIdBytes(msg.key ?? msg.from.publicKey, msg.sequenceNumber)
      if (msg.from.equals(cfg.selfPeerId)) state.lastPublished = Buffer.from(id).toString('hex')
      return id
    }
  }
  if (cfg.pubsubScore) {
    Object.assign(opts, {
      doPX: true,
      scoreParams: scoreParams(cfg.pubsubTopics),
      scoreThresholds: {
        gossipThreshold: -10,
        publishThreshold: -50,
        graylistThreshold: -80,
        acceptPXThreshold: 0,
        opportunisticGraftThreshold: 1
      }
    })
  }
  return gossipsub(opts)
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

/** Report each received message once: `message` with topic, from, seqno, data, msg_id. */
function watchMessages (ps) {
  ps.addEventListener('message', evt => {
    const msg = evt.detail
    const signed = msg.type === 'signed'
    emit('message', {
      topic: msg.topic,
      from: signed ? msg.from.toString() : null,
      seqno: signed ? msg.sequenceNumber.toString(16).padStart(16, '0') : null,
      data: textOrNull(msg.data),
      data_b64: Buffer.from(msg.data).toString('base64'),
      msg_id: signed ? jsMsgId(msg.key ?? msg.from.publicKey, msg.sequenceNumber) : null
    })
  })
}

async function publish (ctx, [topic, data]) {
  ctx.state.lastPublished = null
  let floodId = null
  if (ctx.router === 'floodsub') {
    // floodsub builds the message (random seqno) inside publish(): look at it on the way.
    // Its seqno is 8 random bytes sent as a bigint, so 1 in 256 goes out shorter than 8 bytes
    // (leading zero dropped), which js gossipsub, rust and p2pstack reject: the top bit is
    // set so that every publication is a full 8 bytes and tests do not fail by chance.
    const build = ctx.ps.buildMessage
    ctx.ps.buildMessage = async message => {
      message = { ...message, sequenceNumber: message.sequenceNumber | (1n << 63n) }
      floodId = jsMsgId(ctx.node.peerId.publicKey, message.sequenceNumber)
      return build.call(ctx.ps, message)
    }
    try {
      const r = await ctx.ps.publish(topic, encoder.encode(data))
      return { event: 'published', topic, msg_id: floodId, recipients: r.recipients.map(String) }
    } finally {
      ctx.ps.buildMessage = build
    }
  }
  const r = await ctx.ps.publish(topic, encoder.encode(data))
  return { event: 'published', topic, msg_id: ctx.state.lastPublished, recipients: r.recipients.map(String) }
}

function scores (ctx) {
  if (ctx.router !== 'gossipsub') throw new Error('scores: floodsub has no peer scores')
  const stats = ctx.ps.dumpPeerScoreStats()
  const peers = ctx.ps.getPeers().map(String).sort().map(id => ({
    peer_id: id,
    score: ctx.ps.getScore(id),
    behaviour_penalty: stats[id]?.behaviourPenalty ?? null // P7's counter, before weight and square
  }))
  return { event: 'scores', peers }
}

/** `score_stats PEER`: js's score of PEER and the counters behind it, per topic (P1-P4) and P7. */
function scoreStats (ctx, [peer]) {
  if (ctx.router !== 'gossipsub') throw new Error('score_stats: floodsub has no peer scores')
  const stats = ctx.ps.dumpPeerScoreStats()[peer]
  if (stats == null) throw new Error(`score_stats: no score record for ${peer}`)
  const topics = Object.fromEntries(Object.entries(stats.topics).map(([topic, t]) => [topic, {
    in_mesh: t.inMesh,
    mesh_time_ms: t.meshTime,
    first_message_deliveries: t.firstMessageDeliveries,
    mesh_message_deliveries: t.meshMessageDeliveries,
    mesh_failure_penalty: t.meshFailurePenalty,
    invalid_message_deliveries: t.invalidMessageDeliveries
  }]))
  return {
    event: 'score_stats',
    peer_id: peer,
    score: ctx.ps.getScore(peer),
    connected: stats.connected,
    behaviour_penalty: stats.behaviourPenalty,
    topics
  }
}

/** Record every PRUNE this peer receives or sends (`gossipsub:prune`), for `prunes`. */
function watchPrunes (ctx) {
  ctx.prunes = []
  if (ctx.router !== 'gossipsub') return
  ctx.ps.addEventListener('gossipsub:prune', evt => {
    const { peerId, topic, direction } = evt.detail
    ctx.prunes.push({ peer_id: String(peerId), topic, direction })
  })
}

/** `prunes`: the PRUNEs received (`inbound`) and sent (`outbound`) so far, in order. */
function prunes (ctx) {
  if (ctx.router !== 'gossipsub') throw new Error('prunes: floodsub has no PRUNE')
  return { event: 'prunes', prunes: ctx.prunes }
}

/** `connections`: the open connections, with who dialed (`outbound`: this peer). */
function connections (ctx) {
  const peers = ctx.node.getConnections().map(c => ({ peer_id: c.remotePeer.toString(), direction: c.direction }))
  return { event: 'connections', peers }
}

const COMMANDS = {
  subscribe: [async (ctx, [t]) => { ctx.ps.subscribe(t); return { event: 'subscribed', topic: t } }, 1],
  unsubscribe: [async (ctx, [t]) => { ctx.ps.unsubscribe(t); return { event: 'unsubscribed', topic: t } }, 1],
  publish: [publish, 2],
  peers: [async (ctx, [t]) => ({ event: 'peers', topic: t, peers: ctx.ps.getSubscribers(t).map(String).sort() }), 1],
  mesh: [async (ctx, [t]) => {
    if (ctx.router !== 'gossipsub') throw new Error('mesh: floodsub has no mesh')
    return { event: 'mesh', topic: t, peers: ctx.ps.getMeshPeers(t).map(String).sort() }
  }, 1],
  scores: [async ctx => scores(ctx), 0],
  score_stats: [async (ctx, args) => scoreStats(ctx, args), 1],
  prunes: [async ctx => prunes(ctx), 0],
  connections: [async ctx => connections(ctx), 0],
  connect: [async (ctx, [addr]) => {
    const conn = await ctx.node.dial(multiaddr(addr), ctx.opts())
    return { event: 'connected', peer_id: conn.remotePeer.toString(), muxer: conn.multiplexer ?? null }
  }, 1]
}

async function runCommand (ctx, line) {
  // DATA is the rest of the line after `publish TOPIC ` (it may hold spaces).
  const trimmed = line.trim()
  const [name, ...words] = trimmed.split(/\s+/)
  const args = name === 'publish' ? splitPublish(trimmed) : words
  const spec = COMMANDS[name]
  try {
    if (spec == null || spec[1] !== args.length) throw new Error(`bad command: ${line}`)
    const { event, ...fields } = await spec[0](ctx, args)
    emit(event, { ...fields, command: name })
  } catch (err) {
    emit('command_error', { command: name, message: err?.name != null ? `${err.name}: ${err.message}` : String(err) })
  }
}

function splitPublish (line) {
  const m = /^publish\s+(\S+)\s(.*)$/s.exec(line)
  return m == null ? [] : [m[1], m[2]]
}

/** Report messages and read one command per line from stdin, run in order. */
export function servePubsubCommands (node, cfg) {
  const ps = node.services.pubsub
  watchMessages(ps)
  const ctx = { node, ps, router: cfg.pubsub, state: cfg.pubsubState, opts: () => ({ signal: AbortSignal.timeout(cfg.timeoutMs) }) }
  watchPrunes(ctx)
  let queue = Promise.resolve()
  const lines = createInterface({ input: process.stdin, terminal: false })
  lines.on('line', line => {
    if (line.trim() !== '') queue = queue.then(() => runCommand(ctx, line))
  })
}
