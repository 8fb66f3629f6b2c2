<?php
// spec/helpers/binary/php_scenario.php HOST PORT PREFIX [flush]: php-memcached with
// OPT_BINARY_PROTOCOL through the address given; one "op result" line per step.
[$_, $host, $port, $p] = $argv;
$mode = $argv[4] ?? '';
$c = new Memcached();
$c->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$c->setOption(Memcached::OPT_COMPRESSION, false);
$c->addServer($host, (int)$port);
function out($name, $v) {
    if ($v === null) $v = 'None';
    elseif ($v === true) $v = 'True';
    elseif ($v === false) $v = 'False';
    elseif (is_array($v)) { ksort($v); $v = implode(',', array_map(fn($k) => "$k=$v[$k]", array_keys($v))); }
    echo "$name $v\n";
}
if ($mode === 'flush') {
    out('set', $c->set($p . 'f', 'x'));
    out('flush', $c->flush());
    out('get', $c->get($p . 'f'));
    exit(0);
}
out('set', $c->set($p . 'a', 'hello'));
out('get', $c->get($p . 'a'));
out('set_b', $c->set($p . 'b', 'bee'));
out('get_multi', $c->getMulti([$p . 'a', $p . 'b', $p . 'nope']));
out('add_exists', $c->add($p . 'a', 'x'));
out('add_exists_code', $c->getResultCode());
out('add_new', $c->add($p . 'new', 'fresh'));
out('replace_missing', $c->replace($p . 'missing', 'x'));
out('replace', $c->replace($p . 'b', 'bumble'));
out('append', $c->append($p . 'b', 'bee'));
out('prepend', $c->prepend($p . 'b', '<'));
out('get_b', $c->get($p . 'b'));
out('set_n', $c->set($p . 'n', '10'));
out('incr', $c->increment($p . 'n', 5));
out('decr', $c->decrement($p . 'n', 3));
out('incr_missing', $c->increment($p . 'nope', 1));
out('incr_initial', $c->increment($p . 'ctr', 1, 7, 0));
out('incr_initial2', $c->increment($p . 'ctr', 1, 7, 0));
$r = $c->get($p . 'a', null, Memcached::GET_EXTENDED);
out('gets', $r['value']);
out('cas', $c->cas($r['cas'], $p . 'a', 'swapped'));
out('cas_stale', $c->cas($r['cas'], $p . 'a', 'again'));
out('cas_stale_code', $c->getResultCode());
out('get_a', $c->get($p . 'a'));
out('touch', $c->touch($p . 'a', 100));
out('delete', $c->delete($p . 'new'));
out('delete_again', $c->delete($p . 'new'));
out('get_deleted', $c->get($p . 'new'));
out('set_multi', $c->setMulti([$p . 'm1' => '1', $p . 'm2' => '2']));
out('get_multi2', $c->getMulti([$p . 'm1', $p . 'm2']));
$v = $c->getVersion();
out('version', array_values($v)[0]);
$st = $c->getStats();
out('stats_has_pid', isset(array_values($st)[0]['pid']));
