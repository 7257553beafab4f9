/*
 * The native relay (docs/dataplane.md "Native relay"): forwards an established client ↔
 * instance connection pair inside Node's own event loop, without net.Socket, stream objects or
 * per-read buffers. The listener still accepts, sniffs, routes and connects in TypeScript; it
 * hands both file descriptors here once the instance is connected, and hears back once, when the
 * pair has closed, with the reason and the bytes each way.
 *
 * One uv_poll_t per socket (level-triggered epoll in libuv), a shared 64 KiB scratch buffer per
 * event loop: a chunk read from one side is written to the other at once; only what the kernel
 * does not take is copied into a per-direction pending buffer, and the source stops being read
 * until that drains (back-pressure). End of stream on one side shuts down the other's write side
 * once its pending bytes are out (half-close); the pair closes when both directions have ended,
 * or at once on an error from either side, on the idle timeout, or on abort().
 *
 * Nothing here parses client bytes: detection and routing stay in TypeScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define SCRATCH_BYTES (64 * 1024)
/* Reads per wake-up while each read fills the scratch buffer (bulk transfers). */
#define MAX_READS_PER_WAKE 8
#define MAX_EVENTS 128
/* epoll_wait rounds per wake-up: with more than MAX_EVENTS sockets ready the rest waits for the
 * next loop iteration, so that busy pairs cannot starve timers, accepts and IPC. */
#define MAX_ROUNDS 4
#define SWEEP_MS 100
#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define GEN_MASK ((1u << 28) - 1)

enum reason { R_DONE = 0, R_IDLE = 1, R_CLIENT_ERROR = 2, R_UPSTREAM_ERROR = 3, R_ABORTED = 4 };

struct relay;

typedef struct side {
  int fd;
  int polled;      /* in the epoll set (a hung-up side with nothing to do is taken out) */
  uint32_t events; /* the epoll mask registered now (0 when not polled) */
  char *pend;      /* bytes read from the other side, not yet written to this one */
  size_t pend_len; /* from pend_off */
  size_t pend_off;
  int rd_eof;      /* this side sent end of stream */
  int wr_shut;     /* we shut down writing to this side */
  double read;     /* bytes read from this side */
  double written;  /* bytes written to this side */
} side_t;

typedef struct conn {
  side_t s[2]; /* 0 = client, 1 = instance */
  struct relay *relay;
  uint32_t slot;
  uint32_t gen;
  int closing;
  /* Inside start(): JavaScript still holds its own descriptors of both sockets, so closing ours
   * does not take them out of the epoll set (epoll watches the open file, not the descriptor). */
  int starting;
  struct conn *zombie_next; /* closed, freed by free_zombies() */
  uint64_t idle_ms;
  uint64_t last_active;
} conn_t;

typedef struct closed_rec {
  double id;
  int reason;
  int err; /* errno, 0 = none */
  double bytes_in, bytes_out;
} closed_rec_t;

/*
 * One per event loop (Node environment). Its sockets live in a private epoll instance whose own
 * descriptor libuv polls: one libuv handle in all, no per-socket handle set-up or teardown.
 */
typedef struct relay {
  napi_env env;
  uv_loop_t *loop;
  int epfd;
  uv_poll_t ep_poll;
  napi_ref on_close;
  napi_async_context async_ctx;
  char *scratch;
  conn_t **slots;
  uint32_t *gens;
  uint32_t nslots, cap;
  uint32_t *free_list;
  uint32_t nfree;
  uint32_t active;
  uv_timer_t sweep;
  /* Closed pairs are reported from a check handle (after the poll phase); the idle handle keeps
   * that poll from blocking meanwhile (what setImmediate does). */
  uv_check_t notify;
  uv_idle_t notify_idle;
  int notify_running;
  closed_rec_t *closed;
  size_t nclosed, closed_cap;
  /* Closed pairs stay allocated until no C frame can still hold them (the end of a libuv
   * callback): callers check c->closing after anything that may close the pair. */
  conn_t *zombies;
  /* Environment teardown: Node runs the loop until the hook is removed, which the last handle's
   * close callback does; r is freed once that is done and the instance data is finalized. */
  napi_async_cleanup_hook_handle cleanup_hook;
  int open_handles; /* libuv handles not yet closed (all four, until relay_cleanup) */
  int finalized;
} relay_t;

