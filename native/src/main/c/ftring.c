/*
 * The qemu-ft log ring (see ftring.h and docs/libftshim.md).
 *
 * Publishing and waiting: a side publishes its position with a release store, then looks at the
 * peer's "waiting" flag; if it is set and the new position reaches the peer's "wake_at" threshold,
 * it clears the flag, bumps its own sequence word and FUTEX_WAKEs it. A side that finds nothing
 * to do reads the peer's sequence word, stores its threshold and sets its "waiting" flag, makes
 * sure the peer will see the flag, checks once more and sleeps in FUTEX_WAIT on that sequence word
 * with the value it read: a wake-up (or a close, which bumps it too) that comes after the read
 * changes the word, so the sleep cannot miss it.
 *
 * The threshold batches wake-ups: a wake is a system call in the publisher's thread (QEMU's vCPU
 * on the primary), and a sleeper woken for every few bytes would cost one per event. A writer
 * waits for a quarter of the ring; a reader says how much it wants (QEMU: one byte; the
 * controller's shipper may ask for a batch and bound the delay with its timeout).
 *
 * "Makes sure the peer will see the flag" is a store-load (Dekker) problem. A fence on every
 * publication would cost QEMU's vCPU thread a locked instruction per logged byte, so the fence is
 * asymmetric: a process that publishes in its hot path registers for
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED, and the side about to sleep issues that barrier, which runs a
 * full fence on every running thread of the registered processes. Without the registration (the
 * syscall is missing or refused) the publisher fences itself.
 */
#include "ftring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define XCHG(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)

static int registered_membarrier;

int ftring_register_membarrier(void)
{
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED)) {
        return -1;
    }
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) != 0) {
        return -1;
    }
    registered_membarrier = 1;
    return 0;
}

/* Not FUTEX_PRIVATE: the peer is another process mapping the same file. */
static void futex_wait(uint32_t *word, uint32_t expected)
{
    /* EINTR, EAGAIN (the word changed) and spurious wake-ups all mean: look again. */
    syscall(SYS_futex, word, FUTEX_WAIT, expected, NULL, NULL, 0);
}

static void futex_wake(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* After setting our waiting flag: make it visible to the peer's next look (see top comment). */
static void before_sleep(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    /* Fails harmlessly when no process is registered or the kernel lacks it; then the
     * publishers fence themselves. */
    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}

static void bump_and_wake(uint32_t *seq)
{
    __atomic_fetch_add(seq, 1, __ATOMIC_SEQ_CST);
    futex_wake(seq);
}

/* After publishing position pos: wake the peer if it sleeps and pos is what it waits for. */
static void wake_if_waiting(struct ftring *r, uint32_t *peer_waiting, uint64_t *peer_wake_at,
                            uint64_t pos, uint32_t *my_seq)
{
    if (!r->registered) {
        atomic_thread_fence(memory_order_seq_cst);
    }
    if (LOAD_ACQ(peer_waiting) && pos >= LOAD_RLX(peer_wake_at) && XCHG(peer_waiting, 0)) {
        bump_and_wake(my_seq);
    }
}

void ftring_wake_reader(struct ftring *r, uint64_t write_pos)
{
    wake_if_waiting(r, &r->h->reader_waiting, &r->h->reader_wake_at, write_pos, &r->h->write_seq);
}

void ftring_wake_writer(struct ftring *r, uint64_t read_pos)
{
    wake_if_waiting(r, &r->h->writer_waiting, &r->h->writer_wake_at, read_pos, &r->h->read_seq);
}

static int is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static int map_ring(struct ftring *r, int fd, size_t size, const char *path, char *err)
{
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: cannot map %zu bytes: %s", path, size,
                 strerror(errno));
        return -1;
    }
    r->h = m;
    r->data = (uint8_t *)m + FTRING_HEADER_SIZE;
    r->map_size = size;
    r->registered = registered_membarrier;
    return 0;
}

int ftring_create(struct ftring *r, const char *path, uint64_t capacity, char err[FTRING_ERR_MAX])
{
    memset(r, 0, sizeof(*r));
    if (!is_pow2(capacity) || capacity < FTRING_MIN_CAPACITY || capacity > FTRING_MAX_CAPACITY) {
        snprintf(err, FTRING_ERR_MAX,
                 "ring %s: capacity %llu must be a power of two from %llu to %llu", path,
                 (unsigned long long)capacity, FTRING_MIN_CAPACITY, FTRING_MAX_CAPACITY);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    size_t size = FTRING_HEADER_SIZE + capacity;
    if (ftruncate(fd, (off_t)size) != 0) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: cannot size to %zu bytes: %s", path, size,
                 strerror(errno));
        close(fd);
        return -1;
    }
    int rc = map_ring(r, fd, size, path, err);
    close(fd);
    if (rc != 0) {
        return -1;
    }
    r->mask = capacity - 1;
    r->h->format = FTRING_FORMAT;
    r->h->header_size = FTRING_HEADER_SIZE;
    r->h->capacity = capacity;
    r->h->base_offset = FTRING_LOG_HEADER_SIZE;
    r->h->replay_version = FTRING_REPLAY_VERSION;
    /* The magic last: a reader that sees it sees a complete header. */
    STORE_REL(&r->h->magic, FTRING_MAGIC);
    return 0;
}

