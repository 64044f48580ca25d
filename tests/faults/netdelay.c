/* netdelay: delays every packet of one netfilter queue by delay +- jitter before letting it go.

   The network fault tests need latency with jitter (which also reorders packets). The usual tool,
   the netem qdisc, is not in every kernel (not in the VM these tests were written on), but
   NFQUEUE is: a rule such as

     iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 7 --queue-bypass

   hands each outgoing packet to the process bound to queue 7, and the packet leaves only when
   that process gives its verdict. This program binds a queue, and for each packet draws a hold
   time uniformly from [delay - jitter, delay + jitter] (at least 0) and accepts it when that
   time has passed. Packets held for different times leave in a different order than they came:
   with a jitter that exceeds the gap between two packets, a TCP stream sees reordering too, as
   it would across a real network's paths.

   Why iptables and not nft: nft's own `queue` statement needs the nft_queue module, which such
   kernels may lack, while iptables-nft's NFQUEUE target goes through the xt compatibility layer
   (the xt_NFQUEUE target, here built in). Either way the packet reaches the same queue.

   Nothing is lost on purpose: the queue is made long (--max), and FAIL_OPEN lets packets pass
   undelayed rather than be dropped if it ever fills or a message cannot reach this process; the
   rule's --queue-bypass lets them pass when no process is bound (before start, after exit). On
   SIGTERM or SIGINT every held packet is accepted at once, so stopping the fault leaves no
   connection waiting on a packet nobody will release. A netfilter queue belongs to the network
   namespace it was bound in: run one netdelay per namespace (ip netns exec NS netdelay ...).

   Usage: netdelay --queue N --delay MS [--jitter MS] [--seed N] [--max PACKETS]
   Prints "netdelay: queue N ready" once bound, and at the end how many packets it held, how
   many of them left after a packet that came later (out of order), and the longest hold.
   Exit status 0 after a signal, 1 on errors, 2 on a bad command line.

   Build: gcc -O2 -o netdelay netdelay.c -lnetfilter_queue -lnfnetlink
   (Debian: libnetfilter-queue-dev). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct held {
  uint64_t release_ns; /* CLOCK_MONOTONIC time the packet may leave */
  uint64_t seq;        /* arrival order */
  uint32_t id;         /* the queue's packet id, for the verdict */
};

/* A binary min-heap of held packets by release time. */
static struct held *heap;
static size_t heap_len, heap_cap;