static void close_conn(conn_t *c, int reason, int err);
static void deliver(relay_t *r);

static double conn_id(const conn_t *c) { return (double)c->gen * (double)(1u << SLOT_BITS) + c->slot; }

static conn_t *lookup(relay_t *r, double id) {
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t v = (uint64_t)id;
  if ((double)v != id) return NULL; /* ids are integers: 1.5 is not pair 1 */
  uint32_t slot = (uint32_t)(v & SLOT_MASK);
  uint32_t gen = (uint32_t)(v >> SLOT_BITS);
  if (slot >= r->nslots) return NULL;
  conn_t *c = r->slots[slot];
  if (!c || c->gen != gen || c->closing) return NULL;
  return c;
}

/* epoll data: generation, slot and side, so that an event for a closed pair is recognised. */
static uint64_t ev_key(const conn_t *c, int i) {
  return ((uint64_t)c->gen << 32) | ((uint64_t)c->slot << 1) | (uint64_t)i;
}

static int want_read(const conn_t *c, int i) {
  return !c->closing && !c->s[i].rd_eof && c->s[1 - i].pend_len == 0;
}

/* Registers side i for the events it needs now (back into the set if parked). -1 = closed. */
static int update(conn_t *c, int i) {
  side_t *s = &c->s[i];
  uint32_t ev = (want_read(c, i) ? EPOLLIN : 0) | (s->pend_len ? EPOLLOUT : 0);
  if (s->polled ? ev == s->events : ev == 0) return 0;
  struct epoll_event e = {.events = ev, .data.u64 = ev_key(c, i)};
  if (epoll_ctl(c->relay->epfd, s->polled ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &e) != 0) {
    close_conn(c, R_ABORTED, errno);
    return -1;
  }
  s->polled = 1;
  s->events = ev;
  return 0;
}

/*
 * Takes side i out of the epoll set until update() wants something from it again. For a side
 * polled for nothing that is hung up (its FIN in, ours out, but still unread because the other
 * side is slow): epoll reports EPOLLHUP whatever the mask, level-triggered, on every loop
 * iteration, a busy loop until the other side drains.
 */
static void park(conn_t *c, int i) {
  side_t *s = &c->s[i];
  if (!s->polled) return;
  if (epoll_ctl(c->relay->epfd, EPOLL_CTL_DEL, s->fd, NULL) != 0) {
    close_conn(c, R_ABORTED, errno);
    return;
  }
  s->polled = 0;
  s->events = 0;
}

static void maybe_done(conn_t *c) {
  if (c->s[0].wr_shut && c->s[1].wr_shut) close_conn(c, R_DONE, 0);
}

/* The other side ended and everything it sent is written to j: end j's write side. */
static void shut_peer(conn_t *c, int j) {
  side_t *d = &c->s[j];
  if (d->wr_shut) return;
  d->wr_shut = 1;
  if (shutdown(d->fd, SHUT_WR) != 0 && errno != ENOTCONN) {
    close_conn(c, j == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, errno);
    return;
  }
  maybe_done(c);
}

/* Writes [buf, buf+n) to side j; keeps what the kernel did not take. 0 = ok, -1 = closed. */
static int write_to(conn_t *c, int j, const char *buf, size_t n) {
  side_t *d = &c->s[j];
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(d->fd, buf + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      off += (size_t)w;
      d->written += (double)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_conn(c, j == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, w < 0 ? errno : EPIPE);
    return -1;
  }
  if (off < n) {
    size_t rest = n - off;
    char *p = malloc(rest);
    if (!p) {
      close_conn(c, R_ABORTED, ENOMEM);
      return -1;
    }
    memcpy(p, buf + off, rest);
    d->pend = p;
    d->pend_len = rest;
    d->pend_off = 0;
  }
  return 0;
}

