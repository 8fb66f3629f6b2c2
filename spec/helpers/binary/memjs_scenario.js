// spec/helpers/binary/memjs_scenario.js HOST:PORT PREFIX [flush]: memjs (binary only)
// through the address given; one "op result" line per step.
const memjs = require('memjs');

const [addr, p, mode] = process.argv.slice(2);
const c = memjs.Client.create(addr, { retries: 0, timeout: 2, logger: { log() {} } });
const out = (name, v) => {
  if (v === null || v === undefined) v = 'None';
  else if (v === true) v = 'True';
  else if (v === false) v = 'False';
  else if (Buffer.isBuffer(v)) v = v.toString();
  console.log(name + ' ' + v);
};
const tr = async (f) => {
  try { return await f(); } catch (e) { return 'error'; }
};
const val = (r) => (r.value === null ? null : r.value.toString());
(async () => {
  if (mode === 'flush') {
    out('set', await c.set(p + 'f', 'x', {}));
    out('flush', await new Promise((res) => c.flush((err, r) => res(!err))));
    out('get', val(await c.get(p + 'f')));
    c.close();
    return;
  }
  out('set', await c.set(p + 'a', 'hello', {}));
  out('get', val(await c.get(p + 'a')));
  out('add_exists', await tr(() => c.add(p + 'a', 'x', {})));
  out('add_new', await c.add(p + 'new', 'fresh', {}));
  out('replace_missing', await tr(() => c.replace(p + 'missing', 'x', {})));
  out('set_b', await c.set(p + 'b', 'bee', {}));
  out('replace', await c.replace(p + 'b', 'bumble', {}));
  out('append', await c.append(p + 'b', 'bee'));
  out('prepend', await c.prepend(p + 'b', '<'));
  out('get_b', val(await c.get(p + 'b')));
  out('set_n', await c.set(p + 'n', '10', {}));
  out('incr', (await c.increment(p + 'n', 5, {})).value);
  out('decr', (await c.decrement(p + 'n', 3, {})).value);
  out('incr_vivify', (await c.increment(p + 'ctr', 2, { initial: 40 })).value);
  out('incr_vivify2', (await c.increment(p + 'ctr', 2, { initial: 40 })).value);
  out('incr_text', await tr(async () => (await c.increment(p + 'a', 1, {})).value));
  out('touch', await c.touch(p + 'a', 100));
  out('touch_missing', await tr(() => c.touch(p + 'nope', 100)));
  out('delete', await c.delete(p + 'new'));
  out('delete_again', await tr(() => c.delete(p + 'new')));
  out('get_deleted', val(await c.get(p + 'new')));
  const st = await new Promise((res) => c.stats((err, server, s) => res(s)));
  out('stats_version', st && st.version);
  out('stats_settings_has_maxconns', await new Promise((res) =>
    c.statsWithKey('settings', (err, server, s) => res(!!(s && s.maxconns)))));
  c.close();
})().catch((e) => { console.log('fatal ' + e.message); process.exit(1); });
