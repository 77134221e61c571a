/*
 * ngx_http_shivya_module: an nginx upstream balancer driven by a Shivya mesh node.
 *
 *   http {
 *       shivya_listen 127.0.0.1:7100;     # UDP address of this nginx's node
 *       shivya_peer   127.0.0.1:7200;     # another nginx's node (repeatable)
 *       upstream app { shivya; server a:80; server b:80; server c:80; }
 *       server { location / { proxy_pass http://app; }
 *                location = /shivya_status { shivya_status; }
 *                location = /shivya_metrics { shivya_metrics; } }
 *   }
 *
 * Decision. Each server of the `shivya` upstream is a backend (a vertex), in configuration
 * order. The module asks the library for every request: shivya_pick() chooses the server
 * (the library's balancer: two candidates by the weight law, the one with the smaller
 * expected delay from this worker's requests in flight, the other balancers' load from
 * the mesh and the filtered delay per request), shivya_request_started() and
 * shivya_request_finished() report what happened (a failed attempt as a failure). The
 * library publishes this worker's requests in flight per server to the mesh. nginx's own
 * failure handling stays: a server that is down, at max_conns, failed max_fails times
 * within fail_timeout, or already tried by this request is not used; the module then asks
 * again (four picks) and falls back to nginx's weighted round-robin, which also handles
 * backup servers and proxy_next_upstream. Configured weights are the library's prior for
 * each server's capacity; `shivya_weight_law "<expr>";` replaces the weight law (checked
 * at `nginx -t`).
 *
 * Event loop. The node's UDP socket is an nginx connection with a read handler, and
 * shivya_next_timeout_ms() arms an nginx timer: no thread, no busy loop.
 *
 * Generations. Reloads, binary upgrades and respawns start a worker with the same node id
 * on the same port: it binds beside the old one (SO_REUSEPORT) with a later incarnation
 * (wall-clock ms), the old one closes its node quietly once told to QUIT, and only a stop
 * (TERM/INT) publishes an empty record and LEAVE.
 *
 * Workers. Each worker process runs its own node on shivya_listen's port + worker index
 * and peers with port + worker index of every shivya_peer and with its sibling workers'
 * ports, so every worker of every nginx is one mesh: a worker's requests in flight are in
 * its record, and every other worker (of this nginx or another) merges them into its
 * decisions within a gossip round. One `shivya` upstream per http block.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <shivya.h>

/* A node publishes the loads of at most 4 096 backends (records beyond 48 travel in
 * CHUNK parts). */
#define SHIVYA_MAX_SERVERS 4096
#define SHIVYA_PICK_TRIES 4

typedef struct {
    ngx_str_t                      listen;
    ngx_array_t                   *peers; /* of ngx_str_t */
    ngx_http_upstream_srv_conf_t  *uscf;
    ngx_str_t                      law; /* empty: the library's default */
} ngx_http_shivya_main_conf_t;

typedef struct {
    ngx_flag_t                     status;
} ngx_http_shivya_loc_conf_t;

typedef struct {
    ngx_http_upstream_rr_peer_data_t  rrp; /* first: the round-robin code uses it */
    ngx_uint_t                        index;
    ngx_msec_t                        start;
} ngx_http_shivya_peer_data_t;

/* Per worker process. */
static shivya_node                    *ngx_shivya_node;
static ngx_connection_t               *ngx_shivya_conn;
static ngx_event_t                     ngx_shivya_timer;
static ngx_http_upstream_rr_peers_t   *ngx_shivya_rr;
static ngx_uint_t                      ngx_shivya_n;
static ngx_uint_t                      ngx_shivya_inflight[SHIVYA_MAX_SERVERS];
static double                          ngx_shivya_rt[SHIVYA_MAX_SERVERS]; /* for display */
/* Server k of the upstream, so a pick costs no walk down the peer list. */
static ngx_http_upstream_rr_peer_t    *ngx_shivya_peer_at[SHIVYA_MAX_SERVERS];
/* Scratch for the status and metrics handlers (one request at a time per worker). */
static double                          ngx_shivya_share[SHIVYA_MAX_SERVERS];
static const char                     *ngx_shivya_signal[SHIVYA_MAX_SERVERS];
static shivya_capacity_signal          ngx_shivya_sig[SHIVYA_MAX_SERVERS];
static ngx_uint_t                      ngx_shivya_fallbacks;

