/*
 * openloop: an open-loop HTTP/1.1 load generator for the bench's moderate load (compiled by
 * bench/lib.mjs with the system C compiler when there is one; `cc -O2 -o openloop openloop.c`).
 *
 * Requests are scheduled as a Poisson process at a fixed rate, independent of the answers
 * (independent clients, as in front of a real API), and each latency is measured from the time
 * the request was scheduled, not sent: a request that waits for a free connection is charged for
 * the wait (no coordinated omission). A timerfd with 1 ns slack wakes the loop at each scheduled
 * instant, so arrivals are not batched onto a millisecond tick the way wrk's `delay()` is.
 *
 * Usage: openloop HOST PORT RATE SECONDS WARMUP_SECONDS CONNECTIONS [SEED]
 * Prints one line: requests=N errors=N rps=X p50=ms p90=ms p99=ms p999=ms max=ms scheduled=N
 * (only requests scheduled after the warm-up are counted; requests + errors = scheduled).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384

typedef struct {
  int fd;
  int busy;
  int64_t scheduled; /* ns: when the request in flight was scheduled */
  size_t have;       /* bytes in buf */
  char buf[BUF];
} conn_t;

static struct sockaddr_in addr;
static char request[256];
static size_t request_len;
static int64_t *lat; /* ns, measured requests */
static size_t nlat, maxlat;
static int64_t measure_from, stop_at;
static long errors;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint64_t rng;
static double uniform01(void) { /* xorshift64*, (0, 1] */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return ((rng * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0) + 1e-17;
}

static int open_conn(conn_t *c, int ep) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->busy = 0;
  c->have = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

static void drop_conn(conn_t *c, int ep) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (c->busy && c->scheduled >= measure_from) errors++;
  c->busy = 0;
  open_conn(c, ep);
}

/* Length of one complete response at the start of buf, 0 if incomplete, -1 if malformed.
 * Content-Length and chunked bodies (the terminating chunk found by its bytes); *close is set
 * when the server said Connection: close. */
