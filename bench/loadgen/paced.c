/*
 * An open-loop HTTP/1.1 load generator for latency below the maximum rate.
 *
 * Requests arrive as a Poisson process at a fixed rate, timed to the microsecond by a timerfd, and go out
 * on whichever keep-alive connection is free (one request in flight per connection). An arrival that finds
 * every connection busy waits in a queue, and its latency still counts from the moment it arrived, so a
 * stalled server shows in the figures instead of slowing the generator down with it.
 *
 * Why not wrk: its pauses are whole milliseconds, so a paced wrk releases each millisecond's requests
 * together, and at half a server's maximum rate the last of every burst waits about half a millisecond
 * whatever the server is.
 *
 * Usage: paced HOST PORT PATH CONNECTIONS RATE DURATION_S TIMEOUT_S WARMUP_S
 * The first WARMUP_S seconds run at the same rate and are not counted: a server just given 50 new
 * connections, or code tuned for another load generator's requests, answers slowly for a moment.
 * Prints one line: PACEDJSON {...}; latencies in microseconds, counted from each request's arrival
 * (p99_us) and from the moment it was written (p99_sent_us). p99_late_us is how late the generator
 * itself wrote the arrivals that found a free connection: a timer that fires late on an idle core is the
 * machine's doing, and a floor under every server's p99 here.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define BUF 65536
#define QUEUE (1u << 20)
#define TIMER_TAG UINT32_MAX

typedef struct {
  int fd;
  int busy;
  int64_t intended; /* when the request in flight arrived */
  int counted;      /* arrived after the warm-up */
  int64_t sent;     /* when it was written */
  size_t len;
  char buf[BUF];
} conn_t;

static struct sockaddr_in addr;
static char request[4096];
static size_t request_len;
static conn_t *conns;
static int nconns, epfd;
static int *idle, nidle;
static int64_t *queue;
static size_t qhead, qtail;
static int64_t *lat_arrival, *lat_sent;
static size_t nlat, caplat, nsent, capsent;
/* How late the generator itself sent the arrivals that found a free connection: the machine's own noise */
static int64_t *late;
static size_t nlate, caplate;
static long err_connect, err_read, err_write, err_status, queued;
static int64_t counted_from;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "paced: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void fail(const char *what) {
  fprintf(stderr, "paced: %s\n", what);
  exit(2);
}

/* Opens connection i; false when the server refused it. A new connection is idle: `listed` says whether
 * it must be put on the idle list (a connection that was idle when it closed is on it already). */
static int open_conn(int i, int listed) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    err_connect++;
    return 0;
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) die("fcntl");
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
  conns[i].fd = fd;
  conns[i].busy = 0;
  conns[i].len = 0;
  if (!listed) idle[nidle++] = i;
  return 1;
}

/* The connection closed or failed: a request in flight on it is lost (counted by the caller). */
static void reopen(int i) {
  int was_idle = !conns[i].busy;
  epoll_ctl(epfd, EPOLL_CTL_DEL, conns[i].fd, NULL);
  close(conns[i].fd);
  conns[i].fd = -1;
  if (!open_conn(i, was_idle)) fail("the server refused a new connection");
}

static void send_on(int i, int64_t intended) {
  conn_t *c = &conns[i];
  c->intended = intended;
  c->counted = intended >= counted_from;
  c->sent = now_ns();
  c->busy = 1;
  c->len = 0;
  ssize_t n = write(c->fd, request, request_len);
  if (n != (ssize_t)request_len) {
    err_write++;
    reopen(i);
  }
}

static void push(int64_t **xs, size_t *n, size_t *cap, int64_t x) {
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 1 << 20;
    *xs = realloc(*xs, *cap * sizeof **xs);
    if (!*xs) fail("out of memory");
  }
  (*xs)[(*n)++] = x;
}

/* A request arrived at `intended`: out on a free connection, or queued until one is free. */
static void arrive(int64_t intended) {
  if (nidle > 0) {
    int i = idle[--nidle];
    send_on(i, intended);
    if (conns[i].counted) push(&late, &nlate, &caplate, conns[i].sent - intended);
    return;
  }
  if (qtail - qhead >= QUEUE) fail("more than a million arrivals waiting: the rate is far above the server's");
  queue[qtail++ % QUEUE] = intended;
  if (intended >= counted_from) queued++;
}

static void record(int64_t arrival, int64_t sent) {
  push(&lat_arrival, &nlat, &caplat, arrival);
  push(&lat_sent, &nsent, &capsent, sent);
}

/* Length of a complete answer at the start of buf, 0 while it is incomplete. */
static size_t complete(const char *buf, size_t len, int *status) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - buf) + 4;
  if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0) fail("not an HTTP/1.x answer");
  *status = atoi(buf + 9);
  long body = -1;
  for (const char *p = buf; p < end;) {
    const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (!eol) break;
    if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) body = atol(p + 15);
    if ((size_t)(eol - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
      fail("chunked answers are not supported: the server must send Content-Length");
    p = eol + 2;
  }
  if (body < 0) fail("an answer without Content-Length");
  if (len < head + (size_t)body) return 0;
  return head + (size_t)body;
}

