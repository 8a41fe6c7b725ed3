#!/usr/bin/env bash
# Draws compare.sh's fan-out figures with gnuplot (Debian package gnuplot-nox):
# deliveries/s (flat out) and p99 publish->receive latency (at half the peak rate) against the
# number of subscribers, one line per server, both axes logarithmic.
#   tests/bench/plot.sh DATA.dat OUT.png
# DATA columns: N sb_deliv nats_deliv ws_deliv sb_p99_ms nats_p99_ms ws_p99_ms ('-' = missing).
set -euo pipefail
[ $# = 2 ] || { echo "usage: plot.sh DATA.dat OUT.png" >&2; exit 2; }
DAT=$1
OUT=$2
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed (gnuplot-nox)" >&2; exit 3; }
gnuplot <<GP
set terminal pngcairo size 1100,440 font "Sans,10" noenhanced
set output "$OUT"
set datafile missing "-"
set multiplot layout 1,2 title "Fan-out to N subscribers of one room, one publisher, 128-byte payload (loopback, server on 1 core)"
set logscale x
set xrange [70:14000]
set xlabel "subscribers (N)"
set grid
set key top right
set xtics ("100" 100, "1,000" 1000, "10,000" 10000)
set title "deliveries/s, flat out (higher is better)"
set format y "%.0s%c"
set logscale y
plot "$DAT" using 1:2 with linespoints lw 2 pt 7 title "Switchboard", \
     "" using 1:3 with linespoints lw 2 pt 5 title "nats-server", \
     "" using 1:4 with linespoints lw 2 pt 9 title "Node ws"
set title "p99 publish->receive at half the peak rate, ms (lower is better)"
set format y "%g"
set logscale y
plot "$DAT" using 1:5 with linespoints lw 2 pt 7 title "Switchboard", \
     "" using 1:6 with linespoints lw 2 pt 5 title "nats-server", \
     "" using 1:7 with linespoints lw 2 pt 9 title "Node ws"
unset multiplot
GP
