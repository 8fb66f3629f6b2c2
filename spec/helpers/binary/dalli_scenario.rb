# spec/helpers/binary/dalli_scenario.rb HOST:PORT PREFIX [flush]: Dalli 3.0 (binary only)
# through the address given; one "op result" line per step.
require "dalli"

addr, p, mode = ARGV
c = Dalli::Client.new(addr, socket_timeout: 2)
R = { raw: true }.freeze

def out(name, v)
  v = v.keys.sort.map { |k| "#{k}=#{v[k]}" }.join(",") if v.is_a?(Hash)
  v = "None" if v.nil?
  v = v ? "True" : "False" if v == true || v == false
  puts "#{name} #{v}"
end

if mode == "flush"
  out("set", !!c.set(p + "f", "x", 0, R))
  out("flush", !!c.flush)
  out("get", c.get(p + "f"))
  exit 0
end
out("set", !!c.set(p + "a", "hello", 0, R))
out("get", c.get(p + "a"))
out("set_b", !!c.set(p + "b", "bee", 0, R))
out("get_multi", c.get_multi(p + "a", p + "b", p + "nope"))
out("add_exists", !!c.add(p + "a", "x", 0, R))
out("add_new", !!c.add(p + "new", "fresh", 0, R))
out("replace_missing", !!c.replace(p + "missing", "x", 0, R))
out("replace", !!c.replace(p + "b", "bumble", 0, R))
out("append", !!c.append(p + "b", "bee"))
out("prepend", !!c.prepend(p + "b", "<"))
out("get_b", c.get(p + "b"))
out("set_n", !!c.set(p + "n", "10", 0, R))
out("incr", c.incr(p + "n", 5))
out("decr", c.decr(p + "n", 3))
out("incr_missing", c.incr(p + "nope", 1))
out("incr_initial", c.incr(p + "ctr", 1, 0, 7))
out("incr_initial2", c.incr(p + "ctr", 1, 0, 7))
out("cas", !!c.cas(p + "a") { |v| v + "!" })
out("get_a", c.get(p + "a"))
out("cas_missing", c.cas(p + "nope") { |v| v }.inspect)
out("touch", !!c.touch(p + "a", 100))
out("touch_missing", !!c.touch(p + "nope", 100))
out("delete", !!c.delete(p + "new"))
out("delete_again", !!c.delete(p + "new"))
out("get_deleted", c.get(p + "new"))
ver = c.version.values.first
out("version", ver)
st = c.stats.values.first
out("stats_has_pid", st.key?("pid"))
c.close
