/* C tests of the Shivya C ABI. Built and run (under valgrind) by scripts/test-c.sh. */
#define _POSIX_C_SOURCE 200809L
#include "shivya.h"

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

/* An error status with a readable message. */
#define CHECK_ERR(call, expected)                                                    \
    do {                                                                             \
        shivya_status s_ = (call);                                                   \
        char m_[256];                                                                \
        size_t n_ = shivya_last_error_message(m_, sizeof m_);                        \
        if (s_ != (expected) || n_ == 0) {                                           \
            fprintf(stderr, "%s:%d: %s gave %s (%d), message \"%s\"\n", __FILE__,     \
                    __LINE__, #call, shivya_status_name(s_), (int)s_, m_);          \
            failures++;                                                              \
        }                                                                            \
    } while (0)

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define N 3

static shivya_node *nodes[N];

/* One turn of the host loop: poll every fd for at most the earliest timeout, then step. */
static void turn(void) {
    struct pollfd fds[N];
    uint64_t wait = 50, now = now_ms();
    for (int i = 0; i < N; i++) {
        uint64_t t = 0;
        CHECK(shivya_next_timeout_ms(nodes[i], now, &t) == SHIVYA_OK);
        if (t < wait) wait = t;
        fds[i].fd = shivya_fd(nodes[i]);
        fds[i].events = POLLIN;
        fds[i].revents = 0;
    }
    (void)poll(fds, N, (int)wait);
    now = now_ms();
    for (int i = 0; i < N; i++) CHECK(shivya_step(nodes[i], now) == SHIVYA_OK);
}

static int all_peers(size_t want) {
    for (int i = 0; i < N; i++) {
        shivya_snapshot s;
        if (shivya_node_snapshot(nodes[i], &s) != SHIVYA_OK || s.peers < want) return 0;
    }
    return 1;
}

static int routes_agree(shivya_route out[N][16], size_t len[N]) {
    for (int i = 0; i < N; i++) {
        shivya_snapshot s;
        if (shivya_node_snapshot(nodes[i], &s) != SHIVYA_OK || s.records != N) return 0;
        if (shivya_settle(nodes[i], out[i], 16, &len[i]) != SHIVYA_OK) return 0;
    }
    for (int i = 1; i < N; i++) {
        if (len[i] != len[0] || memcmp(out[i], out[0], len[0] * sizeof(shivya_route)) != 0) return 0;
    }
    return len[0] > 0;
}

static void test_three_nodes_settle_to_identical_routes(void) {
    char seed_addr[SHIVYA_ADDR_LEN];
    for (int i = 0; i < N; i++) {
        shivya_config *c = NULL;
        CHECK(shivya_config_new(&c) == SHIVYA_OK);
        CHECK(shivya_config_set_listen(c, "127.0.0.1:0") == SHIVYA_OK);
        CHECK(shivya_config_set_seed(c, 100 + (uint64_t)i) == SHIVYA_OK);
        CHECK(shivya_config_set_topology(c, 3, NULL, 0) == SHIVYA_OK);
        if (i > 0) CHECK(shivya_config_add_bootstrap(c, seed_addr) == SHIVYA_OK);
        CHECK(shivya_node_new(c, now_ms(), &nodes[i]) == SHIVYA_OK);
        shivya_config_free(c);
        if (i == 0) {
            size_t len = 0;
            CHECK(shivya_local_addr(nodes[0], seed_addr, sizeof seed_addr, &len) == SHIVYA_OK);
            CHECK(len == strlen(seed_addr));
        }
    }
    uint64_t start = now_ms();
    while (!all_peers(N - 1) && now_ms() - start < 10000) turn();
    CHECK(all_peers(N - 1));
    printf("three nodes discovered each other in %llu ms\n", (unsigned long long)(now_ms() - start));

    /* Every node writes every vertex, with values inexact in binary (tenths, thirds): a
     * node that summed the records in another order would differ in the last bits. */
    for (int i = 0; i < N; i++) {
        for (uint32_t v = 0; v < N; v++) {
            double q = (v + 1) * (0.1 * (i + 1) + 1.0 / 3.0);
            CHECK(shivya_record_queue_len(nodes[i], v, q) == SHIVYA_OK);
        }
        CHECK(shivya_record_offload(nodes[i], 0, 1, 0.1 + i / 3.0) == SHIVYA_OK);
    }
    shivya_route routes[N][16];
    size_t len[N] = {0};
    start = now_ms();
    while (!routes_agree(routes, len) && now_ms() - start < 10000) turn();
    CHECK(routes_agree(routes, len));
    printf("settled to identical routes in %llu ms:\n", (unsigned long long)(now_ms() - start));
    for (size_t r = 0; r < len[0]; r++) {
        printf("  %u -> %u at %.3f\n", routes[0][r].src, routes[0][r].dst, routes[0][r].rate);
    }
    /* Merged queues about 1.6, 3.2, 4.8 at vertices 0, 1, 2: work flows along every edge. */
    CHECK(len[0] == 3);

    shivya_peer peers[8];
    size_t np = 0;
    CHECK(shivya_peers(nodes[0], peers, 8, &np) == SHIVYA_OK);
    CHECK(np == N - 1);
    CHECK(strchr(peers[0].addr, ':') != NULL);
}

static void test_too_small_buffers_report_the_needed_length(void) {
    size_t len = 0;
    CHECK_ERR(shivya_settle(nodes[0], NULL, 0, &len), SHIVYA_ERR_BUFFER_TOO_SHORT);
    CHECK(len == 3);
    shivya_route one[1];
    CHECK_ERR(shivya_settle(nodes[0], one, 1, &len), SHIVYA_ERR_BUFFER_TOO_SHORT);
    CHECK(len == 3);
    CHECK_ERR(shivya_peers(nodes[0], NULL, 0, &len), SHIVYA_ERR_BUFFER_TOO_SHORT);
    CHECK(len == N - 1);
    char small[4];
    CHECK_ERR(shivya_local_addr(nodes[0], small, sizeof small, &len), SHIVYA_ERR_BUFFER_TOO_SHORT);
    CHECK(len > 4);
    /* The message can be asked for its length first. */
    size_t need = shivya_last_error_message(NULL, 0);
    CHECK(need > 0);
    char tiny[8];
    CHECK(shivya_last_error_message(tiny, sizeof tiny) == need);
    CHECK(strlen(tiny) == sizeof tiny - 1);
}

static void test_bad_input_is_rejected_and_the_node_stays_usable(void) {
    shivya_node *n = nodes[1];
    shivya_snapshot before, after;
    CHECK(shivya_node_snapshot(n, &before) == SHIVYA_OK);
    uint64_t t;
    size_t len;
    shivya_route r[4];
    const shivya_status BAD = SHIVYA_ERR_INVALID_ARGUMENT;

    /* NULL handles and out-pointers. */
    CHECK_ERR(shivya_config_new(NULL), BAD);
    CHECK_ERR(shivya_config_set_listen(NULL, "127.0.0.1:0"), BAD);
    CHECK_ERR(shivya_config_add_bootstrap(NULL, "127.0.0.1:1"), BAD);
    CHECK_ERR(shivya_config_set_seed(NULL, 1), BAD);
    CHECK_ERR(shivya_config_set_step_interval_ms(NULL, 10), BAD);
    CHECK_ERR(shivya_config_set_k(NULL, 4), BAD);
    CHECK_ERR(shivya_config_set_cg_tolerance(NULL, 1e-8), BAD);
    CHECK_ERR(shivya_config_set_topology(NULL, 3, NULL, 0), BAD);
    CHECK_ERR(shivya_config_set_gradient_only(NULL, true), BAD);
    shivya_node *out = (shivya_node *)&t; /* must be reset to NULL on error */
    CHECK_ERR(shivya_node_new(NULL, 0, &out), BAD);
    CHECK(out == NULL);
    CHECK_ERR(shivya_step(NULL, 0), BAD);
    CHECK(shivya_fd(NULL) == -1);
    CHECK_ERR(shivya_next_timeout_ms(NULL, 0, &t), BAD);
    CHECK_ERR(shivya_next_timeout_ms(n, 0, NULL), BAD);
    CHECK_ERR(shivya_record_queue_len(NULL, 0, 1.0), BAD);
    CHECK_ERR(shivya_record_offload(NULL, 0, 1, 1.0), BAD);
    CHECK_ERR(shivya_settle(NULL, r, 4, &len), BAD);
    CHECK_ERR(shivya_settle(n, r, 4, NULL), BAD);
    CHECK_ERR(shivya_settle(n, NULL, 4, &len), BAD);
    CHECK_ERR(shivya_node_snapshot(NULL, &after), BAD);
    CHECK_ERR(shivya_node_snapshot(n, NULL), BAD);
    CHECK_ERR(shivya_peers(NULL, NULL, 0, &len), BAD);
    CHECK_ERR(shivya_peers(n, NULL, 8, &len), BAD);
    CHECK_ERR(shivya_local_addr(NULL, NULL, 0, &len), BAD);
    CHECK_ERR(shivya_block(NULL, "127.0.0.1:1"), BAD);
    CHECK_ERR(shivya_block(n, NULL), BAD);
    CHECK_ERR(shivya_unblock(n, NULL), BAD);
    CHECK_ERR(shivya_leave(NULL), BAD);

    /* Bad strings, bad numbers, unknown ids. */
    CHECK_ERR(shivya_block(n, "not an address"), BAD);
    CHECK_ERR(shivya_block(n, "127.0.0.1"), BAD);
    CHECK_ERR(shivya_block(n, "\xff\xfe:1"), BAD); /* not UTF-8 */
    CHECK_ERR(shivya_record_queue_len(n, 0, NAN), BAD);
    CHECK_ERR(shivya_record_queue_len(n, 0, INFINITY), BAD);
    CHECK_ERR(shivya_record_queue_len(n, 0, -1.0), BAD);
    CHECK_ERR(shivya_record_queue_len(n, 99, 1.0), BAD);
    CHECK_ERR(shivya_record_offload(n, 0, 0, 1.0), BAD);
    CHECK_ERR(shivya_record_offload(n, 0, 7, 1.0), BAD);
    CHECK_ERR(shivya_record_offload(n, 0, 1, NAN), BAD);

    shivya_config *c = NULL;
    CHECK(shivya_config_new(&c) == SHIVYA_OK);
    CHECK_ERR(shivya_config_set_listen(c, "localhost"), BAD);
    CHECK_ERR(shivya_config_set_listen(c, NULL), BAD);
    CHECK_ERR(shivya_config_add_bootstrap(c, "300.1.1.1:5"), BAD);
    CHECK_ERR(shivya_config_set_step_interval_ms(c, 0), BAD);
    CHECK_ERR(shivya_config_set_k(c, 0), BAD);
    CHECK_ERR(shivya_config_set_k(c, 21), BAD);
    CHECK_ERR(shivya_config_set_cg_tolerance(c, NAN), BAD);
    CHECK_ERR(shivya_config_set_cg_tolerance(c, -1.0), BAD);
    CHECK_ERR(shivya_config_set_topology(c, 3, NULL, 2), BAD);       /* NULL with length */
    const uint32_t loop_edge[2] = {1, 1};
    CHECK_ERR(shivya_config_set_topology(c, 3, loop_edge, 1), BAD);  /* self-loop */
    const uint32_t far_edge[2] = {0, 5};
    CHECK_ERR(shivya_config_set_topology(c, 3, far_edge, 1), BAD);   /* out of range */
    CHECK_ERR(shivya_config_set_topology(c, 3, far_edge, SIZE_MAX), BAD); /* overflow */
    CHECK_ERR(shivya_config_set_auth_key(c, (const uint8_t *)"short", 5), BAD);
    CHECK_ERR(shivya_config_set_auth_key(c, NULL, 16), BAD);
    CHECK_ERR(shivya_config_set_incarnation(c, UINT64_MAX), BAD);
    CHECK(shivya_config_set_auth_key(c, (const uint8_t *)"a mesh key of 24 bytes!!", 24) == SHIVYA_OK);
    CHECK(shivya_config_set_auth_key(c, NULL, 0) == SHIVYA_OK);
    shivya_config_free(c);

    /* Nothing stored was lost: the node still works and its state is unchanged. */
    CHECK(shivya_node_snapshot(n, &after) == SHIVYA_OK);
    CHECK(after.own_version == before.own_version);
    CHECK(after.records == before.records);
    CHECK(shivya_step(n, now_ms()) == SHIVYA_OK);
    CHECK(shivya_settle(n, r, 4, &len) == SHIVYA_OK);
    CHECK(len == 3);
}

static void test_port_in_use_is_an_io_error(void) {
    char addr[SHIVYA_ADDR_LEN];
    size_t len;
    CHECK(shivya_local_addr(nodes[0], addr, sizeof addr, &len) == SHIVYA_OK);
    shivya_config *c = NULL;
    CHECK(shivya_config_new(&c) == SHIVYA_OK);
    CHECK(shivya_config_set_listen(c, addr) == SHIVYA_OK);
    shivya_node *n = NULL;
    CHECK_ERR(shivya_node_new(c, now_ms(), &n), SHIVYA_ERR_IO);
    CHECK(n == NULL);
    shivya_config_free(c);
}

static void test_standalone_reconciler(void) {
    /* The bowtie: two triangles sharing vertex 2. */
    const uint32_t edges[12] = {0, 1, 0, 2, 1, 2, 2, 3, 2, 4, 3, 4};
    const uint32_t tris[6] = {0, 1, 2, 2, 3, 4};
    shivya_complex *cx = NULL;
    CHECK(shivya_complex_new(5, edges, 6, tris, 2, &cx) == SHIVYA_OK);
    CHECK(shivya_complex_n_edges(cx) == 6);
    /* A pure circulation around the first triangle: 0->1->2->0. */
    const double curl[6] = {1, -1, 1, 0, 0, 0};
    double out[6];
    shivya_solver_report rep;
    CHECK(shivya_reconcile(cx, curl, out, 6, &rep) == SHIVYA_OK);
    for (int i = 0; i < 6; i++) CHECK(fabs(out[i]) < 1e-9);
    CHECK(rep.converged);
    CHECK(rep.iterations <= 10);
    CHECK(shivya_reconcile(cx, curl, out, 6, NULL) == SHIVYA_OK);

    CHECK_ERR(shivya_reconcile(cx, curl, out, 5, &rep), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_reconcile(cx, NULL, out, 6, &rep), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_reconcile(cx, curl, NULL, 6, &rep), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_reconcile(NULL, curl, out, 6, &rep), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_reconcile(cx, out, out, 6, &rep), SHIVYA_ERR_INVALID_ARGUMENT);
    const double nan_flow[6] = {1, NAN, 0, 0, 0, 0};
    CHECK_ERR(shivya_reconcile(cx, nan_flow, out, 6, &rep), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK(shivya_reconcile(cx, curl, out, 6, &rep) == SHIVYA_OK); /* still usable */
    shivya_complex_free(cx);

    shivya_complex *bad = (shivya_complex *)&rep;
    const uint32_t missing_tri[3] = {0, 1, 3};
    CHECK_ERR(shivya_complex_new(5, edges, 6, missing_tri, 1, &bad), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    CHECK_ERR(shivya_complex_new(5, NULL, 6, NULL, 0, &bad), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_complex_new(5, edges, 6, tris, 2, NULL), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK(shivya_complex_n_edges(NULL) == 0);
}

static void test_version_and_names(void) {
    CHECK(shivya_abi_version() == SHIVYA_ABI_VERSION);
    CHECK(strlen(shivya_version()) > 0);
    CHECK(strcmp(shivya_status_name(SHIVYA_ERR_BUFFER_TOO_SHORT), "SHIVYA_ERR_BUFFER_TOO_SHORT") == 0);
    CHECK(strcmp(shivya_status_name(12345), "unknown") == 0);
    /* Freeing NULL is a no-op. */
    shivya_config_free(NULL);
    shivya_node_free(NULL);
    shivya_complex_free(NULL);
}

/* Two threads call into one node at once: every call returns OK or SHIVYA_ERR_BUSY, never
 * anything else, and the node is intact afterwards. */
struct hammer { shivya_node *node; int ok, busy, other; };

static void *hammer_thread(void *arg) {
    struct hammer *h = arg;
    for (int i = 0; i < 2000; i++) {
        shivya_status s = (i % 2) ? shivya_step(h->node, now_ms())
                                  : shivya_record_queue_len(h->node, 1, (double)(i % 7));
        if (s == SHIVYA_OK) h->ok++;
        else if (s == SHIVYA_ERR_BUSY) h->busy++;
        else h->other++;
    }
    return NULL;
}

static void test_concurrent_calls_on_one_node_are_refused_not_raced(void) {
    struct hammer a = {nodes[0], 0, 0, 0}, b = {nodes[0], 0, 0, 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, hammer_thread, &a) == 0);
    CHECK(pthread_create(&tb, NULL, hammer_thread, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.other == 0 && b.other == 0);
    CHECK(a.ok + a.busy == 2000 && b.ok + b.busy == 2000);
    printf("two threads on one node: %d calls done, %d refused as busy\n", a.ok + b.ok, a.busy + b.busy);
    shivya_snapshot s;
    CHECK(shivya_node_snapshot(nodes[0], &s) == SHIVYA_OK);
    CHECK(shivya_step(nodes[0], now_ms()) == SHIVYA_OK);
    CHECK(strcmp(shivya_status_name(SHIVYA_ERR_BUSY), "SHIVYA_ERR_BUSY") == 0);
}

/* Each of these once aborted the host process, hung a node or returned OK for a no-op. */
static void test_inputs_that_once_aborted_or_hung_are_refused(void) {
    const shivya_status BAD = SHIVYA_ERR_INVALID_ARGUMENT;
    shivya_complex *cx = NULL;
    CHECK_ERR(shivya_complex_new(UINT32_MAX, NULL, 0, NULL, 0, &cx), BAD); /* 34 GB */
    CHECK(cx == NULL);
    CHECK_ERR(shivya_complex_new(SHIVYA_MAX_VERTICES + 1, NULL, 0, NULL, 0, &cx), BAD);
    CHECK(shivya_complex_new(SHIVYA_MAX_VERTICES, NULL, 0, NULL, 0, &cx) == SHIVYA_OK);
    shivya_complex_free(cx);

    shivya_config *c = NULL;
    CHECK(shivya_config_new(&c) == SHIVYA_OK);
    /* The default topology: beyond 64 vertices the ring with chords (2n edges), so large
     * upstreams are accepted and the vertex limit still holds. */
    CHECK_ERR(shivya_config_set_topology(c, UINT32_MAX, NULL, 0), BAD);
    CHECK_ERR(shivya_config_set_topology(c, SHIVYA_MAX_VERTICES + 1, NULL, 0), BAD);
    CHECK(shivya_config_set_topology(c, 100000, NULL, 0) == SHIVYA_OK);
    CHECK(shivya_config_set_topology(c, 2000, NULL, 0) == SHIVYA_OK);
    const uint32_t six[12] = {0, 1, 0, 2, 1, 2, 2, 3, 2, 4, 3, 4};
    CHECK_ERR(shivya_config_set_topology(c, UINT32_MAX, six, 6), BAD);
    CHECK(shivya_config_set_topology(c, 64, NULL, 0) == SHIVYA_OK); /* complete: 41 664 triangles */
    CHECK(shivya_config_set_topology(c, 5, six, 6) == SHIVYA_OK);
    CHECK_ERR(shivya_config_add_bootstrap(c, "127.0.0.1:0"), BAD);
    CHECK_ERR(shivya_config_add_bootstrap(c, "0.0.0.0:7000"), BAD);
    CHECK_ERR(shivya_config_add_bootstrap(c, "[::1]:7000"), BAD); /* v4 listener */
    CHECK_ERR(shivya_config_add_bootstrap(c, "224.0.0.1:7000"), BAD);
    CHECK(shivya_config_add_bootstrap(c, "127.0.0.1:7000") == SHIVYA_OK);
    shivya_config_free(c);

    /* Partly overlapping input and output. */
    const uint32_t edges[6] = {0, 1, 0, 2, 1, 2};
    const uint32_t tri[3] = {0, 1, 2};
    CHECK(shivya_complex_new(3, edges, 3, tri, 1, &cx) == SHIVYA_OK);
    double buf[4] = {1.0, -1.0, 1.0, 0.0};
    CHECK_ERR(shivya_reconcile(cx, buf, buf + 1, 3, NULL), BAD);
    CHECK_ERR(shivya_reconcile(cx, buf + 1, buf, 3, NULL), BAD);
    shivya_complex_free(cx);

    /* The host clock steps back by 1000 s: the wait is still measured from the latest
     * time seen, not stretched by 1000 s. */
    uint64_t now = now_ms() + 2000000, t = 0;
    CHECK(shivya_step(nodes[0], now) == SHIVYA_OK);
    CHECK(shivya_next_timeout_ms(nodes[0], now - 1000000, &t) == SHIVYA_OK);
    CHECK(t <= 1000);
}

/* A reload: the next generation binds the port the old one still holds. */
static void test_reuse_port_lets_a_second_generation_bind(void) {
    CHECK_ERR(shivya_config_set_reuse_port(NULL, true), SHIVYA_ERR_INVALID_ARGUMENT);
    shivya_config *c = NULL;
    CHECK(shivya_config_new(&c) == SHIVYA_OK);
    CHECK(shivya_config_set_reuse_port(c, true) == SHIVYA_OK);
    shivya_node *old = NULL, *next = NULL;
    CHECK(shivya_node_new(c, now_ms(), &old) == SHIVYA_OK);
    char addr[SHIVYA_ADDR_LEN];
    size_t len = 0;
    CHECK(shivya_local_addr(old, addr, sizeof addr, &len) == SHIVYA_OK);
    CHECK(shivya_config_set_listen(c, addr) == SHIVYA_OK);
    CHECK(shivya_node_new(c, now_ms(), &next) == SHIVYA_OK);
    shivya_node_free(old);
    CHECK(shivya_step(next, now_ms()) == SHIVYA_OK);
    shivya_node_free(next);
    shivya_config_free(c);
}

static void test_host_time_faults(void) {
    /* Backwards, a huge jump, then normal time again: every call succeeds. */
    uint64_t t;
    CHECK(shivya_step(nodes[1], 5) == SHIVYA_OK);
    CHECK(shivya_next_timeout_ms(nodes[1], 0, &t) == SHIVYA_OK);
    CHECK(shivya_step(nodes[1], UINT64_MAX - 1) == SHIVYA_OK);
    CHECK(shivya_step(nodes[1], UINT64_MAX) == SHIVYA_OK);
    CHECK(shivya_next_timeout_ms(nodes[1], 0, &t) == SHIVYA_OK);
    CHECK(shivya_record_queue_len(nodes[1], 0, 1.0) == SHIVYA_OK);
}

static int picks_of(uint32_t backend) {
    int count = 0;
    for (int k = 0; k < 200; k++) {
        uint32_t b = 99;
        CHECK(shivya_pick(nodes[0], now_ms(), &b) == SHIVYA_OK);
        CHECK(b < N);
        if (b == backend) count++;
    }
    return count;
}

static void test_the_balancer_sees_another_balancers_load(void) {
    const int BAD = SHIVYA_ERR_INVALID_ARGUMENT;
    /* Node 2 holds 40 requests at backend 2; node 0 hears answers from every backend. */
    for (int k = 0; k < 40; k++) CHECK(shivya_request_started(nodes[2], 2, now_ms()) == SHIVYA_OK);
    for (uint32_t b = 0; b < N; b++) {
        CHECK(shivya_request_started(nodes[0], b, now_ms()) == SHIVYA_OK);
        CHECK(shivya_request_finished(nodes[0], b, 10.0, SHIVYA_OUTCOME_OK, now_ms()) == SHIVYA_OK);
    }
    int before = picks_of(2);
    uint64_t start = now_ms();
    int after = before;
    while (after > 10 && now_ms() - start < 10000) {
        turn();
        after = picks_of(2);
    }
    printf("picks of the loaded backend: %d of 200 before, %d after %llu ms\n", before, after,
           (unsigned long long)(now_ms() - start));
    CHECK(before > 30);
    CHECK(after <= 10);

    double w[N + 1];
    size_t len = 0;
    CHECK_ERR(shivya_weights(nodes[0], w, 1, &len), SHIVYA_ERR_BUFFER_TOO_SHORT);
    CHECK(len == N);
    CHECK(shivya_weights(nodes[0], w, N + 1, &len) == SHIVYA_OK);
    CHECK(len == N);
    CHECK(fabs(w[0] + w[1] + w[2] - 1.0) < 1e-9);
    shivya_capacity_signal sig[N];
    CHECK(shivya_capacity_signals(nodes[0], sig, N, &len) == SHIVYA_OK);
    CHECK(len <= N);

    /* Bad input: a clear error, nothing counted. */
    uint32_t b = 0;
    CHECK_ERR(shivya_pick(NULL, 0, &b), BAD);
    CHECK_ERR(shivya_pick(nodes[0], 0, NULL), BAD);
    CHECK_ERR(shivya_request_started(NULL, 0, 0), BAD);
    CHECK_ERR(shivya_request_started(nodes[0], N, 0), BAD);
    CHECK_ERR(shivya_request_finished(nodes[0], 0, NAN, SHIVYA_OUTCOME_OK, 0), BAD);
    CHECK_ERR(shivya_request_finished(nodes[0], 0, -1.0, SHIVYA_OUTCOME_OK, 0), BAD);
    CHECK_ERR(shivya_request_finished(nodes[0], 0, INFINITY, SHIVYA_OUTCOME_FAILED, 0), BAD);
    CHECK_ERR(shivya_request_finished(nodes[0], 0, 1.0, 7, 0), BAD);
    CHECK_ERR(shivya_request_finished(nodes[0], 99, 1.0, SHIVYA_OUTCOME_REFUSED, 0), BAD);
    CHECK_ERR(shivya_set_backend_weight(nodes[0], 0, 0.0), BAD);
    CHECK_ERR(shivya_set_backend_weight(nodes[0], 0, NAN), BAD);
    CHECK_ERR(shivya_set_backend_weight(nodes[0], 7, 1.0), BAD);
    CHECK_ERR(shivya_weights(nodes[0], NULL, 3, &len), BAD);
    CHECK_ERR(shivya_capacity_signals(nodes[0], sig, N, NULL), BAD);

    /* Information age: node 0 holds the other two balancers' records. */
    shivya_ages ages;
    CHECK(shivya_record_ages(nodes[0], now_ms(), &ages) == SHIVYA_OK);
    CHECK(ages.origins == 2);
    CHECK(ages.mean_ms >= 0.0 && ages.mean_ms <= (double)ages.max_ms);
    CHECK(shivya_record_ages(nodes[0], now_ms() + 60000, &ages) == SHIVYA_OK);
    CHECK(ages.max_ms >= 60000);
    CHECK_ERR(shivya_record_ages(NULL, 0, &ages), BAD);
    CHECK_ERR(shivya_record_ages(nodes[0], 0, NULL), BAD);

    /* The weight law: checked when set, a refused one changes nothing. */
    shivya_config *c = NULL;
    char msg[256];
    CHECK(shivya_config_new(&c) == SHIVYA_OK);
    CHECK_ERR(shivya_config_set_weight_law(c, "weight / latency"), BAD);
    shivya_last_error_message(msg, sizeof msg);
    CHECK(strstr(msg, "unknown name 'latency'") != NULL);
    CHECK_ERR(shivya_config_set_weight_law(c, "(((q)"), BAD);
    CHECK(shivya_config_set_weight_law(c, "weight / (svc * (1 + q))") == SHIVYA_OK);
    CHECK(shivya_config_set_weight_law(c, NULL) == SHIVYA_OK);
    CHECK_ERR(shivya_config_set_weight_law(NULL, "q"), BAD);
    CHECK_ERR(shivya_config_set_balancer_layers(c, 64), BAD);
    CHECK(shivya_config_set_balancer_layers(c, SHIVYA_LAYERS_ALL & ~SHIVYA_LAYER_SHARED) == SHIVYA_OK);
    CHECK(shivya_config_set_belief_exchange(c, true) == SHIVYA_OK);
    shivya_config_free(c);
}

/* Two signed, encrypted nodes that admit each other's keys: they meet, share records,
 * rotate their encryption key while running, and refuse every malformed key input. */
static void step_pair(shivya_node *a, shivya_node *b, uint64_t ms) {
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
        struct pollfd fds[2] = {{shivya_fd(a), POLLIN, 0}, {shivya_fd(b), POLLIN, 0}};
        (void)poll(fds, 2, 20);
        CHECK(shivya_step(a, now_ms()) == SHIVYA_OK);
        CHECK(shivya_step(b, now_ms()) == SHIVYA_OK);
    }
}

static int same_view(shivya_node *a, shivya_node *b, uint64_t want_records) {
    shivya_snapshot sa, sb;
    uint64_t da = 0, db = 1;
    if (shivya_node_snapshot(a, &sa) != SHIVYA_OK || shivya_node_snapshot(b, &sb) != SHIVYA_OK)
        return 0;
    if (sa.records != want_records || sb.records != want_records) return 0;
    if (shivya_view_digest(a, &da) != SHIVYA_OK || shivya_view_digest(b, &db) != SHIVYA_OK) return 0;
    return da == db;
}

static void test_signed_encrypted_mesh_and_key_rotation(void) {
    const int BAD = SHIVYA_ERR_INVALID_ARGUMENT;
    uint8_t secret[2][SHIVYA_SECRET_KEY_LEN], pub[2][SHIVYA_PUBLIC_KEY_LEN];
    uint8_t k1[SHIVYA_KEYRING_KEY_LEN], k2[SHIVYA_KEYRING_KEY_LEN];
    memset(k1, 0x11, sizeof k1);
    memset(k2, 0x22, sizeof k2);
    for (int i = 0; i < 2; i++) {
        CHECK(shivya_identity_generate(secret[i], sizeof secret[i]) == SHIVYA_OK);
        CHECK(shivya_identity_public_key(secret[i], sizeof secret[i], pub[i], sizeof pub[i]) == SHIVYA_OK);
    }
    CHECK(memcmp(pub[0], pub[1], SHIVYA_PUBLIC_KEY_LEN) != 0);
    shivya_node *n[2] = {NULL, NULL};
    char seed_addr[SHIVYA_ADDR_LEN];
    for (int i = 0; i < 2; i++) {
        shivya_config *c = NULL;
        CHECK(shivya_config_new(&c) == SHIVYA_OK);
        CHECK(shivya_config_set_listen(c, "127.0.0.1:0") == SHIVYA_OK);
        CHECK(shivya_config_set_topology(c, 3, NULL, 0) == SHIVYA_OK);
        /* An allowlist before the identity is refused; so is a keyring with a mesh key. */
        CHECK_ERR(shivya_config_admit_key(c, pub[0], sizeof pub[0]), BAD);
        CHECK(shivya_config_set_identity(c, secret[i], sizeof secret[i]) == SHIVYA_OK);
        CHECK(shivya_config_admit_key(c, pub[0], sizeof pub[0]) == SHIVYA_OK);
        CHECK(shivya_config_admit_key(c, pub[1], sizeof pub[1]) == SHIVYA_OK);
        CHECK(shivya_config_add_keyring_key(c, 1, k1, sizeof k1, 1) == SHIVYA_OK);
        CHECK_ERR(shivya_config_set_auth_key(c, (const uint8_t *)"a mesh key of 24 bytes!!", 24), BAD);
        if (i == 1) CHECK(shivya_config_add_bootstrap(c, seed_addr) == SHIVYA_OK);
        CHECK(shivya_node_new(c, now_ms(), &n[i]) == SHIVYA_OK);
        shivya_config_free(c);
        if (i == 0) {
            size_t len = 0;
            CHECK(shivya_local_addr(n[0], seed_addr, sizeof seed_addr, &len) == SHIVYA_OK);
        }
        uint8_t mine[SHIVYA_PUBLIC_KEY_LEN];
        CHECK(shivya_node_public_key(n[i], mine, sizeof mine) == SHIVYA_OK);
        CHECK(memcmp(mine, pub[i], sizeof mine) == 0);
    }
    CHECK(shivya_record_queue_len(n[0], 0, 1.5) == SHIVYA_OK);
    CHECK(shivya_record_queue_len(n[1], 1, 2.5) == SHIVYA_OK);
    uint64_t start = now_ms();
    while (!same_view(n[0], n[1], 2) && now_ms() - start < 10000) step_pair(n[0], n[1], 50);
    CHECK(same_view(n[0], n[1], 2));
    printf("signed, encrypted pair shares one view after %llu ms\n",
           (unsigned long long)(now_ms() - start));

    /* Rotation at run time: add key 2 on both, make it primary on both, retire key 1. */
    for (int i = 0; i < 2; i++) CHECK(shivya_node_add_keyring_key(n[i], 2, k2, sizeof k2) == SHIVYA_OK);
    for (int i = 0; i < 2; i++) CHECK(shivya_node_set_primary_key(n[i], 2) == SHIVYA_OK);
    CHECK_ERR(shivya_node_remove_keyring_key(n[0], 2), BAD);
    for (int i = 0; i < 2; i++) CHECK(shivya_node_remove_keyring_key(n[i], 1) == SHIVYA_OK);
    CHECK(shivya_record_queue_len(n[0], 2, 4.0) == SHIVYA_OK);
    shivya_snapshot before;
    CHECK(shivya_node_snapshot(n[1], &before) == SHIVYA_OK);
    step_pair(n[0], n[1], 600);
    shivya_snapshot after;
    CHECK(shivya_node_snapshot(n[1], &after) == SHIVYA_OK);
    CHECK(same_view(n[0], n[1], 2));
    CHECK(after.dropped == before.dropped);

    /* Bad input: wrong lengths, NULLs, unknown or duplicate key ids, unsigned nodes. */
    uint8_t small[8] = {0};
    CHECK_ERR(shivya_identity_generate(NULL, 32), BAD);
    CHECK_ERR(shivya_identity_generate(small, sizeof small), BAD);
    CHECK_ERR(shivya_identity_public_key(small, sizeof small, pub[0], 32), BAD);
    CHECK_ERR(shivya_identity_public_key(secret[0], 32, small, sizeof small), BAD);
    CHECK_ERR(shivya_node_add_keyring_key(n[0], 3, small, sizeof small), BAD);
    CHECK_ERR(shivya_node_add_keyring_key(n[0], 2, k1, sizeof k1), BAD);
    CHECK_ERR(shivya_node_add_keyring_key(NULL, 3, k1, sizeof k1), BAD);
    CHECK_ERR(shivya_node_set_primary_key(n[0], 9), BAD);
    CHECK_ERR(shivya_node_remove_keyring_key(n[0], 9), BAD);
    CHECK_ERR(shivya_node_public_key(n[0], small, sizeof small), BAD);
    CHECK_ERR(shivya_node_public_key(NULL, pub[0], 32), BAD);
    shivya_config *c = NULL;
    CHECK(shivya_config_new(&c) == SHIVYA_OK);
    CHECK_ERR(shivya_config_set_identity(c, small, sizeof small), BAD);
    CHECK_ERR(shivya_config_set_identity(c, NULL, 32), BAD);
    CHECK_ERR(shivya_config_set_identity(NULL, secret[0], 32), BAD);
    CHECK_ERR(shivya_config_add_keyring_key(c, 1, small, sizeof small, 1), BAD);
    CHECK(shivya_config_set_identity(c, secret[0], 32) == SHIVYA_OK);
    CHECK_ERR(shivya_config_admit_key(c, small, sizeof small), BAD);
    /* A list without the node's own key is refused when the node is made. */
    CHECK(shivya_config_admit_key(c, pub[1], sizeof pub[1]) == SHIVYA_OK);
    shivya_node *refused = NULL;
    CHECK_ERR(shivya_node_new(c, now_ms(), &refused), BAD);
    CHECK(refused == NULL);
    CHECK(shivya_config_set_identity(c, NULL, 0) == SHIVYA_OK);
    shivya_node *plain = NULL;
    CHECK(shivya_node_new(c, now_ms(), &plain) == SHIVYA_OK);
    CHECK_ERR(shivya_node_public_key(plain, pub[0], 32), BAD);
    CHECK_ERR(shivya_node_add_keyring_key(plain, 1, k1, sizeof k1), BAD);
    shivya_node_free(plain);
    shivya_config_free(c);
    for (int i = 0; i < 2; i++) shivya_node_free(n[i]);
}

/* A 1 000-backend upstream through the C ABI: the default topology (ring with chords),
 * records of 1 000 loads crossing real sockets in CHUNK parts, weights and picks over all. */
static void test_a_thousand_backends(void) {
    shivya_node *n[2] = {NULL, NULL};
    char seed_addr[SHIVYA_ADDR_LEN];
    for (int i = 0; i < 2; i++) {
        shivya_config *c = NULL;
        CHECK(shivya_config_new(&c) == SHIVYA_OK);
        CHECK(shivya_config_set_listen(c, "127.0.0.1:0") == SHIVYA_OK);
        CHECK(shivya_config_set_seed(c, 4242 + (uint64_t)i) == SHIVYA_OK);
        CHECK(shivya_config_set_topology(c, 1000, NULL, 0) == SHIVYA_OK);
        if (i == 1) CHECK(shivya_config_add_bootstrap(c, seed_addr) == SHIVYA_OK);
        CHECK(shivya_node_new(c, now_ms(), &n[i]) == SHIVYA_OK);
        shivya_config_free(c);
        if (i == 0) {
            size_t len = 0;
            CHECK(shivya_local_addr(n[0], seed_addr, sizeof seed_addr, &len) == SHIVYA_OK);
        }
        for (uint32_t v = 0; v < 1000; v++) {
            CHECK(shivya_record_queue_len(n[i], v, 0.5 * (1 + (v + (uint32_t)i) % 3)) == SHIVYA_OK);
        }
    }
    uint64_t start = now_ms();
    while (!same_view(n[0], n[1], 2) && now_ms() - start < 10000) step_pair(n[0], n[1], 50);
    CHECK(same_view(n[0], n[1], 2));
    printf("two records of 1000 backends shared after %llu ms\n", (unsigned long long)(now_ms() - start));
    static double w[1000];
    size_t len = 0;
    for (uint32_t b = 0; b < 1000; b++) {
        CHECK(shivya_request_started(n[0], b, now_ms()) == SHIVYA_OK);
        CHECK(shivya_request_finished(n[0], b, 5.0, SHIVYA_OUTCOME_OK, now_ms()) == SHIVYA_OK);
    }
    CHECK(shivya_weights(n[0], w, 1000, &len) == SHIVYA_OK);
    CHECK(len == 1000);
    double sum = 0;
    for (size_t k = 0; k < len; k++) sum += w[k];
    CHECK(fabs(sum - 1.0) < 1e-9);
    uint32_t pick = 0, top = 0;
    for (int k = 0; k < 2000; k++) {
        CHECK(shivya_pick(n[0], now_ms(), &pick) == SHIVYA_OK);
        if (pick > top) top = pick;
    }
    CHECK(top > 500 && top < 1000);
    CHECK_ERR(shivya_record_queue_len(n[0], 1000, 1.0), SHIVYA_ERR_INVALID_ARGUMENT);
    /* Drops by reason: every reason named, a garbage datagram counted under one. */
    shivya_drop_reason reasons[32];
    size_t nd = 0;
    CHECK_ERR(shivya_drop_reasons(n[0], reasons, 2, &nd), SHIVYA_ERR_BUFFER_TOO_SHORT);
    CHECK(nd == 19);
    CHECK(shivya_drop_reasons(n[0], reasons, 32, &nd) == SHIVYA_OK && nd == 19);
    int named = 0;
    for (size_t k = 0; k < nd; k++) named += strcmp(reasons[k].name, "bad_signature") == 0;
    CHECK(named == 1);
    CHECK_ERR(shivya_drop_reasons(NULL, reasons, 32, &nd), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_drop_reasons(n[0], NULL, 32, &nd), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_drop_reasons(n[0], reasons, 32, NULL), SHIVYA_ERR_INVALID_ARGUMENT);
    for (int i = 0; i < 2; i++) shivya_node_free(n[i]);
}

int main(void) {
    test_version_and_names();
    test_three_nodes_settle_to_identical_routes();
    test_too_small_buffers_report_the_needed_length();
    test_bad_input_is_rejected_and_the_node_stays_usable();
    test_port_in_use_is_an_io_error();
    test_standalone_reconciler();
    test_concurrent_calls_on_one_node_are_refused_not_raced();
    test_inputs_that_once_aborted_or_hung_are_refused();
    test_reuse_port_lets_a_second_generation_bind();
    test_host_time_faults();
    test_the_balancer_sees_another_balancers_load();
    test_signed_encrypted_mesh_and_key_rotation();
    test_a_thousand_backends();
    CHECK(shivya_leave(nodes[2]) == SHIVYA_OK);
    /* A write after leaving would never be sent: refused. */
    CHECK_ERR(shivya_record_queue_len(nodes[2], 0, 1.0), SHIVYA_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shivya_record_offload(nodes[2], 0, 1, 1.0), SHIVYA_ERR_INVALID_ARGUMENT);
    for (int i = 0; i < N; i++) shivya_node_free(nodes[i]);
    if (failures) {
        fprintf(stderr, "test_ffi: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_ffi: all checks passed\n");
    return 0;
}
