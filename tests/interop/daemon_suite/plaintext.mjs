// /plaintext/2.0.0 for the js slot (https://github.com/libp2p/specs/blob/master/plaintext/plaintext.md):
// @libp2p/plaintext is not among tests/interop/js's packages. Each side writes one
// varint-prefixed Exchange { bytes id = 1; PublicKey pubkey = 2 } and checks the other's ID
// against its key; the connection then goes on unencrypted. For tests only.
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'

const MAX_EXCHANGE = 8192

function varint (n) {
  const out = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}

function field (number, bytes) {
  return [...varint((number << 3) | 2), ...varint(bytes.length), ...bytes]
}

export function encodeExchange (id, pubkey) {
  return Uint8Array.from([...field(1, id), ...field(2, pubkey)])
}

export function decodeExchange (buf) {
  const out = {}
  let pos = 0
  const readVarint = () => {
    let value = 0
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= buf.length) throw new Error('plaintext: truncated Exchange')
      const byte = buf[pos++]
      value += (byte & 0x7f) * 2 ** shift
      if (byte < 0x80) return value
    }
    throw new Error('plaintext: varint too long')
  }
  while (pos < buf.length) {
    const tag = readVarint()
    if ((tag & 7) !== 2) throw new Error('plaintext: unexpected wire type in Exchange')
    const length = readVarint()
    if (pos + length > buf.length) throw new Error('plaintext: truncated Exchange field')
    const value = buf.subarray(pos, pos + length)
    pos += length
    if (tag >>> 3 === 1) out.id = value
    else if (tag >>> 3 === 2) out.pubkey = value
  }
  if (out.id == null || out.pubkey == null) throw new Error('plaintext: Exchange lacks id or pubkey')
  return out
}

class Plaintext {
  [Symbol.toStringTag] = 'p2pstack-interop-plaintext'
  protocol = '/plaintext/2.0.0'

  constructor (components) {
    this.privateKey = components.privateKey
  }

  async secureInbound (connection, options) {
    return this.exchange(connection, options)
  }

  async secureOutbound (connection, options) {
    return this.exchange(connection, options)
  }

  async exchange (connection, options) {
    const lp = lpStream(connection, { maxDataLength: MAX_EXCHANGE })
    const publicKey = this.privateKey.publicKey
    const ours = peerIdFromPublicKey(publicKey).toMultihash().bytes
    await lp.write(encodeExchange(ours, publicKeyToProtobuf(publicKey)), options)
    const theirs = decodeExchange((await lp.read(options)).subarray())
    const remotePeer = peerIdFromPublicKey(publicKeyFromProtobuf(theirs.pubkey))
    if (Buffer.compare(Buffer.from(remotePeer.toMultihash().bytes), Buffer.from(theirs.id)) !== 0) {
      throw new Error('plaintext: the remote ID is not its key\'s')
    }
    if (options?.remotePeer != null && !options.remotePeer.equals(remotePeer)) {
      throw new Error(`plaintext: expected ${options.remotePeer}, met ${remotePeer}`)
    }
    return { connection: lp.unwrap(), remotePeer }
  }
}

export function plaintext () {
  return (components) => new Plaintext(components)
}