int ftring_attach(struct ftring *r, const char *path, char err[FTRING_ERR_MAX])
{
    memset(r, 0, sizeof(*r));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: cannot open: %s (the controller creates the ring "
                 "before it starts QEMU)", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)(FTRING_HEADER_SIZE + FTRING_MIN_CAPACITY)) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: %s of %lld bytes is not a qemu-ft ring (a ring is "
                 "a regular file of at least %u bytes)", path,
                 S_ISREG(st.st_mode) ? "file" : "special file", (long long)st.st_size,
                 (unsigned)(FTRING_HEADER_SIZE + FTRING_MIN_CAPACITY));
        close(fd);
        return -1;
    }
    int rc = map_ring(r, fd, (size_t)st.st_size, path, err);
    close(fd);
    if (rc != 0) {
        return -1;
    }
    const struct ftring_header *h = r->h;
    uint64_t magic = LOAD_ACQ(&h->magic);
    const char *why = NULL;
    char detail[160];
    if (magic != FTRING_MAGIC) {
        snprintf(detail, sizeof(detail), "magic is 0x%016llx, not 0x%016llx: not a qemu-ft ring "
                 "(or not yet initialised)", (unsigned long long)magic, FTRING_MAGIC);
        why = detail;
    } else if (h->format != FTRING_FORMAT) {
        snprintf(detail, sizeof(detail), "ring format %u, this libftshim knows format %u only "
                 "(controller and libftshim from different qemu-ft versions?)", h->format,
                 FTRING_FORMAT);
        why = detail;
    } else if (h->header_size != FTRING_HEADER_SIZE) {
        snprintf(detail, sizeof(detail), "header size %u, expected %u", h->header_size,
                 FTRING_HEADER_SIZE);
        why = detail;
    } else if (!is_pow2(h->capacity) || h->capacity < FTRING_MIN_CAPACITY
               || h->capacity > FTRING_MAX_CAPACITY
               || h->capacity + FTRING_HEADER_SIZE != (uint64_t)st.st_size) {
        snprintf(detail, sizeof(detail), "capacity %llu does not fit the file size %lld "
                 "(must be a power of two, file size = %u + capacity)",
                 (unsigned long long)h->capacity, (long long)st.st_size, FTRING_HEADER_SIZE);
        why = detail;
    } else if (h->base_offset != FTRING_LOG_HEADER_SIZE) {
        snprintf(detail, sizeof(detail), "stream base offset %llu, this libftshim supports only "
                 "%u (QEMU 7.2 starts its events at offset 12)",
                 (unsigned long long)h->base_offset, FTRING_LOG_HEADER_SIZE);
        why = detail;
    } else if (h->replay_version != FTRING_REPLAY_VERSION) {
        snprintf(detail, sizeof(detail), "replay log version 0x%08x, this libftshim and QEMU 7.2 "
                 "use 0x%08x", h->replay_version, FTRING_REPLAY_VERSION);
        why = detail;
    } else {
        uint64_t w = LOAD_ACQ(&h->write_pos), rd = LOAD_ACQ(&h->read_pos);
        if (w < rd || w - rd > h->capacity) {
            snprintf(detail, sizeof(detail), "positions are inconsistent (write %llu, read %llu, "
                     "capacity %llu): the ring is damaged", (unsigned long long)w,
                     (unsigned long long)rd, (unsigned long long)h->capacity);
            why = detail;
        }
    }
    if (why != NULL) {
        snprintf(err, FTRING_ERR_MAX, "ring %s: %s", path, why);
        ftring_detach(r);
        return -1;
    }
    r->mask = h->capacity - 1;
    return 0;
}

