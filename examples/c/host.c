/*
 * A host program in plain C: one Shivya node driven from the host's own poll() loop.
 *
 *   host [listen-addr] [bootstrap-addr] [run-ms]
 *
 * It records the queue lengths it sees at three backends (fake numbers that drift), and
 * prints the settled routes once a second. Build: see examples/c/Makefile.
 */
#define _POSIX_C_SOURCE 200809L
#include <shivya.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fail(const char *what, shivya_status s) {
    char msg[256];
    shivya_last_error_message(msg, sizeof msg);
    fprintf(stderr, "%s: %s: %s\n", what, shivya_status_name(s), msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *listen = argc > 1 ? argv[1] : "127.0.0.1:0";
    const char *bootstrap = (argc > 2 && argv[2][0] != 0) ? argv[2] : NULL;
    uint64_t run_ms = argc > 3 ? strtoull(argv[3], NULL, 10) : 3000;

    shivya_config *cfg = NULL;
    shivya_status s = shivya_config_new(&cfg);
    if (s != SHIVYA_OK) return fail("config", s);
    if ((s = shivya_config_set_listen(cfg, listen)) != SHIVYA_OK) return fail("listen", s);
    if (bootstrap && (s = shivya_config_add_bootstrap(cfg, bootstrap)) != SHIVYA_OK) return fail("bootstrap", s);
    if ((s = shivya_config_set_topology(cfg, 3, NULL, 0)) != SHIVYA_OK) return fail("topology", s);

    shivya_node *node = NULL;
    s = shivya_node_new(cfg, now_ms(), &node);
    shivya_config_free(cfg);
    if (s != SHIVYA_OK) return fail("node", s);

    char addr[SHIVYA_ADDR_LEN];
    size_t len = 0;
    shivya_local_addr(node, addr, sizeof addr, &len);
    printf("shivya %s listening on %s\n", shivya_version(), addr);

    uint64_t start = now_ms(), next_report = start + 1000;
    struct pollfd pfd = {.fd = shivya_fd(node), .events = POLLIN, .revents = 0};
    int tick = 0;
    while (now_ms() - start < run_ms) {
        uint64_t wait = 0;
        shivya_next_timeout_ms(node, now_ms(), &wait);
        if (wait > 1000) wait = 1000;
        poll(&pfd, 1, (int)wait);
        if ((s = shivya_step(node, now_ms())) != SHIVYA_OK) return fail("step", s);

        /* What a load balancer would measure: requests in flight per backend. */
        for (uint32_t b = 0; b < 3; b++) {
            double q = (double)((tick + 7 * (int)b) % 13) + (b == 0 ? 10.0 : 0.0);
            if ((s = shivya_record_queue_len(node, b, q)) != SHIVYA_OK) return fail("record", s);
        }
        tick++;

        if (now_ms() >= next_report) {
            next_report += 1000;
            shivya_route routes[8];
            size_t n = 0;
            if ((s = shivya_settle(node, routes, 8, &n)) != SHIVYA_OK) return fail("settle", s);
            shivya_snapshot snap;
            shivya_node_snapshot(node, &snap);
            printf("t=%llu ms peers=%llu records=%llu routes:", (unsigned long long)(now_ms() - start),
                   (unsigned long long)snap.peers, (unsigned long long)snap.records);
            for (size_t i = 0; i < n; i++) printf(" %u->%u %.2f", routes[i].src, routes[i].dst, routes[i].rate);
            printf("\n");
        }
    }
    shivya_leave(node);
    shivya_node_free(node);
    return 0;
}