static void heap_push(struct held h) {
  if (heap_len == heap_cap) {
    heap_cap = heap_cap ? heap_cap * 2 : 1024;
    heap = realloc(heap, heap_cap * sizeof *heap);
    if (!heap) {
      perror("netdelay: realloc");
      exit(1);
    }
  }
  size_t i = heap_len++;
  while (i > 0 && heap[(i - 1) / 2].release_ns > h.release_ns) {
    heap[i] = heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  heap[i] = h;
}

static struct held heap_pop(void) {
  struct held top = heap[0], last = heap[--heap_len];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= heap_len) break;
    if (c + 1 < heap_len && heap[c + 1].release_ns < heap[c].release_ns) c++;
    if (heap[c].release_ns >= last.release_ns) break;
    heap[i] = heap[c];
    i = c;
  }
  if (heap_len > 0) heap[i] = last;
  return top;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: enough randomness for hold times, reproducible from --seed. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng_next(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static int64_t delay_ns, jitter_ns;
static uint64_t packets, longest_ns;
/* A packet released after one that arrived later than it left out of order: counted. */
static uint64_t reordered, last_released_seq;

static void release(struct nfq_q_handle *qh, struct held p) {
  if (p.seq < last_released_seq)
    reordered++;
  else
    last_released_seq = p.seq;
  nfq_set_verdict(qh, p.id, NF_ACCEPT, 0, NULL);
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data) {
  (void)qh;
  (void)msg;
  (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  int64_t hold = delay_ns;
  if (jitter_ns > 0) hold += (int64_t)(rng_next() % (uint64_t)(2 * jitter_ns + 1)) - jitter_ns;
  if (hold < 0) hold = 0;
  if ((uint64_t)hold > longest_ns) longest_ns = (uint64_t)hold;
  packets++;
  heap_push((struct held){now_ns() + (uint64_t)hold, packets, ntohl(ph->packet_id)});
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: netdelay --queue N --delay MS [--jitter MS] [--seed N] [--max PACKETS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  long queue = -1, delay_ms = -1, jitter_ms = 0, max_len = 65536;
  unsigned long long seed = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    char *end;
    const char *flag = argv[i], *value = argv[++i];
    long long v = strtoll(value, &end, 10);
    if (*end || v < 0) usage();
    if (!strcmp(flag, "--queue"))
      queue = v;
    else if (!strcmp(flag, "--delay"))
      delay_ms = v;
    else if (!strcmp(flag, "--jitter"))
      jitter_ms = v;
    else if (!strcmp(flag, "--seed"))
      seed = (unsigned long long)v;
    else if (!strcmp(flag, "--max"))
      max_len = v;
    else
      usage();
  }
  if (queue < 0 || queue > 65535 || delay_ms < 0 || max_len <= 0) usage();
  delay_ns = (int64_t)delay_ms * 1000000;
  jitter_ns = (int64_t)jitter_ms * 1000000;
  if (seed) rng_state ^= seed * 0x9E3779B97F4A7C15ull;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct nfq_handle *h = nfq_open();
  if (!h) {
    perror("netdelay: nfq_open");
    return 1;
  }
  struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
  if (!qh) {
    perror("netdelay: nfq_create_queue (is another process bound to this queue?)");
    return 1;
  }
  /* Only the packet's metadata (its id) is needed, not its bytes. */
  if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
    perror("netdelay: nfq_set_mode");
    return 1;
  }
  nfq_set_queue_maxlen(qh, (uint32_t)max_len);
  /* FAIL_OPEN: a full queue lets packets through instead of dropping them. GSO: large
     offloaded packets come whole instead of being segmented for us (we never read them). */
  uint32_t flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
  if (nfq_set_queue_flags(qh, flags, flags) < 0) perror("netdelay: nfq_set_queue_flags");
  int fd = nfq_fd(h);
  nfnl_rcvbufsiz(nfq_nfnlh(h), 8 * 1024 * 1024);

  printf("netdelay: queue %ld ready (delay %ld ms, jitter %ld ms)\n", queue, delay_ms, jitter_ms);
  fflush(stdout);

  char buf[65536] __attribute__((aligned));
  uint64_t enobufs = 0;
  while (!stopping) {
    int timeout = -1;
    uint64_t now = now_ns();
    while (heap_len > 0 && heap[0].release_ns <= now) release(qh, heap_pop());
    if (heap_len > 0) {
      uint64_t wait = heap[0].release_ns - now;
      timeout = (int)((wait + 999999) / 1000000); /* round up: never wake before it is due */
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("netdelay: poll");
      break;
    }
    if (n == 0) continue;
    /* Read what is there without blocking, so held packets are released on time. */
    for (;;) {
      ssize_t len = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (len < 0) {
        if (errno == ENOBUFS) { /* the kernel could not hand us some packets: FAIL_OPEN */
          enobufs++;
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) perror("netdelay: recv");
        break;
      }
      nfq_handle_packet(h, buf, (int)len);
    }
  }
  /* Let every held packet go before the queue is unbound. */
  while (heap_len > 0) release(qh, heap_pop());
  nfq_destroy_queue(qh);
  nfq_close(h);
  printf(
      "netdelay: queue %ld done: %llu packets delayed, %llu left out of order, longest hold "
      "%llu ms%s\n",
      queue, (unsigned long long)packets, (unsigned long long)reordered,
      (unsigned long long)(longest_ns / 1000000),
      enobufs ? " (some packets passed undelayed: receive buffer full)" : "");
  return stopping ? 0 : 1;
}