static int claim(int32_t *field, pid_t *holder)
{
    int32_t expected = 0, me = (int32_t)getpid();
    if (__atomic_compare_exchange_n(field, &expected, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
        || expected == me) {
        return 0;
    }
    *holder = expected;
    return -1;
}

int ftring_claim_writer(struct ftring *r, pid_t *holder)
{
    return claim(&r->h->writer_pid, holder);
}

int ftring_claim_reader(struct ftring *r, pid_t *holder)
{
    return claim(&r->h->reader_pid, holder);
}

uint64_t ftring_readable(const struct ftring *r)
{
    return LOAD_ACQ(&r->h->write_pos) - LOAD_ACQ(&r->h->read_pos);
}

ssize_t ftring_write(struct ftring *r, const void *buf, size_t n)
{
    struct ftring_header *h = r->h;
    const uint8_t *src = buf;
    uint64_t cap = h->capacity;
    uint64_t w = LOAD_RLX(&h->write_pos); /* only this side stores it */
    size_t done = 0;
    while (done < n) {
        if (LOAD_ACQ(&h->writer_hold)) {
            if (LOAD_ACQ(&h->reader_closed)) {
                return -1;
            }
            /* Held by the reader (flow control): sleep until it releases (or closes), which
             * clears the flag and then bumps read_seq; reading seq first cannot miss that. */
            uint32_t seq = LOAD_ACQ(&h->read_seq);
            if (LOAD_ACQ(&h->writer_hold) && !LOAD_ACQ(&h->reader_closed)) {
                futex_wait(&h->read_seq, seq);
            }
            continue;
        }
        uint64_t rd = LOAD_ACQ(&h->read_pos);
        r->peer_seen = rd;
        uint64_t space = cap - (w - rd);
        if (space == 0) {
            if (LOAD_ACQ(&h->reader_closed)) {
                return -1;
            }
            /* Sleep until a quarter of the ring is free. */
            uint64_t wake_at = w - cap + cap / 4;
            uint32_t seq = LOAD_ACQ(&h->read_seq);
            STORE_RLX(&h->writer_wake_at, wake_at);
            STORE_REL(&h->writer_waiting, 1);
            before_sleep();
            if (LOAD_ACQ(&h->read_pos) < wake_at && !LOAD_ACQ(&h->reader_closed)) {
                futex_wait(&h->read_seq, seq);
            }
            STORE_RLX(&h->writer_waiting, 0);
            continue;
        }
        size_t k = n - done < space ? n - done : (size_t)space;
        uint64_t at = w & r->mask;
        size_t first = k < cap - at ? k : (size_t)(cap - at);
        memcpy(r->data + at, src + done, first);
        memcpy(r->data, src + done + first, k - first);
        w += k;
        done += k;
        STORE_REL(&h->write_pos, w);
        wake_if_waiting(r, &h->reader_waiting, &h->reader_wake_at, w, &h->write_seq);
    }
    return (ssize_t)n;
}

ssize_t ftring_read(struct ftring *r, void *buf, size_t n)
{
    struct ftring_header *h = r->h;
    uint64_t cap = h->capacity;
    uint64_t rd = LOAD_RLX(&h->read_pos); /* only this side stores it */
    if (n == 0) {
        return 0;
    }
    for (;;) {
        uint64_t w = LOAD_ACQ(&h->write_pos);
        r->peer_seen = w;
        if (w != rd) {
            uint64_t avail = w - rd;
            size_t k = n < avail ? n : (size_t)avail;
            uint64_t at = rd & r->mask;
            size_t first = k < cap - at ? k : (size_t)(cap - at);
            memcpy(buf, r->data + at, first);
            memcpy((uint8_t *)buf + first, r->data, k - first);
            STORE_REL(&h->read_pos, rd + k);
            wake_if_waiting(r, &h->writer_waiting, &h->writer_wake_at, rd + k, &h->read_seq);
            return (ssize_t)k;
        }
        if (LOAD_ACQ(&h->writer_closed)) {
            /* The writer stores its last bytes before the flag: look once more. */
            if (LOAD_ACQ(&h->write_pos) != rd) {
                continue;
            }
            return 0;
        }
        uint32_t seq = LOAD_ACQ(&h->write_seq);
        STORE_RLX(&h->reader_wake_at, rd + 1);
        STORE_REL(&h->reader_waiting, 1);
        before_sleep();
        if (LOAD_ACQ(&h->write_pos) == rd && !LOAD_ACQ(&h->writer_closed)) {
            futex_wait(&h->write_seq, seq);
        }
        STORE_RLX(&h->reader_waiting, 0);
    }
}

void ftring_close_writer(struct ftring *r)
{
    STORE_REL(&r->h->writer_closed, 1);
    bump_and_wake(&r->h->write_seq);
}

void ftring_hold_writer(struct ftring *r, int hold)
{
    STORE_REL(&r->h->writer_hold, hold ? 1u : 0u);
    if (!hold) {
        bump_and_wake(&r->h->read_seq);
    }
}

void ftring_close_reader(struct ftring *r)
{
    STORE_REL(&r->h->reader_closed, 1);
    bump_and_wake(&r->h->read_seq);
}

void ftring_detach(struct ftring *r)
{
    if (r->h != NULL) {
        munmap(r->h, r->map_size);
    }
    memset(r, 0, sizeof(*r));
}
