// Runs the @libp2p/interop 14.0.16 suite (a mocha library without a CLI) against p2pstack's
// daemon. Node 22, packages from tests/interop/js/node_modules:
//
//   tests/interop/js/node_modules/.bin/node tests/interop/daemon_suite/runner.mjs \
//     --mode mixed|self --suites connect,streams,dht,pubsub,relay [--grep RE] [--output FILE]
//
// mixed: the `js` slot is js-libp2p in-process (with @libp2p/daemon-server), the `go` slot
// p2pstack's daemon; self: both slots are p2pstack's daemon. P2PSTACK_PYTHON names the Python
// that runs `-m p2pstack.roots.cli daemon` (or P2PSTACK_DAEMON, a JSON argv). With --output,
// mocha's JSON report goes to FILE and the reasons of tests held pending to FILE.pending.json.
import fs from 'node:fs'
import { register } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const link = path.join(here, 'node_modules')
if (!fs.existsSync(link)) {
  // Bare imports resolve from the importing file's directories: borrow the js peer's packages.
  fs.symlinkSync(path.join('..', 'js', 'node_modules'), link, 'dir')
}

register('./aegir_hook.mjs', import.meta.url)

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'mixed' },
    suites: { type: 'string', default: 'connect,streams,dht,pubsub,relay' },
    grep: { type: 'string' },
    output: { type: 'string' },
    timeout: { type: 'string', default: '60000' }
  }
})
const { run } = await import('./suite.mjs')
const failures = await run({
  mode: values.mode,
  suites: values.suites.split(',').filter(Boolean),
  grep: values.grep,
  output: values.output,
  timeout: Number(values.timeout)
})
process.exit(failures > 0 ? 1 : 0)
