# bench/plot.gp: PNG plots for bench/run.sh (mode 'bench') and bench/ir.sh (mode 'ir').
#
# gnuplot -e "mode='bench'; placement='shared: ...'; datafile='docs/bench/bench.dat'; outfile='docs/bench/bench.png'" bench/plot.gp
# bench.dat: four blocks (ops/s, p99 µs, CPU µs/req, idle KB/conn), each a
# header row of target names and a row per workload; "-" is a missing value.
# ir.dat: "target" instructions-per-get per row (# comments); conns= sets the title.

if (!exists("mode")) { mode = "bench" }
set datafile missing "-"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set yrange [0:*]
set xtics nomirror
set ytics nomirror
set linetype 1 lc rgb "#4c72b0"
set linetype 2 lc rgb "#dd8452"
set linetype 3 lc rgb "#55a868"
set linetype 4 lc rgb "#c44e52"

if (mode eq 'ir') {
    set terminal pngcairo size 900,520 font ",10"
    set output outfile
    if (!exists("conns")) { conns = 20 }
    set title sprintf("User-space instructions per get (callgrind, %d conns, depth 1)", conns)
    set ylabel "instructions / get"
    set boxwidth 0.6
    stats datafile using 2 nooutput
    set xrange [-0.6:STATS_records - 0.4]
    set arrow 1 from graph 0, first 3800 to graph 1, first 3800 nohead dt 2 lc rgb "#555555"
    set label 1 "goal, no script: 3,800" at graph 0.01, first 3800 offset 0,0.6 font ",9"
    set arrow 2 from graph 0, first 4500 to graph 1, first 4500 nohead dt 3 lc rgb "#555555"
    set label 2 "goal, script: 4,500" at graph 0.01, first 4500 offset 0,0.6 font ",9"
    plot datafile using 0:2:xtic(1) with boxes notitle lc rgb "#4c72b0", \
         '' using 0:2:(sprintf("%.0f", column(2))) with labels offset 0,0.7 notitle
} else {
    set terminal pngcairo size 1400,900 font ",10"
    set output outfile
    if (!exists("placement")) { placement = "" }
    set multiplot layout 2,2 title "mintgate vs twemproxy vs direct memcached (medians over rounds)\n".placement
    set title "Throughput (ops/s, higher is better)"
    set ylabel "ops/s"
    set format y "%.0s%c"
    plot for [i=2:5] datafile index 0 using i:xtic(1) title columnheader(i)
    set title "p99 latency (µs, lower is better)"
    set ylabel "µs"
    set format y "%g"
    plot for [i=2:5] datafile index 1 using i:xtic(1) title columnheader(i)
    set title "Target CPU per request (µs, lower is better)"
    set ylabel "µs CPU / request"
    plot for [i=2:5] datafile index 2 using i:xtic(1) title columnheader(i)
    set title "RSS per idle connection (KB, lower is better)"
    set ylabel "KB / connection"
    set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "#555555"
    set label 1 "goal: 1 KB" at graph 0.01, first 1 offset 0,0.6 font ",9"
    set key top right
    set offsets 0, 0, graph 0.45, 0     # headroom: the key sits above the bars
    plot for [i=2:5] datafile index 3 using i:xtic(1) title columnheader(i)
    unset multiplot
}