static void *ngx_http_shivya_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_shivya_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_shivya_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_shivya_listen(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_shivya_peer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_shivya_weight_law(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_shivya_upstream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_shivya_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_shivya_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_shivya_init_process(ngx_cycle_t *cycle);
static void ngx_http_shivya_exit_process(ngx_cycle_t *cycle);

static ngx_command_t ngx_http_shivya_commands[] = {
    { ngx_string("shivya_listen"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
      ngx_http_shivya_listen, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL },
    { ngx_string("shivya_peer"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
      ngx_http_shivya_peer, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL },
    { ngx_string("shivya_weight_law"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
      ngx_http_shivya_weight_law, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL },
    { ngx_string("shivya"), NGX_HTTP_UPS_CONF | NGX_CONF_NOARGS,
      ngx_http_shivya_upstream, 0, 0, NULL },
    { ngx_string("shivya_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
      ngx_http_shivya_status, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL },
    { ngx_string("shivya_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
      ngx_http_shivya_metrics, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL },
    ngx_null_command
};

static ngx_http_module_t ngx_http_shivya_module_ctx = {
    NULL, NULL,
    ngx_http_shivya_create_main_conf, NULL,
    NULL, NULL,
    ngx_http_shivya_create_loc_conf, ngx_http_shivya_merge_loc_conf
};

ngx_module_t ngx_http_shivya_module = {
    NGX_MODULE_V1,
    &ngx_http_shivya_module_ctx,
    ngx_http_shivya_commands,
    NGX_HTTP_MODULE,
    NULL, NULL,
    ngx_http_shivya_init_process,
    NULL, NULL,
    ngx_http_shivya_exit_process,
    NULL,
    NGX_MODULE_V1_PADDING
};

/* ---------------------------------------------------------------------------------- */
/* Configuration */

static void *ngx_http_shivya_create_main_conf(ngx_conf_t *cf) {
    ngx_http_shivya_main_conf_t *mcf = ngx_pcalloc(cf->pool, sizeof(*mcf));
    if (mcf == NULL) return NULL;
    mcf->peers = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (mcf->peers == NULL) return NULL;
    return mcf;
}

static void *ngx_http_shivya_create_loc_conf(ngx_conf_t *cf) {
    ngx_http_shivya_loc_conf_t *lcf = ngx_pcalloc(cf->pool, sizeof(*lcf));
    if (lcf == NULL) return NULL;
    lcf->status = NGX_CONF_UNSET;
    return lcf;
}

static char *ngx_http_shivya_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) {
    ngx_http_shivya_loc_conf_t *prev = parent, *conf = child;
    ngx_conf_merge_value(conf->status, prev->status, 0);
    return NGX_CONF_OK;
}

/* Checks an ADDR:PORT with the library's own parser; returns its message on error. */
static char *ngx_http_shivya_check_addr(ngx_conf_t *cf, ngx_str_t *value, const char *directive) {
    char buf[256];
    shivya_config *c = NULL;
    shivya_status s;
    if (value->len == 0 || value->len >= sizeof(buf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid address \"%V\" in \"%s\"", value, directive);
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(buf, value->data, value->len);
    buf[value->len] = '\0';
    if (shivya_config_new(&c) != SHIVYA_OK) return NGX_CONF_ERROR;
    s = ngx_strcmp(directive, "shivya_peer") == 0 ? shivya_config_add_bootstrap(c, buf)
                                                   : shivya_config_set_listen(c, buf);
    shivya_config_free(c);
    if (s != SHIVYA_OK) {
        char msg[256];
        shivya_last_error_message(msg, sizeof(msg));
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid address \"%V\" in \"%s\": %s", value, directive, msg);
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static char *ngx_http_shivya_listen(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_shivya_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    if (mcf->listen.len) return "is duplicate";
    if (ngx_http_shivya_check_addr(cf, &value[1], "shivya_listen") != NGX_CONF_OK) return NGX_CONF_ERROR;
    mcf->listen = value[1];
    return NGX_CONF_OK;
}

static char *ngx_http_shivya_peer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_shivya_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts, *p;
    if (ngx_http_shivya_check_addr(cf, &value[1], "shivya_peer") != NGX_CONF_OK) return NGX_CONF_ERROR;
    p = ngx_array_push(mcf->peers);
    if (p == NULL) return NGX_CONF_ERROR;
    *p = value[1];
    return NGX_CONF_OK;
}

/* shivya_weight_law "<expr>": refused at configuration time when the library refuses it. */
static char *ngx_http_shivya_weight_law(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_shivya_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    shivya_config *c = NULL;
    u_char *law;
    shivya_status st;
    if (mcf->law.len) return "is duplicate";
    law = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (law == NULL) return NGX_CONF_ERROR;
    ngx_memcpy(law, value[1].data, value[1].len);
    law[value[1].len] = '\0';
    if (shivya_config_new(&c) != SHIVYA_OK) return NGX_CONF_ERROR;
    st = shivya_config_set_weight_law(c, (const char *) law);
    shivya_config_free(c);
    if (st != SHIVYA_OK) {
        char msg[256];
        shivya_last_error_message(msg, sizeof(msg));
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid shivya_weight_law \"%V\": %s", &value[1], msg);
        return NGX_CONF_ERROR;
    }
    mcf->law.data = law;
    mcf->law.len = value[1].len;
    return NGX_CONF_OK;
}

static ngx_int_t ngx_http_shivya_init_peer(ngx_http_request_t *r, ngx_http_upstream_srv_conf_t *us);

static ngx_int_t ngx_http_shivya_init_upstream(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us) {
    ngx_http_upstream_rr_peers_t *peers;
    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) return NGX_ERROR;
    peers = us->peer.data;
    if (peers->number > SHIVYA_MAX_SERVERS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"shivya\" supports at most %d servers, upstream has %ui",
                           SHIVYA_MAX_SERVERS, peers->number);
        return NGX_ERROR;
    }
    us->peer.init = ngx_http_shivya_init_peer;
    return NGX_OK;
}

static char *ngx_http_shivya_upstream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_upstream_srv_conf_t *uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);
    ngx_http_shivya_main_conf_t *mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shivya_module);
    if (mcf->uscf != NULL && mcf->uscf != uscf) {
        return "is allowed in one upstream block only";
    }
    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0, "load balancing method redefined");
    }
    uscf->peer.init_upstream = ngx_http_shivya_init_upstream;
    uscf->flags = NGX_HTTP_UPSTREAM_CREATE | NGX_HTTP_UPSTREAM_WEIGHT | NGX_HTTP_UPSTREAM_MAX_FAILS
                  | NGX_HTTP_UPSTREAM_FAIL_TIMEOUT | NGX_HTTP_UPSTREAM_DOWN;
    mcf->uscf = uscf;
    return NGX_CONF_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Balancing */

