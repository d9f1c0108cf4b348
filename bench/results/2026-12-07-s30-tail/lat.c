// Closed-loop RESP GET load with a per-request record: N connections, pipeline 1, random keys
// key:%012d, like redis-benchmark -t get -P 1 -r K. Writes "send_ns lat_ns conn" per request
// (CLOCK_MONOTONIC) to OUT, and prints ops/s, p50, p99, p99.9.
// usage: lat HOST PORT CONNS REQUESTS KEYS OUT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

typedef struct {
  int fd;
  uint64_t sent;
  char buf[4096];
  int len;
} conn_t;

static uint64_t rng = 88172645463325252ull;
static uint64_t xr(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void send_req(conn_t *c, long keys) {
  char req[64];
  char key[32];
  int kl = snprintf(key, sizeof key, "key:%012ld", (long)(xr() % keys));
  int n = snprintf(req, sizeof req, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, key);
  c->sent = now_ns();
  if (write(c->fd, req, n) != n) { perror("write"); exit(1); }
}

/* Length of one complete bulk reply at buf, or 0 if incomplete. */
static int reply_len(const char *b, int len) {
  if (len < 4) return 0;
  const char *nl = memchr(b, '\n', len);
  if (!nl) return 0;
  int head = nl - b + 1;
  if (b[0] != '$') return head;  // simple/error reply: one line
  long n = strtol(b + 1, NULL, 10);
  if (n < 0) return head;
  if (len < head + n + 2) return 0;
  return head + n + 2;
}

int main(int argc, char **argv) {
  if (argc < 7) { fprintf(stderr, "usage: lat HOST PORT CONNS REQUESTS KEYS OUT\n"); return 2; }
  const char *host = argv[1];
  int port = atoi(argv[2]), nc = atoi(argv[3]);
  long total = atol(argv[4]), keys = atol(argv[5]);
  uint64_t *sends = malloc(sizeof(uint64_t) * total), *lats = malloc(sizeof(uint64_t) * total);
  int *who = malloc(sizeof(int) * total);
  conn_t *cs = calloc(nc, sizeof(conn_t));
  int ep = epoll_create1(0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  for (int i = 0; i < nc; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cs[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  long done = 0, issued = 0;
  uint64_t t0 = now_ns();
  for (int i = 0; i < nc && issued < total; i++, issued++) send_req(&cs[i], keys);
  struct epoll_event evs[64];
  while (done < total) {
    int n = epoll_wait(ep, evs, 64, 1000);
    for (int e = 0; e < n; e++) {
      conn_t *c = &cs[evs[e].data.u32];
      int r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
      if (r <= 0) { fprintf(stderr, "read %d errno %d\n", r, errno); return 1; }
      c->len += r;
      int l = reply_len(c->buf, c->len);
      if (!l) continue;
      uint64_t t = now_ns();
      memmove(c->buf, c->buf + l, c->len - l);
      c->len -= l;
      sends[done] = c->sent;
      lats[done] = t - c->sent;
      who[done] = evs[e].data.u32;
      done++;
      if (issued < total) { issued++; send_req(c, keys); }
    }
  }
  uint64_t t1 = now_ns();
  FILE *f = fopen(argv[6], "w");
  for (long i = 0; i < done; i++) fprintf(f, "%lu %lu %d\n", sends[i], lats[i], who[i]);
  fclose(f);
  qsort(lats, done, sizeof(uint64_t), cmp);
  printf("ops/s %.0f p50 %.3f ms p99 %.3f ms p99.9 %.3f ms max %.3f ms\n", done * 1e9 / (t1 - t0),
         lats[done / 2] / 1e6, lats[done * 99 / 100] / 1e6, lats[done * 999 / 1000] / 1e6,
         lats[done - 1] / 1e6);
  return 0;
}
