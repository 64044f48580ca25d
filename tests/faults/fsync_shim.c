// fsync_shim: an LD_PRELOAD library that makes one process's disk slow or failing, on command.
//
// It wraps fsync and fdatasync (what SQLite calls to make a commit durable: on Linux it
// fdatasyncs the -wal file at each commit with synchronous=FULL, the database file at each
// checkpoint, and the directory when it creates a file; it never calls sync_file_range, msync
// or syncfs, and writes with pwrite64), and pwrite, pwrite64 and write. What they do comes
// from a control file named by the environment variable DTM_FSYNC_SHIM, looked at again on
// every call (one stat(2); the file is read again only when its inode, size or modification
// time changed, so a test switches modes by writing a new file and renaming it over the old
// one). Its words, any order, each optional:
//
//   fsync=pass            the real call (also: no file, an empty file, an unknown word)
//   fsync=delay:MS        sleep MS milliseconds, then the real call (a slow disk)
//   fsync=delay:MIN-MAX   sleep a uniformly random MIN..MAX milliseconds, then the real call
//   fsync=fail            fail with EIO without syncing: nothing written since the last
//                         successful sync is known to be on the disk (how Linux reports a
//                         writeback error; the page cache may even drop the dirty pages)
//   write=pass|eio|enospc writes fail with EIO or ENOSPC, writing nothing
//   path=PREFIX           act only on files whose path starts with PREFIX (e.g. the
//                         database's path, which covers its -wal, -shm and -journal files);
//                         without it, on every regular file (a log redirected to a file
//                         too). Sockets and pipes always pass.
//
// If DTM_FSYNC_SHIM_STATS names a file, the shim rewrites it after every call it sees on a
// matching file with one line of counters:
//   syncs=N synced=N delayed=N failed=N writes_failed=N
// (syncs: fsync/fdatasync calls seen; synced: of them, passed to the kernel and succeeded;
// delayed, failed: as the control file said), so a test can tell the faults really happened.
//
// Why a shim, and not a faulty block device: this kernel has no device-mapper (no dm-delay,
// dm-error or dm-flakey) and no modules to load, and a loop device cannot be told to fail.
// A FUSE filesystem could fail fsync, but it puts a userspace daemon under every read, write
// and the -shm mmap that SQLite's WAL shares between connections (a different filesystem
// from the one production runs on, with fault modes of its own), and it needs a daemon and a
// mount to clean up. The shim acts on the one process under test and on the very calls that
// make its commits durable, and nothing else on the machine (the PostgreSQL server the banks
// use, the test itself) sees the fault. What it cannot do is lose data already written: a
// kill -9 keeps the page cache, so "not durable" is checked through what the process
// acknowledges while its syncs fail, not by pulling the power.
//
// Build: gcc -O2 -shared -fPIC -o libfsync_shim.so fsync_shim.c -ldl -pthread
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum sync_mode { SYNC_PASS, SYNC_DELAY, SYNC_FAIL };
enum write_mode { WRITE_PASS, WRITE_EIO, WRITE_ENOSPC };

