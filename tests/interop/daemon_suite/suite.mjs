// The runner's body (imported once node_modules resolves): builds the mocha suites, holds
// pending the tests that cannot apply (with the reason), runs them.
import fs from 'node:fs'
import {
  connectInteropTests, dhtInteropTests, pubsubInteropTests, relayInteropTests, streamInteropTests
} from '@libp2p/interop'
import Mocha from 'mocha'
import { makeFactory } from './factory.mjs'

const SUITES = {
  connect: connectInteropTests,
  streams: streamInteropTests,
  dht: dhtInteropTests,
  pubsub: pubsubInteropTests,
  relay: relayInteropTests
}

// Describe blocks that cannot apply yet, by mode: [pattern on the describe title, reason].
// None today: every block the suite defines applies to p2pstack's daemon in both modes.
export function pendingRules (mode) {
  return []
}

export async function run ({ mode, suites, grep, output, timeout }) {
  const reporterOptions = output != null ? { output } : {}
  const mocha = new Mocha({
    reporter: output != null ? 'json' : 'spec',
    reporterOptions,
    timeout,
    grep
  })
  const pending = {}
  mocha.suite.emit('pre-require', globalThis, 'p2pstack-daemon-suite', mocha)
  const describe = globalThis.describe
  const rules = pendingRules(mode)
  const wrapped = function (title, fn) {
    for (const [pattern, reason] of rules) {
      const why = pattern.test(title) && reason(title)
      if (why) {
        pending[title] = why
        return describe.skip(title, fn)
      }
    }
    return describe(title, fn)
  }
  wrapped.skip = describe.skip
  wrapped.only = describe.only
  globalThis.describe = wrapped
  const factory = makeFactory(mode)
  for (const name of suites) {
    if (SUITES[name] == null) throw new Error(`unknown suite ${name}`)
    await SUITES[name](factory)
  }
  globalThis.describe = describe
  for (const [title, why] of Object.entries(pending)) {
    console.error(`pending: ${title}: ${why}`)
  }
  if (output != null) fs.writeFileSync(`${output}.pending.json`, JSON.stringify(pending, null, 2))
  return new Promise((resolve) => { mocha.run(resolve) })
}