static ngx_int_t ngx_http_shivya_peer_index(ngx_http_upstream_rr_peer_t *target) {
    ngx_http_upstream_rr_peer_t *p;
    ngx_int_t i = 0;
    if (ngx_shivya_rr == NULL) return -1;
    for (p = ngx_shivya_rr->peer; p; p = p->next, i++) {
        if (p == target) return i;
    }
    return -1;
}

/* Whether peer `peer` (bit `m` of word `w` in the tried map) may take this request now. */
static int ngx_http_shivya_usable(ngx_http_upstream_rr_peer_data_t *rrp, ngx_http_upstream_rr_peer_t *peer,
                                  ngx_uint_t w, uintptr_t m, time_t now) {
    if (peer->down || (rrp->tried[w] & m)) return 0;
    if (peer->max_fails && peer->fails >= peer->max_fails && now - peer->checked <= peer->fail_timeout) return 0;
    if (peer->max_conns && peer->conns >= peer->max_conns) return 0;
    return 1;
}

/* The library picks; nginx's rules (down, tried, max_fails, max_conns) veto; round-robin
 * is the fallback. */
static ngx_int_t ngx_http_shivya_get_peer(ngx_peer_connection_t *pc, void *data) {
    ngx_http_shivya_peer_data_t *spd = data;
    ngx_http_upstream_rr_peer_data_t *rrp = &spd->rrp;
    ngx_http_upstream_rr_peers_t *peers = rrp->peers;
    ngx_http_upstream_rr_peer_t *peer = NULL;
    ngx_uint_t i = 0, k, w = 0;
    uintptr_t m = 0;
    uint32_t pick;
    time_t now = ngx_time();
    ngx_int_t rc;

    spd->index = NGX_CONF_UNSET_UINT;
    if (ngx_shivya_node != NULL && peers == ngx_shivya_rr && peers->number == ngx_shivya_n) {
        ngx_http_upstream_rr_peers_wlock(peers);
        for (k = 0; k < SHIVYA_PICK_TRIES && peer == NULL; k++) {
            ngx_http_upstream_rr_peer_t *p;
            if (shivya_pick(ngx_shivya_node, ngx_current_msec, &pick) != SHIVYA_OK || pick >= ngx_shivya_n) break;
            p = ngx_shivya_peer_at[pick];
            i = pick;
            if (p == NULL) break;
            w = i / (8 * sizeof(uintptr_t));
            m = (uintptr_t) 1 << i % (8 * sizeof(uintptr_t));
            if (ngx_http_shivya_usable(rrp, p, w, m, now)) peer = p;
        }
        if (peer != NULL) {
            rrp->current = peer;
            rrp->tried[w] |= m;
            pc->sockaddr = peer->sockaddr;
            pc->socklen = peer->socklen;
            pc->name = &peer->name;
            peer->conns++;
            if (now - peer->checked > peer->fail_timeout) peer->checked = now;
        }
        ngx_http_upstream_rr_peers_unlock(peers);
    }
    if (peer == NULL) {
        /* Nothing usable among the picks (or no node): nginx's round-robin decides. */
        ngx_shivya_fallbacks++;
        rc = ngx_http_upstream_get_round_robin_peer(pc, rrp);
        if (rc != NGX_OK) return rc;
        {
            ngx_int_t found = ngx_http_shivya_peer_index(rrp->current);
            if (found < 0 || (ngx_uint_t) found >= ngx_shivya_n) return rc;
            i = (ngx_uint_t) found;
        }
    }
    spd->index = i;
    spd->start = ngx_current_msec;
    ngx_shivya_inflight[i]++;
    if (ngx_shivya_node != NULL) (void) shivya_request_started(ngx_shivya_node, (uint32_t) i, ngx_current_msec);
    return NGX_OK;
}

