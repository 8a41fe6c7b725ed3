/* bench_floor: the least publish-to-receive latency that any server writing one send() per
 * subscriber can reach on this machine (issue 5, target 3), measured with no server at all.
 *
 * N loopback TCP connections. A sender thread, pinned like compare.sh pins the servers, writes
 * one frame of --size bytes (a 4-byte WebSocket header, then the send time) to every connection
 * with one send() each, --rate times a second; a receiver thread, pinned like the load client,
 * reads all N sockets through one epoll and records each frame's latency in the same
 * log-linear histogram sb_load uses. The sender does nothing but the system calls, so what it
 * prints is a floor: the kernel's cost of N loopback sends, on one core, with the receiving
 * process waking on the other.
 *
 *   bench_floor [--conns 1000] [--rate 100] [--duration 3] [--size 132] [--sender-cpu 1]
 *               [--receiver-cpu 0] [--timeout 30]
 *
 * Prints one human line and a `FLOOR key=value ...` line; exit 0 when every frame arrived. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_hist.h"

#define MAX_CONNS 20000
#define MAX_SIZE  4096

struct opts {
    int conns;
    double rate;
    double duration;
    int size;
    int sender_cpu, receiver_cpu;
    double timeout;
};

static struct {
    struct opts o;
    int *snd;         /* server side of each connection (the sender writes) */
    int *rcv;         /* client side (the receiver reads) */
    int64_t messages; /* messages to send */
    atomic_int_fast64_t received;
    struct bench_hist lat;  /* receiver thread only */
    struct bench_hist loop; /* sender thread only: time to send one message to every conn */
    int64_t send_errors;    /* sender thread only */
    int64_t max_sched_lag;  /* sender thread only */
} g;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
}

static int connect_pairs(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 4096) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) != 0) {
        perror("bench_floor: listen");
        return -1;
    }
    int one = 1;
    for (int i = 0; i < g.o.conns; i++) {
        g.rcv[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (g.rcv[i] < 0 || connect(g.rcv[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
            perror("bench_floor: connect");
            return -1;
        }
        g.snd[i] = accept(l, NULL, NULL);
        if (g.snd[i] < 0) {
            perror("bench_floor: accept");
            return -1;
        }
        setsockopt(g.snd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(g.rcv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    close(l);
    return 0;
}

static void *sender_main(void *arg)
{
    (void)arg;
    pin(g.o.sender_cpu);
    unsigned char frame[MAX_SIZE];
    memset(frame, 'x', sizeof(frame));
    /* what a server sends: FIN + text, a 16-bit length (the payload is over 125 bytes), and
     * the payload, which starts with the send time */
    frame[0] = 0x81;
    frame[1] = 126;
    frame[2] = (unsigned char)((g.o.size - 4) >> 8);
    frame[3] = (unsigned char)((g.o.size - 4) & 0xff);
    int64_t period = (int64_t)(1e9 / g.o.rate);
    int64_t t0 = now_ns() + 50000000; /* let the receiver settle into epoll_wait */
    for (int64_t m = 0; m < g.messages; m++) {
        int64_t due = t0 + m * period;
        struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        int64_t start = now_ns();
        if (start - due > g.max_sched_lag)
            g.max_sched_lag = start - due;
        memcpy(frame + 4, &start, sizeof(start));
        for (int i = 0; i < g.o.conns; i++) {
            ssize_t n = send(g.snd[i], frame, (size_t)g.o.size, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n != g.o.size)
                g.send_errors++; /* a full socket buffer at this load would be a finding */
        }
        bench_hist_record(&g.loop, now_ns() - start);
    }
    return NULL;
}

static int receive_all(void)
{
    pin(g.o.receiver_cpu);
    int ep = epoll_create1(0);
    if (ep < 0)
        return -1;
    int *have = calloc((size_t)g.o.conns, sizeof(int));
    unsigned char(*part)[16] = calloc((size_t)g.o.conns, sizeof(*part));
    if (have == NULL || part == NULL)
        return -1;
    for (int i = 0; i < g.o.conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, g.rcv[i], &ev) != 0)
            return -1;
    }
    int64_t want = g.messages * g.o.conns;
    int64_t deadline = now_ns() + (int64_t)((g.o.duration + g.o.timeout) * 1e9);
    static unsigned char buf[65536];
    struct epoll_event evs[256];
    int64_t got = 0;
    while (got < want && now_ns() < deadline) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            ssize_t r = read(g.rcv[i], buf, sizeof(buf));
            int64_t t = now_ns();
            for (ssize_t off = 0; off < r; off++) {
                /* bytes 4..11 of each frame are the send time; the rest is padding */
                if (have[i] >= 4 && have[i] < 12)
                    part[i][have[i] - 4] = buf[off];
                if (++have[i] == g.o.size) {
                    int64_t sent;
                    memcpy(&sent, part[i], sizeof(sent));
                    bench_hist_record(&g.lat, t - sent);
                    have[i] = 0;
                    got++;
                }
            }
        }
    }
    atomic_store(&g.received, got);
    free(have);
    free(part);
    close(ep);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_floor [--conns N] [--rate R] [--duration S] [--size B]\n"
                    "                   [--sender-cpu C] [--receiver-cpu C] [--timeout S]\n");
}

