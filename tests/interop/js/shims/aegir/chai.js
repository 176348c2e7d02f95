// `aegir/chai` as @libp2p/interop uses it: chai's expect with promise and byte assertions, and
// the property assertions the suite calls as functions (dirty-chai style, as aegir's chai
// allows): `expect(x).to.exist()` and `expect(p).to.eventually.be.ok()`.
import * as chai from 'chai'
import chaiAsPromised from 'chai-as-promised'
import chaiBites from 'chai-bites'

// The property assertions that may also be called. The check runs when the property is read
// (a call without parentheses still asserts); the call itself returns the assertion, so that
// `.eventually.be.ok()` stays a thenable that chai-as-promised settles.
export const CALLABLE = ['ok', 'exist', 'true', 'false', 'null', 'undefined', 'empty']

function callableProperties (lib) {
  for (const name of CALLABLE) {
    const descriptor = Object.getOwnPropertyDescriptor(lib.Assertion.prototype, name)
    if (descriptor?.get == null) throw new Error(`chai has no property assertion ${name}`)
    lib.Assertion.addChainableMethod(name, function () { return this }, descriptor.get)
  }
}

chai.use(chaiAsPromised)
chai.use(chaiBites)
// After chai-as-promised, whose wrapped getters defer the check after `eventually`.
chai.use(callableProperties)

export const expect = chai.expect
export const assert = chai.assert
export { chai }