static void ngx_http_shivya_free_peer(ngx_peer_connection_t *pc, void *data, ngx_uint_t state) {
    ngx_http_shivya_peer_data_t *spd = data;
    if (spd->index != NGX_CONF_UNSET_UINT && spd->index < ngx_shivya_n) {
        ngx_uint_t i = spd->index;
        double rt = (double) (ngx_current_msec - spd->start);
        uint32_t outcome = (state & NGX_PEER_FAILED) ? SHIVYA_OUTCOME_FAILED : SHIVYA_OUTCOME_OK;
        if (ngx_shivya_inflight[i] > 0) ngx_shivya_inflight[i]--;
        ngx_shivya_rt[i] = ngx_shivya_rt[i] == 0.0 ? rt : 0.8 * ngx_shivya_rt[i] + 0.2 * rt;
        if (ngx_shivya_node != NULL) {
            (void) shivya_request_finished(ngx_shivya_node, (uint32_t) i, rt, outcome, ngx_current_msec);
        }
        spd->index = NGX_CONF_UNSET_UINT;
    }
    ngx_http_upstream_free_round_robin_peer(pc, &spd->rrp, state);
}

static ngx_int_t ngx_http_shivya_init_peer(ngx_http_request_t *r, ngx_http_upstream_srv_conf_t *us) {
    ngx_http_shivya_peer_data_t *spd = ngx_pcalloc(r->pool, sizeof(*spd));
    if (spd == NULL) return NGX_ERROR;
    r->upstream->peer.data = &spd->rrp;
    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) return NGX_ERROR;
    spd->index = NGX_CONF_UNSET_UINT;
    r->upstream->peer.get = ngx_http_shivya_get_peer;
    r->upstream->peer.free = ngx_http_shivya_free_peer;
    return NGX_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Event loop integration */

static void ngx_http_shivya_drive(ngx_log_t *log) {
    uint64_t wait = 1000;
    if (ngx_shivya_node == NULL) return;
    if (shivya_step(ngx_shivya_node, ngx_current_msec) != SHIVYA_OK) {
        char msg[256];
        shivya_last_error_message(msg, sizeof(msg));
        ngx_log_error(NGX_LOG_WARN, log, 0, "shivya: step failed: %s", msg);
    }
    (void) shivya_next_timeout_ms(ngx_shivya_node, ngx_current_msec, &wait);
    if (wait < 1) wait = 1;
    if (wait > 1000) wait = 1000;
    if (ngx_shivya_timer.timer_set) ngx_del_timer(&ngx_shivya_timer);
    ngx_add_timer(&ngx_shivya_timer, (ngx_msec_t) wait);
}

/*
 * Lets go of the node: its timer, its socket (detached from nginx first) and its memory.
 * `leave` publishes an empty record and LEAVE first: only when nginx stops for good. On a
 * reload or binary upgrade (QUIT to the old workers) the next generation, already bound
 * to the same port (SO_REUSEPORT) with the same id and a later incarnation, carries the
 * node on, so the old one goes quietly and as early as it can.
 */
static void ngx_http_shivya_release(int leave) {
    if (ngx_shivya_timer.timer_set) ngx_del_timer(&ngx_shivya_timer);
    if (ngx_shivya_conn != NULL) {
        /* The socket belongs to the node: detach it from nginx without closing it. */
        if (ngx_shivya_conn->read->active) ngx_del_event(ngx_shivya_conn->read, NGX_READ_EVENT, 0);
        ngx_shivya_conn->fd = (ngx_socket_t) -1;
        ngx_free_connection(ngx_shivya_conn);
        ngx_shivya_conn = NULL;
    }
    if (ngx_shivya_node != NULL) {
        if (leave) (void) shivya_leave(ngx_shivya_node);
        shivya_node_free(ngx_shivya_node);
        ngx_shivya_node = NULL;
    }
}

/* An old worker after QUIT (reload, binary upgrade, graceful stop) hands the port over. */
static int ngx_http_shivya_handing_over(void) {
    if (!(ngx_exiting || ngx_quit) || ngx_terminate) return 0;
    ngx_http_shivya_release(0);
    return 1;
}

static void ngx_http_shivya_read_handler(ngx_event_t *rev) {
    if (ngx_http_shivya_handing_over()) return;
    ngx_http_shivya_drive(rev->log);
    rev->ready = 0;
    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rev->log, 0, "shivya: cannot re-arm the read event");
    }
}

static void ngx_http_shivya_timer_handler(ngx_event_t *ev) {
    if (ngx_http_shivya_handing_over()) return;
    ngx_http_shivya_drive(ev->log);
}

/* "127.0.0.1:7100" with the port moved by `delta` into buf. */
static int ngx_http_shivya_shift_port(ngx_str_t *addr, ngx_uint_t delta, char *buf, size_t cap) {
    u_char *colon = NULL, *q;
    ngx_int_t port;
    for (q = addr->data; q < addr->data + addr->len; q++) if (*q == ':') colon = q;
    if (colon == NULL) return -1;
    port = ngx_atoi(colon + 1, addr->data + addr->len - colon - 1);
    if (port == NGX_ERROR || port + (ngx_int_t) delta > 65535) return -1;
    if ((size_t) (colon - addr->data) + 8 > cap) return -1;
    ngx_memcpy(buf, addr->data, colon - addr->data);
    ngx_sprintf((u_char *) buf + (colon - addr->data), ":%i%Z", port + (ngx_int_t) delta);
    return 0;
}