/* Side j is writable: write what is pending for it. */
static void flush_pending(conn_t *c, int j) {
  side_t *d = &c->s[j];
  int i = 1 - j;
  while (d->pend_len) {
    ssize_t w = send(d->fd, d->pend + d->pend_off, d->pend_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      d->pend_off += (size_t)w;
      d->pend_len -= (size_t)w;
      d->written += (double)w;
      c->last_active = uv_now(c->relay->loop);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_conn(c, j == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, w < 0 ? errno : EPIPE);
    return;
  }
  free(d->pend);
  d->pend = NULL;
  d->pend_off = 0;
  if (c->s[i].rd_eof) {
    shut_peer(c, j);
    if (c->closing) return;
  }
  if (update(c, j) == 0) update(c, i);
}

/* Side i is readable: read and pass on to the other side. */
static void read_from(conn_t *c, int i) {
  relay_t *r = c->relay;
  side_t *s = &c->s[i];
  int j = 1 - i;
  for (int k = 0; k < MAX_READS_PER_WAKE; k++) {
    ssize_t n = read(s->fd, r->scratch, SCRATCH_BYTES);
    if (n > 0) {
      s->read += (double)n;
      c->last_active = uv_now(r->loop);
      if (write_to(c, j, r->scratch, (size_t)n) != 0) return;
      if (c->s[j].pend_len) break; /* back-pressure: stop reading side i */
      if (n < SCRATCH_BYTES) break;
      continue;
    }
    if (n == 0) {
      s->rd_eof = 1;
      if (c->s[j].pend_len == 0) {
        shut_peer(c, j);
        if (c->closing) return;
      }
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    close_conn(c, i == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, errno);
    return;
  }
  if (update(c, i) == 0) update(c, j);
}

static void on_event(relay_t *r, uint64_t key, uint32_t events) {
  uint32_t slot = (uint32_t)((key & 0xffffffffu) >> 1);
  int i = (int)(key & 1);
  if (slot >= r->nslots) return;
  conn_t *c = r->slots[slot];
  if (!c || c->gen != (uint32_t)(key >> 32) || c->closing) return; /* closed earlier in this batch */
  side_t *s = &c->s[i];
  if (events & EPOLLERR) {
    /* What the side sent before the error (data, then a reset) is still in its receive queue:
     * pass on what the other side takes now; read() reports the error once the queue is empty.
     * Stopped with more queued (reads per wake-up), EPOLLERR (level-triggered) brings us back;
     * held up by a slow other side, the rest is dropped with the pair, as forward.ts does. */
    if (want_read(c, i)) {
      double before = s->read;
      read_from(c, i);
      if (c->closing) return;
      if (s->read > before && want_read(c, i)) return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->s[i].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = ECONNRESET;
    close_conn(c, i == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, err);
    return;
  }
  if (events & EPOLLOUT) {
    flush_pending(c, i);
    if (c->closing) return;
  }
  if ((events & (EPOLLIN | EPOLLHUP)) && want_read(c, i)) {
    read_from(c, i);
    if (c->closing) return;
  }
  if ((events & EPOLLHUP) && s->polled && s->events == 0) park(c, i);
}

static void on_epoll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  relay_t *r = h->data;
  struct epoll_event evs[MAX_EVENTS];
  for (int round = 0; round < MAX_ROUNDS; round++) {
    int n = epoll_wait(r->epfd, evs, MAX_EVENTS, 0);
    if (n < 0 && errno == EINTR) continue;
    for (int k = 0; k < n; k++) on_event(r, evs[k].data.u64, evs[k].events);
    if (n < MAX_EVENTS) break;
  }
  deliver(r);
}

static void notify_cb(uv_check_t *h);
static void notify_idle_cb(uv_idle_t *h) { (void)h; }

static void queue_closed(relay_t *r, conn_t *c, int reason, int err) {
  if (r->nclosed == r->closed_cap) {
    size_t cap = r->closed_cap ? r->closed_cap * 2 : 64;
    closed_rec_t *p = realloc(r->closed, cap * sizeof *p);
    if (!p) abort(); /* out of memory: nothing sensible is left to do */
    r->closed = p;
    r->closed_cap = cap;
  }
  closed_rec_t *rec = &r->closed[r->nclosed++];
  rec->id = conn_id(c);
  rec->reason = reason;
  rec->err = err;
  rec->bytes_in = c->s[0].read;
  rec->bytes_out = c->s[0].written;
  if (!r->notify_running) {
    r->notify_running = 1;
    uv_check_start(&r->notify, notify_cb);
    uv_idle_start(&r->notify_idle, notify_idle_cb);
  }
}

static void close_conn(conn_t *c, int reason, int err) {
  if (c->closing) return;
  relay_t *r = c->relay;
  c->closing = 1;
  /* The relay holds the last descriptor of each socket (the listener closed its own): close(2)
   * also takes it out of the epoll set. Not inside start(), where JavaScript still has its own. */
  for (int i = 0; i < 2; i++) {
    side_t *s = &c->s[i];
    if (c->starting && s->polled) epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    s->polled = 0;
    s->events = 0;
    free(s->pend);
    s->pend = NULL;
    s->pend_len = 0;
    s->pend_off = 0;
  }
  r->slots[c->slot] = NULL;
  r->free_list[r->nfree++] = c->slot;
  if (--r->active == 0) uv_unref((uv_handle_t *)&r->ep_poll);
  queue_closed(r, c, reason, err);
  c->zombie_next = r->zombies;
  r->zombies = c;
}

static void free_zombies(relay_t *r) {
  while (r->zombies) {
    conn_t *c = r->zombies;
    r->zombies = c->zombie_next;
    free(c);
  }
}

/*
 * Tells JavaScript which pairs closed. Called at the end of the relay's own libuv callbacks (no
 * JavaScript on the stack), so that the listener forgets a connection before anything else this
 * process handles after the close (an IPC message asking for its counts, say); and from the check
 * handle for pairs that JavaScript itself aborted (never re-entering the caller).
 */
static void deliver(relay_t *r) {
  free_zombies(r);
  if (r->notify_running) {
    uv_check_stop(&r->notify);
    uv_idle_stop(&r->notify_idle);
    r->notify_running = 0;
  }
  if (r->nclosed == 0) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[5], result;
  if (napi_get_reference_value(env, r->on_close, &cb) == napi_ok && cb) {
    napi_get_global(env, &recv); /* napi_make_callback needs an object */
    /* Records may be added while JavaScript runs (an abort from a callback): take the array
     * (no allocation that could fail and leave records unreported), give it back if unused. */
    while (r->nclosed) {
      size_t n = r->nclosed, cap = r->closed_cap;
      closed_rec_t *batch = r->closed;
      r->closed = NULL;
      r->closed_cap = 0;
      r->nclosed = 0;
      for (size_t k = 0; k < n; k++) {
        closed_rec_t *rec = &batch[k];
        napi_create_double(env, rec->id, &argv[0]);
        napi_create_int32(env, rec->reason, &argv[1]);
        if (rec->err) napi_create_string_utf8(env, uv_err_name(-rec->err), NAPI_AUTO_LENGTH, &argv[2]);
        else napi_get_undefined(env, &argv[2]);
        napi_create_double(env, rec->bytes_in, &argv[3]);
        napi_create_double(env, rec->bytes_out, &argv[4]);
        napi_status st = napi_make_callback(env, r->async_ctx, recv, cb, 5, argv, &result);
        if (st == napi_pending_exception) {
          napi_value exc;
          napi_get_and_clear_last_exception(env, &exc);
          napi_fatal_exception(env, exc);
        }
      }
      if (!r->closed) {
        r->closed = batch;
        r->closed_cap = cap;
      } else {
        free(batch);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static void notify_cb(uv_check_t *h) { deliver(h->data); }

/* Closes pairs silent for their idle timeout. */
static void sweep_cb(uv_timer_t *h) {
  relay_t *r = h->data;
  uint64_t now = uv_now(r->loop);
  for (uint32_t k = 0; k < r->nslots; k++) {
    conn_t *c = r->slots[k];
    if (c && c->idle_ms && now - c->last_active >= c->idle_ms) close_conn(c, R_IDLE, 0);
  }
  if (r->active == 0) uv_timer_stop(&r->sweep);
  deliver(r);
}

/* ---- JavaScript API ---------------------------------------------------------------------- */

#define CHECK(call)                                                                          \
  do {                                                                                       \
    if ((call) != napi_ok) return throw_last(env);                                           \
  } while (0)

static napi_value throw_last(napi_env env) {
  const napi_extended_error_info *info;
  napi_get_last_error_info(env, &info);
  bool pending;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, info && info->error_message ? info->error_message : "napi call failed");
  return NULL;
}

static napi_value throw_msg(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static relay_t *relay_of(napi_env env) {
  relay_t *r = NULL;
  napi_get_instance_data(env, (void **)&r);
  return r;
}

/* setCloseHandler(fn): fn(id, reason, errorCode | undefined, bytesIn, bytesOut) per closed pair. */
static napi_value js_set_close_handler(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[0], &t));
  if (argc < 1 || t != napi_function) return throw_msg(env, "ERR_INVALID_ARG_TYPE", "setCloseHandler needs a function");
  relay_t *r = relay_of(env);
  if (r->on_close) napi_delete_reference(env, r->on_close);
  CHECK(napi_create_reference(env, argv[0], 1, &r->on_close));
  return NULL;
}

static int get_bytes(napi_env env, napi_value v, char **data, size_t *len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) {
    *data = NULL;
    *len = 0;
    return 0;
  }
  bool is_buf = false;
  napi_is_buffer(env, v, &is_buf);
  if (!is_buf) return -1;
  return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok ? 0 : -1;
}

/*
 * start(clientFd, upstreamFd, toUpstream?, toClient?, idleMs): duplicates both descriptors (the
 * caller then destroys its sockets), writes the pending bytes first and relays. Returns the id.
 */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_msg(env, "ERR_MISSING_ARGS", "start(clientFd, upstreamFd, toUpstream, toClient, idleMs)");
  relay_t *r = relay_of(env);
  int32_t fds[2];
  double idle;
  if (napi_get_value_int32(env, argv[0], &fds[0]) != napi_ok || napi_get_value_int32(env, argv[1], &fds[1]) != napi_ok ||
      fds[0] < 0 || fds[1] < 0)
    return throw_msg(env, "ERR_INVALID_ARG_TYPE", "file descriptors must be non-negative integers");
  if (napi_get_value_double(env, argv[4], &idle) != napi_ok || !(idle >= 0))
    return throw_msg(env, "ERR_INVALID_ARG_TYPE", "idleMs must be a non-negative number");
  char *head[2];
  size_t head_len[2];
  if (get_bytes(env, argv[3], &head[0], &head_len[0]) || get_bytes(env, argv[2], &head[1], &head_len[1]))
    return throw_msg(env, "ERR_INVALID_ARG_TYPE", "pending bytes must be Buffers (or undefined)");
  if (!r->on_close) return throw_msg(env, "ERR_RELAY_NO_HANDLER", "setCloseHandler() first");

  if (r->nfree == 0) {
    if (r->nslots == r->cap) {
      uint32_t cap = r->cap ? r->cap * 2 : 256;
      if (cap > SLOT_MASK) return throw_msg(env, "ERR_RELAY_FULL", "too many relayed connections");
      conn_t **slots = realloc(r->slots, cap * sizeof *slots);
      if (!slots) return throw_msg(env, "ERR_RELAY_NOMEM", "out of memory");
      r->slots = slots;
      uint32_t *gens = realloc(r->gens, cap * sizeof *gens);
      if (!gens) return throw_msg(env, "ERR_RELAY_NOMEM", "out of memory");
      r->gens = gens;
      uint32_t *fl = realloc(r->free_list, cap * sizeof *fl);
      if (!fl) return throw_msg(env, "ERR_RELAY_NOMEM", "out of memory");
      r->free_list = fl;
      r->cap = cap;
    }
    r->slots[r->nslots] = NULL;
    r->gens[r->nslots] = 0;
    r->free_list[r->nfree++] = r->nslots++;
  }

  conn_t *c = calloc(1, sizeof *c);
  if (!c) return throw_msg(env, "ERR_RELAY_NOMEM", "out of memory");
  c->relay = r;
  c->slot = r->free_list[r->nfree - 1];
  c->gen = (r->gens[c->slot] + 1) & GEN_MASK;
  /* The return value first: once the pair is started, start() must not throw (the caller would
   * forward the same sockets in JavaScript too). */
  napi_value out;
  if (napi_create_double(env, conn_id(c), &out) != napi_ok) {
    free(c);
    return throw_last(env);
  }
  int dups[2] = {-1, -1};
  for (int i = 0; i < 2; i++) {
    dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (dups[i] < 0) {
      int e = errno;
      if (i == 1) close(dups[0]);
      free(c);
      napi_throw_error(env, uv_err_name(-e), "cannot duplicate a socket for the relay");
      return NULL;
    }
  }
  for (int i = 0; i < 2; i++) {
    c->s[i].fd = dups[i];
    c->s[i].events = EPOLLIN;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = ev_key(c, i)};
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, dups[i], &e) != 0) {
      int e2 = errno;
      /* JavaScript keeps its sockets: leave nothing of them in the epoll set (closing our
       * descriptor would not, while theirs is open), nor any descriptor of ours. */
      if (i == 1) epoll_ctl(r->epfd, EPOLL_CTL_DEL, dups[0], NULL);
      close(dups[0]);
      close(dups[1]);
      free(c);
      napi_throw_error(env, uv_err_name(-e2), "cannot poll a socket for the relay");
      return NULL;
    }
    c->s[i].polled = 1;
  }
  r->nfree--;
  r->gens[c->slot] = c->gen;
  /* Whole milliseconds, rounded up (0.5 is not "never"); beyond 2^53 ms is never. */
  if (idle < 9007199254740992.0) {
    c->idle_ms = (uint64_t)idle;
    if ((double)c->idle_ms < idle) c->idle_ms++;
  }
  c->last_active = uv_now(r->loop);
  r->slots[c->slot] = c;
  /* Open pairs keep the process alive, as open sockets do. */
  if (r->active++ == 0) uv_ref((uv_handle_t *)&r->ep_poll);
  if (c->idle_ms && !uv_is_active((uv_handle_t *)&r->sweep)) uv_timer_start(&r->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);

  /* Pending bytes: head[1] for the instance (PROXY header, sniffed bytes), head[0] for the client.
   * A failed write closes the pair here; the close is reported from the check handle. */
  c->starting = 1;
  for (int j = 0; j < 2 && !c->closing; j++)
    if (head_len[j]) write_to(c, j, head[j], head_len[j]);
  if (!c->closing && update(c, 0) == 0) update(c, 1);
  c->starting = 0;
  return out;
}