int main(int argc, char **argv)
{
    g.o = (struct opts){1000, 100, 3, 132, 1, 0, 30};
    static const struct option lo[] = {{"conns", required_argument, 0, 'n'},
                                       {"rate", required_argument, 0, 'r'},
                                       {"duration", required_argument, 0, 'd'},
                                       {"size", required_argument, 0, 's'},
                                       {"sender-cpu", required_argument, 0, 'S'},
                                       {"receiver-cpu", required_argument, 0, 'R'},
                                       {"timeout", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            g.o.conns = atoi(optarg);
            break;
        case 'r':
            g.o.rate = atof(optarg);
            break;
        case 'd':
            g.o.duration = atof(optarg);
            break;
        case 's':
            g.o.size = atoi(optarg);
            break;
        case 'S':
            g.o.sender_cpu = atoi(optarg);
            break;
        case 'R':
            g.o.receiver_cpu = atoi(optarg);
            break;
        case 't':
            g.o.timeout = atof(optarg);
            break;
        default:
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    if (g.o.conns < 1 || g.o.conns > MAX_CONNS || g.o.rate <= 0 || g.o.rate > 100000 ||
        g.o.duration <= 0 || g.o.duration > 600 || g.o.size < 130 || g.o.size > MAX_SIZE ||
        g.o.timeout <= 0 || g.o.timeout > 600) {
        fprintf(stderr,
                "bench_floor: conns 1..%d, rate 0..100000, duration 0..600 s, size "
                "130..4096 bytes, timeout 0..600 s\n",
                MAX_CONNS);
        return 2;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 2)
        g.o.sender_cpu = g.o.receiver_cpu = -1; /* nothing to pin apart */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(2 * g.o.conns + 64)) {
        rl.rlim_cur =
            rl.rlim_max < (rlim_t)(2 * g.o.conns + 64) ? rl.rlim_max : (rlim_t)(2 * g.o.conns + 64);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g.snd = calloc((size_t)g.o.conns, sizeof(int));
    g.rcv = calloc((size_t)g.o.conns, sizeof(int));
    if (g.snd == NULL || g.rcv == NULL || connect_pairs() != 0)
        return 3;
    g.messages = (int64_t)(g.o.rate * g.o.duration);
    if (g.messages < 1)
        g.messages = 1;
    bench_hist_init(&g.lat);
    bench_hist_init(&g.loop);
    pthread_t th;
    if (pthread_create(&th, NULL, sender_main, NULL) != 0)
        return 3;
    if (receive_all() != 0) {
        perror("bench_floor: receive");
        return 3;
    }
    pthread_join(th, NULL);
    int64_t want = g.messages * g.o.conns, got = atomic_load(&g.received);
    double us = 1e-3;
    printf("bench_floor: %d conns, %g msg/s, %d B frames, %lld messages: %lld of %lld frames; "
           "one send() per connection: %.2f us each (send loop p50 %.0f us, p99 %.0f us); "
           "send->receive p50=%.1f p90=%.1f p99=%.1f p99.9=%.1f max=%.1f us; send errors %lld; "
           "latest start %.0f us late\n",
           g.o.conns, g.o.rate, g.o.size, (long long)g.messages, (long long)got, (long long)want,
           bench_hist_mean(&g.loop) * us / g.o.conns, bench_hist_quantile(&g.loop, 0.5) * us,
           bench_hist_quantile(&g.loop, 0.99) * us, bench_hist_quantile(&g.lat, 0.5) * us,
           bench_hist_quantile(&g.lat, 0.9) * us, bench_hist_quantile(&g.lat, 0.99) * us,
           bench_hist_quantile(&g.lat, 0.999) * us, (double)g.lat.max * us,
           (long long)g.send_errors, g.max_sched_lag * us);
    printf("FLOOR complete=%d conns=%d rate=%g size=%d send_us=%.3f loop_p50_us=%.1f "
           "loop_p99_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "send_errors=%lld\n",
           got == want && g.send_errors == 0, g.o.conns, g.o.rate, g.o.size,
           bench_hist_mean(&g.loop) * us / g.o.conns, bench_hist_quantile(&g.loop, 0.5) * us,
           bench_hist_quantile(&g.loop, 0.99) * us, bench_hist_quantile(&g.lat, 0.5) * us,
           bench_hist_quantile(&g.lat, 0.9) * us, bench_hist_quantile(&g.lat, 0.99) * us,
           bench_hist_quantile(&g.lat, 0.999) * us, (double)g.lat.max * us,
           (long long)g.send_errors);
    for (int i = 0; i < g.o.conns; i++) {
        close(g.snd[i]);
        close(g.rcv[i]);
    }
    free(g.snd);
    free(g.rcv);
    return got == want && g.send_errors == 0 ? 0 : 1;
}
