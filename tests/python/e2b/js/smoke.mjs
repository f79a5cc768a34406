// The unmodified e2b JS SDK against Warren, driven only by E2B_API_URL, E2B_SANDBOX_URL and
// E2B_API_KEY (set by the pytest that runs this). Prints "ok" at the end; throws otherwise.
import assert from 'node:assert/strict'
import { Sandbox } from 'e2b'

const template = process.env.WARREN_E2B_TEMPLATE || 'minimal'
const tag = `js-${Date.now()}`
const sbx = await Sandbox.create(template, { timeoutMs: 120_000, metadata: { tag } })
try {
  const r = await sbx.commands.run('echo hello from $0')
  assert.match(r.stdout, /^hello from/)
  const out = []
  await sbx.commands.run('echo one; sleep 0.3; echo two', { onStdout: (d) => out.push(d) })
  assert.equal(out.join(''), 'one\ntwo\n')
  await sbx.files.write('/tmp/js.txt', 'written by js')
  assert.equal(await sbx.files.read('/tmp/js.txt'), 'written by js')
  const names = (await sbx.files.list('/tmp')).map((e) => e.name)
  assert.ok(names.includes('js.txt'), names.join(','))
  const info = await sbx.getInfo()
  assert.equal(info.sandboxId, sbx.sandboxId)
  assert.equal(info.metadata.tag, tag)
  const listed = await Sandbox.list({ query: { metadata: { tag } } }).nextItems()
  assert.deepEqual(listed.map((s) => s.sandboxId), [sbx.sandboxId])
  await sbx.setTimeout(60_000)
  const again = await Sandbox.connect(sbx.sandboxId)
  assert.equal(await again.files.read('/tmp/js.txt'), 'written by js')
  assert.equal(await sbx.isRunning(), true)
} finally {
  await sbx.kill()
}
assert.equal(await sbx.isRunning(), false)
console.log('ok')
