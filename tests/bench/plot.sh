#!/usr/bin/env bash
# Draws compare.sh's fan-out figures with gnuplot (Debian package gnuplot-nox):
# deliveries/s (flat out), p99 publish->receive latency (at half the peak rate) and server CPU
# time per delivery (flat out) against the number of subscribers, one line per server, log axes.
#   tests/bench/plot.sh DATA.dat OUT.png
# DATA columns: N, deliveries/s, p99 ms, CPU us per delivery, each for switchboard nats ws
# ('-' = missing).
set -euo pipefail
[ $# = 2 ] || { echo "usage: plot.sh DATA.dat OUT.png" >&2; exit 2; }
DAT=$1
OUT=$2
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed (gnuplot-nox)" >&2; exit 3; }
gnuplot <<GP
set terminal pngcairo size 1500,440 font "Sans,10" noenhanced
set output "$OUT"
set datafile missing "-"
set multiplot layout 1,3 title "Fan-out to N subscribers of one room, one publisher, 128-byte payload (loopback, server on 1 core)"
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
set title "server CPU time per delivery, flat out, us (lower is better)"
plot "$DAT" using 1:8 with linespoints lw 2 pt 7 title "Switchboard (DP + CP)", \
     "" using 1:9 with linespoints lw 2 pt 5 title "nats-server", \
     "" using 1:10 with linespoints lw 2 pt 9 title "Node ws"
unset multiplot
GP