/* abort(id): closes the pair now (the close handler still hears about it). false if unknown. */
static napi_value js_abort(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double id;
  int32_t reason = R_ABORTED;
  if (argc < 1 || napi_get_value_double(env, argv[0], &id) != napi_ok) return throw_msg(env, "ERR_INVALID_ARG_TYPE", "abort(id)");
  if (argc > 1) napi_get_value_int32(env, argv[1], &reason);
  if (reason < R_DONE || reason > R_ABORTED) reason = R_ABORTED;
  conn_t *c = lookup(relay_of(env), id);
  if (c) close_conn(c, reason, 0);
  napi_value out;
  CHECK(napi_get_boolean(env, c != NULL, &out));
  return out;
}

/* bytes(id, out: Float64Array(3)): [client → instance, instance → client, pending]; false if unknown. */
static napi_value js_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double id;
  if (argc < 2 || napi_get_value_double(env, argv[0], &id) != napi_ok) return throw_msg(env, "ERR_INVALID_ARG_TYPE", "bytes(id, out)");
  bool is_ta = false;
  napi_is_typedarray(env, argv[1], &is_ta);
  napi_typedarray_type tt;
  size_t len = 0;
  void *data = NULL;
  if (!is_ta || napi_get_typedarray_info(env, argv[1], &tt, &len, &data, NULL, NULL) != napi_ok ||
      tt != napi_float64_array || len < 3)
    return throw_msg(env, "ERR_INVALID_ARG_TYPE", "bytes() needs a Float64Array of length 3");
  conn_t *c = lookup(relay_of(env), id);
  if (c) {
    ((double *)data)[0] = c->s[0].read;
    ((double *)data)[1] = c->s[0].written;
    ((double *)data)[2] = (double)(c->s[0].pend_len + c->s[1].pend_len);
  }
  napi_value out;
  CHECK(napi_get_boolean(env, c != NULL, &out));
  return out;
}

