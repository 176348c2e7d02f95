// Checks the aegir/chai stand-in's function-call assertions (the forms the suite uses), both
// ways: each passes where it should and fails where it should. Prints `chai shim ok`, exits 0.
import { register } from 'node:module'

register('./aegir_hook.mjs', import.meta.url)
const { expect } = await import('aegir/chai')

const wrong = []
async function fails (what, fn) {
  try {
    await fn()
    wrong.push(`${what} passed`)
  } catch {}
}

expect({}).to.exist()
expect(1).to.be.ok()
await expect(Promise.resolve(1)).to.eventually.be.ok()
await fails('expect(undefined).to.exist()', () => expect(undefined).to.exist())
await fails('expect(null).to.exist', () => expect(null).to.exist)
await fails('expect(0).to.be.ok()', () => expect(0).to.be.ok())
await fails('eventually.be.ok() of 0', () => expect(Promise.resolve(0)).to.eventually.be.ok())
await fails('eventually.be.ok() of a rejection', () => expect(Promise.reject(new Error('x'))).to.eventually.be.ok())
await expect(Promise.reject(new Error('status NO_RESERVATION'))).to.eventually.be.rejected
  .with.property('message').that.matches(/NO_RESERVATION/)
if (wrong.length > 0) {
  console.log(`chai shim broken: ${wrong.join('; ')}`)
  process.exit(1)
}
console.log('chai shim ok')
