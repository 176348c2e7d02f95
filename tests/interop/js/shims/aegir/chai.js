// `aegir/chai` as @libp2p/interop uses it: chai's expect with promise and byte assertions.
import * as chai from 'chai'
import chaiAsPromised from 'chai-as-promised'
import chaiBites from 'chai-bites'

chai.use(chaiAsPromised)
chai.use(chaiBites)

export const expect = chai.expect
export const assert = chai.assert
export { chai }