static napi_value js_active(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_uint32(env, relay_of(env)->active, &out));
  return out;
}

static void relay_free(relay_t *r) {
  if (!r->finalized || r->open_handles) return;
  free(r->scratch);
  free(r->slots);
  free(r->gens);
  free(r->free_list);
  free(r->closed);
  free(r);
}

static void on_handle_closed(uv_handle_t *h) {
  relay_t *r = h->data;
  if (--r->open_handles > 0) return;
  /* Node waits for this before it unloads the addon (whose code these callbacks are). */
  napi_remove_async_cleanup_hook(r->cleanup_hook);
  relay_free(r);
}

/*
 * The environment is going away (the process, or a worker thread, ends): close every pair and
 * the relay's handles. An async cleanup hook: Node keeps running the loop until the handles'
 * close callbacks have run, before it unloads the addon; with a plain cleanup hook a worker
 * thread's loop ran them after the unload, in unmapped code.
 */
static void relay_cleanup(napi_async_cleanup_hook_handle hook, void *arg) {
  relay_t *r = arg;
  r->cleanup_hook = hook;
  for (uint32_t k = 0; k < r->nslots; k++)
    if (r->slots[k]) close_conn(r->slots[k], R_ABORTED, 0);
  r->nclosed = 0;
  free_zombies(r);
  napi_async_destroy(r->env, r->async_ctx);
  if (r->on_close) napi_delete_reference(r->env, r->on_close); /* ours to free, not Node's */
  r->on_close = NULL;
  uv_close((uv_handle_t *)&r->ep_poll, on_handle_closed);
  uv_close((uv_handle_t *)&r->sweep, on_handle_closed);
  uv_close((uv_handle_t *)&r->notify, on_handle_closed);
  uv_close((uv_handle_t *)&r->notify_idle, on_handle_closed);
  close(r->epfd); /* uv_close has stopped polling it */
}

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_t *r = data;
  r->finalized = 1;
  relay_free(r); /* or when the last handle has closed */
}