static long response_len(const char *b, size_t n, int *status, int *close) {
  const char *end = memmem(b, n, "\r\n\r\n", 4);
  if (end == NULL) return n >= BUF ? -1 : 0;
  size_t head = (size_t)(end - b) + 4;
  if (n < 12 || memcmp(b, "HTTP/1.1 ", 9) != 0) return -1;
  *status = atoi(b + 9);
  long clen = -1;
  int chunked = 0;
  for (const char *p = memchr(b, '\n', head) + 1; p < end; p = memchr(p, '\n', (size_t)(end - p) + 2) + 1) {
    if (strncasecmp(p, "content-length:", 15) == 0) clen = atol(p + 15);
    else if (strncasecmp(p, "connection:", 11) == 0 && memmem(p, (size_t)((const char *)memchr(p, '\r', (size_t)(end - p) + 1) - p), "close", 5)) *close = 1;
    else if (strncasecmp(p, "transfer-encoding:", 18) == 0 && memmem(p, (size_t)((const char *)memchr(p, '\r', (size_t)(end - p) + 1) - p), "chunked", 7)) chunked = 1;
  }
  if (chunked) {
    const char *t = memmem(b + head - 2, n - head + 2, "\r\n0\r\n\r\n", 7);
    return t == NULL ? (n >= BUF ? -1 : 0) : (long)(t - b) + 7;
  }
  if (clen < 0) clen = 0;
  return head + (size_t)clen <= n ? (long)(head + (size_t)clen) : (head + (size_t)clen > BUF ? -1 : 0);
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double pct(double p) {
  if (nlat == 0) return 0;
  size_t i = (size_t)ceil(p / 100.0 * (double)nlat);
  if (i > 0) i--;
  if (i >= nlat) i = nlat - 1;
  return lat[i] / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: openloop HOST PORT RATE SECONDS WARMUP_SECONDS CONNECTIONS [SEED]\n");
    return 2;
  }
  double rate = atof(argv[3]), seconds = atof(argv[4]), warmup = atof(argv[5]);
  int nconn = atoi(argv[6]);
  rng = argc > 7 ? strtoull(argv[7], NULL, 10) : 88172645463325252ULL;
  if (rng == 0) rng = 1;
  if (rate <= 0 || seconds <= 0 || warmup < 0 || nconn <= 0) {
    fprintf(stderr, "openloop: RATE, SECONDS and CONNECTIONS must be positive\n");
    return 2;
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "openloop: HOST must be an IPv4 address\n");
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request, "GET / HTTP/1.1\r\nHost: %s:%s\r\n\r\n", argv[1], argv[2]);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  int ep = epoll_create1(0);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
  conn_t *conns = calloc((size_t)nconn, sizeof *conns);
  for (int i = 0; i < nconn; i++)
    if (open_conn(&conns[i], ep) != 0) {
      fprintf(stderr, "openloop: cannot connect to %s:%s: %s\n", argv[1], argv[2], strerror(errno));
      return 1;
    }

  maxlat = (size_t)(rate * seconds * 1.5) + 1024;
  lat = malloc(maxlat * sizeof *lat);
  /* Requests scheduled while every connection was busy, by scheduled time (a ring). */
  size_t qcap = (size_t)(rate * (seconds + warmup)) + 1024, qhead = 0, qlen = 0;
  int64_t *queue = malloc(qcap * sizeof *queue);

  int64_t start = now_ns();
  measure_from = start + (int64_t)(warmup * 1e9);
  stop_at = measure_from + (int64_t)(seconds * 1e9);
  int64_t next = start + (int64_t)(-log(uniform01()) / rate * 1e9);
  long scheduled_measured = 0;
  struct epoll_event evs[64];

  for (;;) {
    int64_t now = now_ns();
    /* Everything scheduled by now goes on a free connection, or waits its turn. */
    while (next <= now && next < stop_at) {
      if (next >= measure_from) scheduled_measured++;
      if (qlen < qcap) queue[(qhead + qlen++) % qcap] = next;
      else if (next >= measure_from) errors++;
      next += (int64_t)(-log(uniform01()) / rate * 1e9);
    }
    for (int i = 0; i < nconn && qlen > 0; i++) {
      conn_t *c = &conns[i];
      if (c->fd < 0 || c->busy) continue;
      c->busy = 1;
      c->scheduled = queue[qhead];
      qhead = (qhead + 1) % qcap;
      qlen--;
      if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) drop_conn(c, ep);
    }
    int inflight = 0;
    for (int i = 0; i < nconn; i++) inflight += conns[i].busy;
    if (next >= stop_at && qlen == 0 && inflight == 0) break;
    if (now > stop_at + 5000000000LL) { /* answers that never come: 5 s past the end */
      errors += inflight + (long)qlen;
      break;
    }
    if (next < stop_at) {
      struct itimerspec its = {.it_value = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL}};
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    int n = epoll_wait(ep, evs, 64, next < stop_at ? -1 : 100);
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (c == NULL) {
        uint64_t x;
        (void)!read(tfd, &x, sizeof x);
        continue;
      }
      ssize_t r = recv(c->fd, c->buf + c->have, BUF - c->have, 0);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        drop_conn(c, ep);
        continue;
      }
      c->have += (size_t)r;
      int status = 0, closing = 0;
      long len = response_len(c->buf, c->have, &status, &closing);
      if (len < 0) {
        drop_conn(c, ep);
        continue;
      }
      if (len == 0) continue;
      int64_t done = now_ns();
      if (c->busy && c->scheduled >= measure_from && c->scheduled < stop_at) {
        if (status < 200 || status > 399) errors++;
        else if (nlat < maxlat) lat[nlat++] = done - c->scheduled;
      }
      c->busy = 0;
      memmove(c->buf, c->buf + len, c->have - (size_t)len);
      c->have -= (size_t)len;
      if (closing) drop_conn(c, ep); /* a new connection before the next request, not a failed one */
    }
  }
  qsort(lat, nlat, sizeof *lat, cmp64);
  printf("requests=%zu errors=%ld rps=%.1f p50=%.4f p90=%.4f p99=%.4f p999=%.4f max=%.4f scheduled=%ld\n", nlat, errors, nlat / seconds, pct(50), pct(90), pct(99), pct(99.9),
         nlat ? lat[nlat - 1] / 1e6 : 0.0, scheduled_measured);
  return 0;
}