static void readable(int i) {
  conn_t *c = &conns[i];
  for (;;) {
    if (c->len == BUF) fail("an answer larger than 64 KiB");
    ssize_t n = read(c->fd, c->buf + c->len, BUF - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      // a connection closed while idle (a keep-alive timeout at a low rate) loses nothing
      if (c->busy) err_read++;
      reopen(i);
      if (qhead < qtail && nidle > 0) send_on(idle[--nidle], queue[qhead++ % QUEUE]);
      return;
    }
    c->len += (size_t)n;
    int status = 0;
    size_t used = complete(c->buf, c->len, &status);
    if (!used) continue;
    if (used != c->len || !c->busy) fail("an answer nobody asked for (pipelining is not supported)");
    int64_t t = now_ns();
    if (c->counted) {
      record(t - c->intended, t - c->sent);
      if (status >= 400) err_status++;
    }
    c->busy = 0;
    c->len = 0;
    if (qhead < qtail) {
      send_on(i, queue[qhead++ % QUEUE]);
    } else {
      idle[nidle++] = i;
    }
    return;
  }
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *sorted, size_t n, double p) {
  if (!n) return 0;
  size_t k = (size_t)ceil(p / 100.0 * (double)n);
  if (k < 1) k = 1;
  return sorted[k - 1];
}

/* A uniform draw in (0, 1], from a generator of our own so runs do not share libc's state. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return ((double)(rng >> 11) + 1.0) / 9007199254740992.0;
}

int main(int argc, char **argv) {
  if (argc != 9) fail("usage: paced HOST PORT PATH CONNECTIONS RATE DURATION_S TIMEOUT_S WARMUP_S");
  const char *host = argv[1];
  int port = atoi(argv[2]);
  const char *path = argv[3];
  nconns = atoi(argv[4]);
  double rate = atof(argv[5]);
  double duration = atof(argv[6]);
  double timeout = atof(argv[7]);
  double warmup = atof(argv[8]);
  if (nconns < 1 || rate <= 0 || duration <= 0 || timeout <= 0 || warmup < 0) fail("bad arguments");
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) fail("HOST must be an IPv4 address");
  request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port);
  if (request_len >= sizeof request) fail("path too long");
  rng ^= (uint64_t)now_ns();

  /* Timers fire when asked, not up to 50 µs later. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  conns = calloc((size_t)nconns, sizeof *conns);
  idle = calloc((size_t)nconns, sizeof *idle);
  queue = malloc(QUEUE * sizeof *queue);
  if (!conns || !idle || !queue) fail("out of memory");
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = -1;
    if (!open_conn(i, 0)) fail("could not connect");
  }
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (tfd < 0) die("timerfd_create");
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = TIMER_TAG};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) != 0) die("epoll_ctl");

  const int64_t start = now_ns();
  counted_from = start + (int64_t)(warmup * 1e9);
  const int64_t arrivals_end = counted_from + (int64_t)(duration * 1e9);
  const int64_t hard_end = arrivals_end + (int64_t)(timeout * 1e9);
  const double mean_gap_ns = 1e9 / rate;
  int64_t next = start;
  long arrivals = 0;
  struct epoll_event evs[256];
  for (;;) {
    int64_t t = now_ns();
    while (next <= t && next < arrivals_end) {
      arrive(next);
      if (next >= counted_from) arrivals++;
      next += (int64_t)(-log(uniform()) * mean_gap_ns);
    }
    int outstanding = nconns - nidle + (int)(qtail - qhead);
    if (next >= arrivals_end && outstanding == 0) break;
    if (t >= hard_end) break;
    int wait_ms = -1;
    if (next < arrivals_end) {
      struct itimerspec its = {.it_value = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL}};
      if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) die("timerfd_settime");
    } else {
      wait_ms = (int)((hard_end - t) / 1000000) + 1;
    }
    int n = epoll_wait(epfd, evs, 256, wait_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int k = 0; k < n; k++) {
      uint32_t tag = evs[k].data.u32;
      if (tag == TIMER_TAG) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timerfd");
      } else {
        readable((int)tag);
      }
    }
  }
  long timeouts = nconns - nidle + (long)(qtail - qhead);
  double elapsed_s = (double)(arrivals_end - counted_from) / 1e9;

  double sum = 0;
  for (size_t k = 0; k < nlat; k++) sum += (double)lat_arrival[k];
  qsort(lat_arrival, nlat, sizeof *lat_arrival, cmp);
  qsort(lat_sent, nsent, sizeof *lat_sent, cmp);
  qsort(late, nlate, sizeof *late, cmp);
  printf(
      "PACEDJSON {\"arrivals\":%ld,\"requests\":%zu,\"duration_us\":%.0f,\"connect\":%ld,\"read\":%ld,"
      "\"write\":%ld,\"status\":%ld,\"timeout\":%ld,\"queued\":%ld,\"mean_us\":%.3f,\"max_us\":%.3f,"
      "\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"p50_sent_us\":%.3f,"
      "\"p99_sent_us\":%.3f,\"p99_late_us\":%.3f,\"max_late_us\":%.3f}\n",
      arrivals, nlat, elapsed_s * 1e6, err_connect, err_read, err_write, err_status, timeouts, queued,
      nlat ? sum / (double)nlat / 1e3 : 0.0, nlat ? (double)lat_arrival[nlat - 1] / 1e3 : 0.0,
      (double)pct(lat_arrival, nlat, 50) / 1e3, (double)pct(lat_arrival, nlat, 90) / 1e3,
      (double)pct(lat_arrival, nlat, 99) / 1e3, (double)pct(lat_arrival, nlat, 99.9) / 1e3,
      (double)pct(lat_sent, nsent, 50) / 1e3, (double)pct(lat_sent, nsent, 99) / 1e3,
      (double)pct(late, nlate, 99) / 1e3, nlate ? (double)late[nlate - 1] / 1e3 : 0.0);
  return 0;
}