struct config {
  enum sync_mode sync;
  long delay_min_ms, delay_max_ms;
  enum write_mode write;
  char path[1024];  // empty: every regular file
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct config current;  // guarded by mu
static struct stat seen;       // the control file as last read; guarded by mu
static int have_seen;          // guarded by mu
static uint64_t n_syncs, n_synced, n_delayed, n_failed, n_writes_failed;  // guarded by mu
static int stats_fd = -1;                                                 // guarded by mu
static unsigned rng_state = 12345;                                        // guarded by mu
// Set while this thread is inside the shim: a signal handler that writes (a self-pipe) while
// its thread holds mu gets the real call instead of waiting for mu forever.
static __thread int in_shim;

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static ssize_t (*real_write)(int, const void*, size_t);
static ssize_t (*real_pwrite)(int, const void*, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void*, size_t, off64_t);

static void resolve(void) {
  if (real_fsync) return;
  real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  real_write = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  real_pwrite = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  real_pwrite64 = (ssize_t(*)(int, const void*, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
  real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
}

static void parse(const char* text, struct config* c) {
  memset(c, 0, sizeof(*c));
  const char* p = text;
  while (*p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') ++p;
    const char* end = p;
    while (*end && *end != ' ' && *end != '\n' && *end != '\t' && *end != '\r') ++end;
    size_t n = (size_t)(end - p);
    char word[1000];
    if (n > 0 && n < sizeof(word)) {
      memcpy(word, p, n);
      word[n] = 0;
      if (strcmp(word, "fsync=fail") == 0) {
        c->sync = SYNC_FAIL;
      } else if (strncmp(word, "fsync=delay:", 12) == 0) {
        long lo = 0, hi = 0;
        int got = sscanf(word + 12, "%ld-%ld", &lo, &hi);
        if (got >= 1 && lo >= 0) {
          c->sync = SYNC_DELAY;
          c->delay_min_ms = lo;
          c->delay_max_ms = got == 2 && hi >= lo ? hi : lo;
        }
      } else if (strcmp(word, "write=eio") == 0) {
        c->write = WRITE_EIO;
      } else if (strcmp(word, "write=enospc") == 0) {
        c->write = WRITE_ENOSPC;
      } else if (strncmp(word, "path=", 5) == 0) {
        snprintf(c->path, sizeof(c->path), "%s", word + 5);
      }
    }
    p = end;
  }
}

// Brings `current` up to date with the control file. Caller holds mu.
static void refresh_locked(void) {
  const char* name = getenv("DTM_FSYNC_SHIM");
  struct stat st;
  if (name == NULL || stat(name, &st) != 0) {
    if (have_seen) memset(&current, 0, sizeof(current));
    have_seen = 0;
    return;
  }
  if (have_seen && st.st_ino == seen.st_ino && st.st_size == seen.st_size &&
      st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec) {
    return;
  }
  char buf[2048];
  ssize_t n = 0;
  int fd = open(name, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
  }
  buf[n > 0 ? n : 0] = 0;
  parse(buf, &current);
  seen = st;
  have_seen = 1;
}

// Whether `fd` is a file the control file's path= (or, without one, "regular file") covers.
static int matches(int fd, const struct config* c) {
  if (c->path[0] == 0) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  }
  char link[64], target[1024];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n <= 0) return 0;
  target[n] = 0;
  return strncmp(target, c->path, strlen(c->path)) == 0;
}

// Rewrites the stats file (raw syscalls: the shim's own writes must not come back here).
static void write_stats_locked(void) {
  const char* name = getenv("DTM_FSYNC_SHIM_STATS");
  if (name == NULL) return;
  if (stats_fd < 0) stats_fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (stats_fd < 0) return;
  char line[200];
  int n = snprintf(
      line, sizeof(line), "syncs=%llu synced=%llu delayed=%llu failed=%llu writes_failed=%llu\n",
      (unsigned long long)n_syncs, (unsigned long long)n_synced, (unsigned long long)n_delayed,
      (unsigned long long)n_failed, (unsigned long long)n_writes_failed);
  // Fixed-width enough: the counters only grow, so each line is at least as long as the last.
  syscall(SYS_pwrite64, stats_fd, line, (size_t)n, (off_t)0);
}

static int do_sync(int fd, int (*real)(int)) {
  resolve();
  if (in_shim) return real(fd);
  in_shim = 1;
  struct config c;
  long delay_ms = 0;
  pthread_mutex_lock(&mu);
  refresh_locked();
  c = current;
  int covered = (c.sync != SYNC_PASS || getenv("DTM_FSYNC_SHIM_STATS") != NULL) && matches(fd, &c);
  if (covered) {
    ++n_syncs;
    if (c.sync == SYNC_FAIL) {
      ++n_failed;
      write_stats_locked();
      pthread_mutex_unlock(&mu);
      in_shim = 0;
      errno = EIO;
      return -1;
    }
    if (c.sync == SYNC_DELAY) {
      ++n_delayed;
      delay_ms = c.delay_min_ms;
      if (c.delay_max_ms > c.delay_min_ms) {
        delay_ms += (long)(rand_r(&rng_state) % (unsigned)(c.delay_max_ms - c.delay_min_ms + 1));
      }
    }
  }
  pthread_mutex_unlock(&mu);
  in_shim = 0;
  if (delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  int rc = real(fd);
  if (covered && !in_shim) {
    int saved = errno;
    in_shim = 1;
    pthread_mutex_lock(&mu);
    if (rc == 0) ++n_synced;
    write_stats_locked();
    pthread_mutex_unlock(&mu);
    in_shim = 0;
    errno = saved;
  }
  return rc;
}

// 0 to go on with the real write, or the errno to fail it with.
static int write_fault(int fd) {
  resolve();
  if (in_shim) return 0;
  in_shim = 1;
  pthread_mutex_lock(&mu);
  refresh_locked();
  int err = 0;
  if (current.write != WRITE_PASS && matches(fd, &current)) {
    err = current.write == WRITE_EIO ? EIO : ENOSPC;
    ++n_writes_failed;
    write_stats_locked();
  }
  pthread_mutex_unlock(&mu);
  in_shim = 0;
  return err;
}

int fsync(int fd) { return do_sync(fd, (resolve(), real_fsync)); }

int fdatasync(int fd) { return do_sync(fd, (resolve(), real_fdatasync)); }

ssize_t write(int fd, const void* buf, size_t n) {
  int err = write_fault(fd);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  int err = write_fault(fd);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  int err = write_fault(fd);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return real_pwrite64(fd, buf, n, off);
}
