# spec/helpers/binary/pylibmc_scenario.py HOST:PORT PREFIX [flush]: pylibmc with binary=True
# through the address given; one "op result" line per step (binary_spec.lua compares the
# lines against memcached's own).
import sys

import pylibmc

addr, p = sys.argv[1], sys.argv[2]
c = pylibmc.Client([addr], binary=True, behaviors={"cas": True})


def out(name, v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, dict):
        v = ",".join("%s=%s" % (k, v[k]) for k in sorted(v))
    print("%s %s" % (name, v))


def tr(f, *a):
    try:
        return f(*a)
    except pylibmc.Error as e:
        return "error:" + type(e).__name__


if len(sys.argv) > 3 and sys.argv[3] == "flush":
    out("set", c.set(p + "f", "x"))
    out("flush", c.flush_all())
    out("get", c.get(p + "f"))
    sys.exit(0)
out("set", c.set(p + "a", "hello"))
out("get", c.get(p + "a"))
out("set_flags", c.set(p + "i", 42))
out("get_int", c.get(p + "i"))
out("set_b", c.set(p + "b", "bee"))
out("get_multi", c.get_multi([p + "a", p + "b", p + "nope"]))
out("add_exists", c.add(p + "a", "x"))
out("add_new", c.add(p + "new", "fresh"))
out("replace_missing", tr(c.replace, p + "missing", "x"))
out("replace", c.replace(p + "b", "bumble"))
out("append", c.append(p + "b", "bee"))
out("prepend", c.prepend(p + "b", "<"))
out("get_b", c.get(p + "b"))
out("append_missing", tr(c.append, p + "missing", "x"))
out("set_n", c.set(p + "n", "10"))
out("incr", c.incr(p + "n", 5))
out("decr", c.decr(p + "n", 3))
out("decr_floor", c.decr(p + "n", 100))
out("incr_missing", tr(c.incr, p + "nope", 1))
out("incr_text", tr(c.incr, p + "a", 1))
v, cas = c.gets(p + "a")
out("gets", v)
out("cas", c.cas(p + "a", "swapped", cas))
out("cas_stale", c.cas(p + "a", "again", cas))
out("get_a", c.get(p + "a"))
out("touch", c.touch(p + "a", 100))
out("touch_missing", c.touch(p + "nope", 100))
out("delete", c.delete(p + "new"))
out("delete_again", c.delete(p + "new"))
out("get_deleted", c.get(p + "new"))
out("set_multi", sorted(c.set_multi({p + "m1": "1", p + "m2": "2"})))
out("get_multi2", c.get_multi([p + "m1", p + "m2"]))
out("delete_multi", c.delete_multi([p + "m1", p + "m2"]))
st = c.get_stats()
out("stats_version", st[0][1].get("version") if st else None)
out("stats_has_pid", "pid" in st[0][1] if st else None)