static ngx_int_t ngx_http_shivya_init_process(ngx_cycle_t *cycle) {
    ngx_http_shivya_main_conf_t *mcf;
    shivya_config *cfg = NULL;
    ngx_str_t *peer;
    ngx_uint_t i;
    char addr[128];
    int fd;
    ngx_time_t *tp;
    ngx_http_upstream_rr_peer_t *p;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) return NGX_OK;
    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shivya_module);
    if (mcf == NULL || mcf->uscf == NULL || mcf->uscf->peer.data == NULL) return NGX_OK;
    ngx_shivya_rr = mcf->uscf->peer.data;
    ngx_shivya_n = ngx_shivya_rr->number;
    for (p = ngx_shivya_rr->peer, i = 0; p && i < SHIVYA_MAX_SERVERS; p = p->next) ngx_shivya_peer_at[i++] = p;
    for (i = 0; i < ngx_shivya_n; i++) {
        ngx_shivya_inflight[i] = 0;
        ngx_shivya_rt[i] = 0;
    }
    if (shivya_config_new(&cfg) != SHIVYA_OK) return NGX_ERROR;
    if (mcf->listen.len) {
        if (ngx_http_shivya_shift_port(&mcf->listen, ngx_worker, addr, sizeof(addr)) != 0
            || shivya_config_set_listen(cfg, addr) != SHIVYA_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "shivya: bad shivya_listen for worker %ui", ngx_worker);
            shivya_config_free(cfg);
            return NGX_ERROR;
        }
    }
    peer = mcf->peers->elts;
    for (i = 0; i < mcf->peers->nelts; i++) {
        if (ngx_http_shivya_shift_port(&peer[i], ngx_worker, addr, sizeof(addr)) != 0
            || shivya_config_add_bootstrap(cfg, addr) != SHIVYA_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "shivya: bad shivya_peer \"%V\"", &peer[i]);
            shivya_config_free(cfg);
            return NGX_ERROR;
        }
    }
    /* The other workers of this nginx are peers too: every worker of every instance is one
     * mesh, so each worker's requests in flight reach every other worker's decisions. */
    if (mcf->listen.len) {
        ngx_core_conf_t *ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);
        ngx_uint_t j, workers = ccf && ccf->worker_processes > 0 ? (ngx_uint_t) ccf->worker_processes : 1;
        for (j = 0; j < workers; j++) {
            if (j == ngx_worker) continue;
            if (ngx_http_shivya_shift_port(&mcf->listen, j, addr, sizeof(addr)) != 0
                || shivya_config_add_bootstrap(cfg, addr) != SHIVYA_OK) {
                ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "shivya: bad shivya_listen for worker %ui", j);
                shivya_config_free(cfg);
                return NGX_ERROR;
            }
        }
    }
    (void) shivya_config_set_seed(cfg, (uint64_t) ngx_crc32_short(mcf->listen.data, mcf->listen.len) + ngx_worker + 1);
    /* Reloads, binary upgrades and respawns start a new generation of this worker with the
     * same id on the same port: it binds beside the old one (SO_REUSEPORT) and its record
     * versions start above the old one's (wall-clock milliseconds as the incarnation). */
    tp = ngx_timeofday();
    if (shivya_config_set_reuse_port(cfg, true) != SHIVYA_OK
        || shivya_config_set_incarnation(cfg, (uint64_t) tp->sec * 1000 + tp->msec) != SHIVYA_OK) {
        char msg[256];
        shivya_last_error_message(msg, sizeof(msg));
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "shivya: cannot configure the mesh node: %s", msg);
        shivya_config_free(cfg);
        return NGX_ERROR;
    }
    (void) shivya_config_set_topology(cfg, (uint32_t) ngx_shivya_n, NULL, 0);
    if (mcf->law.len && shivya_config_set_weight_law(cfg, (const char *) mcf->law.data) != SHIVYA_OK) {
        char msg[256];
        shivya_last_error_message(msg, sizeof(msg));
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "shivya: weight law refused: %s", msg);
        shivya_config_free(cfg);
        return NGX_ERROR;
    }
    if (shivya_node_new(cfg, ngx_current_msec, &ngx_shivya_node) != SHIVYA_OK) {
        char msg[256];
        shivya_last_error_message(msg, sizeof(msg));
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "shivya: cannot start the mesh node: %s", msg);
        shivya_config_free(cfg);
        return NGX_ERROR;
    }
    shivya_config_free(cfg);
    for (i = 0, p = ngx_shivya_rr->peer; p && i < ngx_shivya_n; p = p->next, i++) {
        (void) shivya_set_backend_weight(ngx_shivya_node, (uint32_t) i, (double) p->weight);
    }

    fd = shivya_fd(ngx_shivya_node);
    ngx_shivya_conn = ngx_get_connection(fd, cycle->log);
    if (ngx_shivya_conn == NULL) return NGX_ERROR;
    ngx_shivya_conn->log = cycle->log;
    ngx_shivya_conn->read->log = cycle->log;
    ngx_shivya_conn->read->handler = ngx_http_shivya_read_handler;
    if (ngx_handle_read_event(ngx_shivya_conn->read, 0) != NGX_OK) return NGX_ERROR;

    ngx_shivya_timer.handler = ngx_http_shivya_timer_handler;
    ngx_shivya_timer.log = cycle->log;
    ngx_shivya_timer.data = ngx_shivya_conn;
    ngx_shivya_timer.cancelable = 1;
    ngx_add_timer(&ngx_shivya_timer, 1);
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0, "shivya: worker %ui node up, %ui servers", ngx_worker, ngx_shivya_n);
    return NGX_OK;
}

