// A module resolution hook: `aegir/chai` is the stand-in of this checkout
// (tests/interop/js/shims/aegir/chai.js), even where node_modules is shared between checkouts
// (its `aegir` link points into the checkout that installed the packages).
const SHIM = new URL('../js/shims/aegir/chai.js', import.meta.url).href

export async function resolve (specifier, context, nextResolve) {
  if (specifier === 'aegir/chai') return { url: SHIM, shortCircuit: true }
  return nextResolve(specifier, context)
}