NAPI_MODULE_INIT() {
  relay_t *r = calloc(1, sizeof *r);
  if (!r) return throw_msg(env, "ERR_RELAY_NOMEM", "out of memory");
  r->env = env;
  r->epfd = -1;
  napi_value name;
  r->scratch = malloc(SCRATCH_BYTES);
  if (!r->scratch || napi_get_uv_event_loop(env, &r->loop) != napi_ok ||
      napi_create_string_utf8(env, "marchproxy-relay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &r->async_ctx) != napi_ok) {
    free(r->scratch);
    free(r);
    return throw_msg(env, "ERR_RELAY_INIT", "relay init failed");
  }
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (r->epfd < 0 || uv_poll_init(r->loop, &r->ep_poll, r->epfd) != 0) {
    if (r->epfd >= 0) close(r->epfd);
    napi_async_destroy(env, r->async_ctx);
    free(r->scratch);
    free(r);
    return throw_msg(env, "ERR_RELAY_INIT", "relay init failed (epoll)");
  }
  r->ep_poll.data = r;
  uv_poll_start(&r->ep_poll, UV_READABLE, on_epoll);
  uv_unref((uv_handle_t *)&r->ep_poll);
  uv_timer_init(r->loop, &r->sweep);
  r->sweep.data = r;
  uv_unref((uv_handle_t *)&r->sweep);
  uv_check_init(r->loop, &r->notify);
  r->notify.data = r;
  uv_unref((uv_handle_t *)&r->notify);
  uv_idle_init(r->loop, &r->notify_idle);
  r->notify_idle.data = r;
  uv_unref((uv_handle_t *)&r->notify_idle);
  r->open_handles = 4; /* ep_poll, sweep, notify, notify_idle: r outlives them */
  napi_set_instance_data(env, r, relay_finalize, NULL);
  napi_add_async_cleanup_hook(env, relay_cleanup, r, NULL);

  napi_property_descriptor props[] = {
      {"setCloseHandler", NULL, js_set_close_handler, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, js_abort, NULL, NULL, NULL, napi_default, NULL},
      {"bytes", NULL, js_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"active", NULL, js_active, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