static void ngx_http_shivya_exit_process(ngx_cycle_t *cycle) {
    /* LEAVE only when nginx stops (TERM/INT); after QUIT a next generation may carry on. */
    ngx_http_shivya_release(ngx_terminate && !ngx_quit);
}

/* ---------------------------------------------------------------------------------- */
/* Status handler */

/* The start of every report: GET or HEAD only, and a snapshot of a running node. */
static ngx_int_t ngx_http_shivya_begin(ngx_http_request_t *r, shivya_snapshot *s) {
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) return NGX_HTTP_NOT_ALLOWED;
    if (ngx_http_discard_request_body(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    if (ngx_shivya_node == NULL) return NGX_HTTP_SERVICE_UNAVAILABLE;
    if (shivya_node_snapshot(ngx_shivya_node, s) != SHIVYA_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    return NGX_OK;
}

/* The library's dispatch share and capacity signal ("split", "cull" or "") per server. */
static void ngx_http_shivya_decisions(double *share, const char **signal) {
    shivya_capacity_signal *sig = ngx_shivya_sig;
    size_t n = 0, k;
    ngx_uint_t i;
    for (i = 0; i < ngx_shivya_n; i++) {
        share[i] = 0;
        signal[i] = "";
    }
    if (shivya_weights(ngx_shivya_node, share, ngx_shivya_n, &n) != SHIVYA_OK) {
        for (i = 0; i < ngx_shivya_n; i++) share[i] = 0;
    }
    if (shivya_capacity_signals(ngx_shivya_node, sig, SHIVYA_MAX_SERVERS, &n) == SHIVYA_OK) {
        for (k = 0; k < n; k++) {
            if (sig[k].backend < ngx_shivya_n) {
                signal[sig[k].backend] = sig[k].kind == SHIVYA_SIGNAL_SPLIT ? "split" : "cull";
            }
        }
    }
}

/* Writes `name` JSON-escaped (which also escapes it for a Prometheus label) if it fits. */
static u_char *ngx_http_shivya_put_escaped(u_char *p, u_char *end, ngx_str_t *name) {
    if ((size_t) (end - p) > name->len + ngx_escape_json(NULL, name->data, name->len)) {
        p = (u_char *) ngx_escape_json(p, name->data, name->len);
    }
    return p;
}

/* Sends `b` (from b->pos to b->last) as the whole response. */
static ngx_int_t ngx_http_shivya_send(ngx_http_request_t *r, ngx_buf_t *b, const char *type) {
    ngx_chain_t out;
    ngx_int_t rc;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) return rc;
    out.buf = b;
    out.next = NULL;
    return ngx_http_output_filter(r, &out);
}

/*
 * The JSON status, complete at any size: peers and routes are fetched into buffers sized
 * by asking the library first, and the response buffer is sized from an upper bound of
 * every field (names JSON-escaped), so nothing is ever cut.
 */
static ngx_int_t ngx_http_shivya_status_handler(ngx_http_request_t *r) {
    shivya_snapshot s;
    shivya_route *routes = NULL;
    shivya_peer *peers = NULL;
    size_t nr = 0, np = 0, k, cap;
    ngx_buf_t *b;
    u_char *p, *end;
    ngx_uint_t i;
    ngx_http_upstream_rr_peer_t *pp;
    ngx_int_t rc;
    double *share = ngx_shivya_share;
    const char **signal = ngx_shivya_signal;
    uint64_t view = 0;

    if ((rc = ngx_http_shivya_begin(r, &s)) != NGX_OK) return rc;
    ngx_http_shivya_decisions(share, signal);
    (void) shivya_view_digest(ngx_shivya_node, &view);
    /* Ask for the counts, then fetch into buffers of that size. */
    (void) shivya_settle(ngx_shivya_node, NULL, 0, &nr);
    (void) shivya_peers(ngx_shivya_node, NULL, 0, &np);
    if (nr > 0) {
        routes = ngx_palloc(r->pool, nr * sizeof(*routes));
        if (routes == NULL || shivya_settle(ngx_shivya_node, routes, nr, &nr) != SHIVYA_OK) nr = 0;
    }
    if (np > 0) {
        peers = ngx_palloc(r->pool, np * sizeof(*peers));
        if (peers == NULL || shivya_peers(ngx_shivya_node, peers, np, &np) != SHIVYA_OK) np = 0;
    }

    /* Upper bound of the document: fixed part, then per peer, route and server. */
    cap = 256 + 2 * SHIVYA_ID_LEN + np * (SHIVYA_ADDR_LEN + 3) + nr * (3 * NGX_INT32_LEN + 64);
    pp = ngx_shivya_rr ? ngx_shivya_rr->peer : NULL;
    for (i = 0; i < ngx_shivya_n && pp; i++, pp = pp->next) {
        cap += pp->name.len + ngx_escape_json(NULL, pp->name.data, pp->name.len) + 3 * NGX_INT64_LEN + 160;
    }
    b = ngx_create_temp_buf(r->pool, cap);
    if (b == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    p = b->pos;
    end = b->end;
    p = ngx_slprintf(p, end, "{\"id\":\"");
    for (k = 0; k < SHIVYA_ID_LEN; k++) p = ngx_slprintf(p, end, "%02xd", (ngx_uint_t) s.id[k]);
    p = ngx_slprintf(p, end,
                     "\",\"worker\":%ui,\"peer_count\":%uL,\"records\":%uL,\"view\":\"%016uxL\",\"fallbacks\":%ui,"
                     "\"peers\":[",
                     ngx_worker, (uint64_t) s.peers, (uint64_t) s.records, view, ngx_shivya_fallbacks);
    for (k = 0; k < np; k++) {
        peers[k].addr[SHIVYA_ADDR_LEN - 1] = '\0';
        p = ngx_slprintf(p, end, "%s\"%s\"", k ? "," : "", peers[k].addr);
    }
    p = ngx_slprintf(p, end, "],\"routes\":[");
    for (k = 0; k < nr; k++) {
        char rate[40];
        snprintf(rate, sizeof(rate), "%.17g", routes[k].rate);
        p = ngx_slprintf(p, end, "%s{\"src\":%uD,\"dst\":%uD,\"rate\":%s}", k ? "," : "", routes[k].src,
                         routes[k].dst, rate);
    }
    p = ngx_slprintf(p, end, "],\"servers\":[");
    pp = ngx_shivya_rr ? ngx_shivya_rr->peer : NULL;
    for (i = 0; i < ngx_shivya_n && pp; i++, pp = pp->next) {
        char rt[40], sh[40];
        snprintf(rt, sizeof(rt), "%.3f", ngx_shivya_rt[i]);
        snprintf(sh, sizeof(sh), "%.4f", share[i]);
        p = ngx_slprintf(p, end, "%s{\"name\":\"", i ? "," : "");
        p = ngx_http_shivya_put_escaped(p, end, &pp->name);
        p = ngx_slprintf(p, end, "\",\"weight\":%i,\"share\":%s,\"in_flight\":%ui,\"rt_ms\":%s,\"signal\":\"%s\"}",
                         pp->weight, sh, ngx_shivya_inflight[i], rt, signal[i]);
    }
    p = ngx_slprintf(p, end, "]}\n");
    if (p == end) {
        /* The bound above was wrong: never send a cut document. */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "shivya: status larger than its bound %uz", cap);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    b->last = p;
    return ngx_http_shivya_send(r, b, "application/json");
}

/*
 * Prometheus text exposition (format 0.0.4) of this worker's node: peers, records,
 * traffic, drops by reason, and per server its weight, requests in flight and mean
 * response time. Every sample carries the worker index; names are escaped as label values.
 */
static ngx_int_t ngx_http_shivya_metrics_handler(ngx_http_request_t *r) {
    shivya_snapshot s;
    ngx_buf_t *b;
    u_char *p, *end;
    size_t cap;
    ngx_uint_t i;
    ngx_http_upstream_rr_peer_t *pp;
    ngx_int_t rc;
    double *share = ngx_shivya_share;
    const char **signal = ngx_shivya_signal;

    if ((rc = ngx_http_shivya_begin(r, &s)) != NGX_OK) return rc;
    ngx_http_shivya_decisions(share, signal);
    cap = 8192; /* the fixed families, drop reasons included */
    pp = ngx_shivya_rr ? ngx_shivya_rr->peer : NULL;
    for (i = 0; i < ngx_shivya_n && pp; i++, pp = pp->next) {
        cap += 5 * (pp->name.len + ngx_escape_json(NULL, pp->name.data, pp->name.len) + 128);
    }
    b = ngx_create_temp_buf(r->pool, cap);
    if (b == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    p = b->pos;
    end = b->end;
#define SHIVYA_FAMILY(name, type, help) \
    p = ngx_slprintf(p, end, "# HELP " name " " help "\n# TYPE " name " " type "\n")
    SHIVYA_FAMILY("shivya_peers", "gauge", "Peers in this node's routing table.");
    p = ngx_slprintf(p, end, "shivya_peers{worker=\"%ui\"} %uL\n", ngx_worker, (uint64_t) s.peers);
    SHIVYA_FAMILY("shivya_records", "gauge", "Records (one per balancer) this node holds.");
    p = ngx_slprintf(p, end, "shivya_records{worker=\"%ui\"} %uL\n", ngx_worker, (uint64_t) s.records);
    SHIVYA_FAMILY("shivya_own_record_version", "gauge", "Version of this node's own record.");
    p = ngx_slprintf(p, end, "shivya_own_record_version{worker=\"%ui\"} %uL\n", ngx_worker, s.own_version);
    {
        shivya_ages ages = {0, 0.0, 0};
        char v[40];
        (void) shivya_record_ages(ngx_shivya_node, ngx_current_msec, &ages);
        SHIVYA_FAMILY("shivya_record_age_max_seconds", "gauge",
                      "Longest time since another balancer's record last changed here.");
        snprintf(v, sizeof(v), "%.3f", (double) ages.max_ms / 1000.0);
        p = ngx_slprintf(p, end, "shivya_record_age_max_seconds{worker=\"%ui\"} %s\n", ngx_worker, v);
        SHIVYA_FAMILY("shivya_record_age_mean_seconds", "gauge",
                      "Mean time since each other balancer's record last changed here.");
        snprintf(v, sizeof(v), "%.3f", ages.mean_ms / 1000.0);
        p = ngx_slprintf(p, end, "shivya_record_age_mean_seconds{worker=\"%ui\"} %s\n", ngx_worker, v);
    }
    SHIVYA_FAMILY("shivya_frames_total", "counter", "Datagrams received and sent.");
    p = ngx_slprintf(p, end, "shivya_frames_total{worker=\"%ui\",direction=\"in\"} %uL\n", ngx_worker, s.frames_in);
    p = ngx_slprintf(p, end, "shivya_frames_total{worker=\"%ui\",direction=\"out\"} %uL\n", ngx_worker, s.frames_out);
    SHIVYA_FAMILY("shivya_dropped_frames_total", "counter", "Datagrams dropped, by reason.");
    {
        shivya_drop_reason reasons[32];
        size_t nd = 0, k;
        if (shivya_drop_reasons(ngx_shivya_node, reasons, 32, &nd) == SHIVYA_OK) {
            for (k = 0; k < nd; k++) {
                p = ngx_slprintf(p, end, "shivya_dropped_frames_total{worker=\"%ui\",reason=\"%s\"} %uL\n",
                                 ngx_worker, reasons[k].name, reasons[k].count);
            }
        }
    }
    SHIVYA_FAMILY("shivya_records_merged_total", "counter", "Records applied from the network.");
    p = ngx_slprintf(p, end, "shivya_records_merged_total{worker=\"%ui\"} %uL\n", ngx_worker, s.records_merged);
    SHIVYA_FAMILY("shivya_layer_steps_total", "counter", "Layer-stack steps run.");
    p = ngx_slprintf(p, end, "shivya_layer_steps_total{worker=\"%ui\"} %uL\n", ngx_worker, s.layer_steps);
    SHIVYA_FAMILY("shivya_layer_errors_total", "counter", "Failures inside layer-stack steps (the node goes on).");
    p = ngx_slprintf(p, end, "shivya_layer_errors_total{worker=\"%ui\"} %uL\n", ngx_worker, s.layer_errors);
    SHIVYA_FAMILY("shivya_pick_fallbacks_total", "counter",
                  "Requests nginx's round-robin placed because no pick was usable (down, tried, max_fails).");
    p = ngx_slprintf(p, end, "shivya_pick_fallbacks_total{worker=\"%ui\"} %ui\n", ngx_worker, ngx_shivya_fallbacks);
    {
        static const char *names[4] = {"shivya_server_share", "shivya_server_in_flight",
                                       "shivya_server_response_time_ms", "shivya_server_capacity_signal"};
        static const char *helps[4] = {"Share of candidates the library's weights give the server (0..1).",
                                       "Requests this worker has in flight at the server.",
                                       "Exponentially weighted mean response time of the server, ms.",
                                       "Capacity signal of the merged records: 1 split (add capacity), -1 cull (drainable), 0 none."};
        ngx_uint_t m;
        for (m = 0; m < 4; m++) {
            p = ngx_slprintf(p, end, "# HELP %s %s\n# TYPE %s gauge\n", names[m], helps[m], names[m]);
            pp = ngx_shivya_rr ? ngx_shivya_rr->peer : NULL;
            for (i = 0; i < ngx_shivya_n && pp; i++, pp = pp->next) {
                char v[40];
                if (m == 0) snprintf(v, sizeof(v), "%.4f", share[i]);
                else if (m == 1) snprintf(v, sizeof(v), "%lu", (unsigned long) ngx_shivya_inflight[i]);
                else if (m == 2) snprintf(v, sizeof(v), "%.3f", ngx_shivya_rt[i]);
                else snprintf(v, sizeof(v), "%d", signal[i][0] == 's' ? 1 : signal[i][0] == 'c' ? -1 : 0);
                p = ngx_slprintf(p, end, "%s{worker=\"%ui\",server=\"", names[m], ngx_worker);
                p = ngx_http_shivya_put_escaped(p, end, &pp->name);
                p = ngx_slprintf(p, end, "\"} %s\n", v);
            }
        }
    }
#undef SHIVYA_FAMILY
    if (p == end) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "shivya: metrics larger than their bound %uz", cap);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    b->last = p;
    return ngx_http_shivya_send(r, b, "text/plain; version=0.0.4; charset=utf-8");
}

static char *ngx_http_shivya_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_core_loc_conf_t *clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_shivya_metrics_handler;
    return NGX_CONF_OK;
}

static char *ngx_http_shivya_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_core_loc_conf_t *clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    ngx_http_shivya_loc_conf_t *lcf = conf;
    lcf->status = 1;
    clcf->handler = ngx_http_shivya_status_handler;
    return NGX_CONF_OK;
}
