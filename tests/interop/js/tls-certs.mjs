// Writes libp2p TLS certificates made by js-libp2p (@libp2p/tls 3.1.10, the function its TLS
// connection encrypter calls for every connection) as DER files, plus a manifest with the peer ID
// js itself derives from each one (https://github.com/libp2p/specs/blob/master/tls/tls.md).
// Usage: node tls-certs.mjs OUT_DIR   (from tests/interop/js, so that node_modules resolves)
// js cannot derive a peer ID from an ECDSA host key (peerIdFromCID refuses it), so there is no
// ECDSA vector.

import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { generateCertificate, verifyPeerCertificate } from '@libp2p/tls/utils'

const dir = process.argv[2]
if (dir == null) throw new Error('usage: node tls-certs.mjs OUT_DIR')
const keys = {
  // Same seeded derivation as peer.mjs --seed 1.
  ed25519: await generateKeyPairFromSeed('Ed25519', createHash('sha256').update('1').digest()),
  secp256k1: await generateKeyPair('secp256k1'),
  rsa: await generateKeyPair('RSA', 2048)
}
const manifest = { generator: '@libp2p/tls 3.1.10 generateCertificate', certificates: [] }
for (const [name, key] of Object.entries(keys)) {
  const { cert } = await generateCertificate(key)
  const der = Buffer.from(cert.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64')
  const file = `js-${name}.der`
  writeFileSync(`${dir}/${file}`, der)
  const peerId = await verifyPeerCertificate(new Uint8Array(der))
  manifest.certificates.push({ file, host_key_type: name, peer_id: peerId.toString() })
}
writeFileSync(`${dir}/js-certificates.json`, JSON.stringify(manifest, null, 2) + '\n')
