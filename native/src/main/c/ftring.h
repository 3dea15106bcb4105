/*
 * The qemu-ft log ring: a single-writer, single-reader byte stream in a shared file (normally
 * under /dev/shm), mapped by QEMU (through libftshim) and by the controller (through Java's FFM
 * API, org.qemuft.nativeio.LogRing, which implements the same protocol). docs/libftshim.md
 * describes the layout and the protocol; keep the two implementations and that page in step.
 */
#ifndef FTRING_H
#define FTRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FTRING_MAGIC 0x474e495254464d51ULL /* "QMFTRING" read as a little-endian u64 */
#define FTRING_FORMAT 2u
#define FTRING_HEADER_SIZE 4096u
#define FTRING_MIN_CAPACITY 4096ull
#define FTRING_MAX_CAPACITY (1ull << 30)
/* QEMU 7.2's REPLAY_VERSION (replay/replay.c). */
#define FTRING_REPLAY_VERSION 0x00e0200cu
/* The replay log's file header: u32 version, u64 reserved (replay/replay.c, HEADER_SIZE). */
#define FTRING_LOG_HEADER_SIZE 12u

/*
 * The header at the start of the ring file. Integers are in the host's byte order (x86-64: little
 * endian); the 64-bit positions count bytes since the stream began and never wrap. The data area
 * starts at FTRING_HEADER_SIZE; position p lives at data[p & (capacity - 1)].
 *
 * Fields a peer changes while the other runs are on their own cache lines: the writer's at 64,
 * the reader's at 128. The futex words are write_seq (the reader sleeps on it; the writer bumps it
 * to wake the reader or when it closes; the reader's own process may bump it to end its wait early)
 * and read_seq (the other way round). They are wake-up counters, nothing more.
 */
struct ftring_header {
    uint64_t magic;               /*   0 FTRING_MAGIC */
    uint32_t format;              /*   8 FTRING_FORMAT */
    uint32_t header_size;         /*  12 FTRING_HEADER_SIZE */
    uint64_t capacity;            /*  16 data bytes, a power of two */
    uint64_t base_offset;         /*  24 replay-log file offset of ring position 0 (12) */
    uint32_t replay_version;      /*  32 the log version the stream carries (0x00e0200c) */
    uint32_t log_version_written; /*  36 what a recording QEMU wrote in its header at exit, else 0 */
    int32_t writer_pid;           /*  40 claimed by the writer (0 = none yet) */
    int32_t reader_pid;           /*  44 claimed by the reader (0 = none yet) */
    uint8_t pad0[16];
    uint64_t write_pos;           /*  64 bytes written; release-stored by the writer */
    uint32_t writer_closed;       /*  72 1 once the writer has finished the stream */
    uint32_t writer_waiting;      /*  76 1 while the writer sleeps on read_seq (ring full) */
    uint32_t write_seq;           /*  80 futex word: bumped by the writer to wake the reader */
    uint32_t pad1a;
    uint64_t writer_wake_at;      /*  88 the sleeping writer wants read_pos >= this */
    uint8_t pad1[32];
    uint64_t read_pos;            /* 128 bytes consumed; release-stored by the reader */
    uint32_t reader_closed;       /* 136 1 once the reader has gone for good */
    uint32_t reader_waiting;      /* 140 1 while the reader sleeps on write_seq (ring empty) */
    uint32_t read_seq;            /* 144 futex word: bumped by the reader to wake the writer */
    uint32_t pad2a;
    uint64_t reader_wake_at;      /* 152 the sleeping reader wants write_pos >= this */
    uint8_t pad2[32];
    /* Written by the reader only, rarely: its own cache line, which the writer's hot path reads
     * without disturbing the positions' lines. */
    uint32_t writer_hold;         /* 192 nonzero: the writer waits before its next byte */
    uint8_t pad3[60];
};

_Static_assert(sizeof(struct ftring_header) == 256, "ring header layout");
_Static_assert(offsetof(struct ftring_header, writer_hold) == 192, "writer_hold offset");
_Static_assert(offsetof(struct ftring_header, write_pos) == 64, "write_pos offset");
_Static_assert(offsetof(struct ftring_header, read_pos) == 128, "read_pos offset");
_Static_assert(offsetof(struct ftring_header, writer_wake_at) == 88, "writer_wake_at offset");
_Static_assert(offsetof(struct ftring_header, reader_wake_at) == 152, "reader_wake_at offset");

struct ftring {
    struct ftring_header *h;
    uint8_t *data;
    uint64_t mask;
    size_t map_size;
    /* 1 if this process registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED: its peer then issues the
     * barrier before sleeping, and this side may publish positions without a fence. */
    int registered;
    /* The peer's position as last seen (the writer's view of read_pos, the reader's of
     * write_pos): the one-byte paths look at the peer's cache line only when this says full or
     * empty. It may lag behind (the blocking paths move our own position past it): it then only
     * says "look again". */
    uint64_t peer_seen;
};

/* Longest error text the functions below produce. */
#define FTRING_ERR_MAX 512

/* Creates (or truncates) a ring file with the given capacity and maps it. For tests and tools;
 * the controller creates rings with LogRing.create. Returns 0, or -1 with a message in err. */
int ftring_create(struct ftring *r, const char *path, uint64_t capacity, char err[FTRING_ERR_MAX]);

/* Maps an existing ring and checks its header. Returns 0, or -1 with a message in err. */
int ftring_attach(struct ftring *r, const char *path, char err[FTRING_ERR_MAX]);

/* Claims the writer or reader role for this process (the pid field, 0 -> pid). Returns 0, or -1
 * with the holder's pid in *holder. */
int ftring_claim_writer(struct ftring *r, pid_t *holder);
int ftring_claim_reader(struct ftring *r, pid_t *holder);

/* Writes all n bytes, sleeping while the ring is full (until a quarter of it is free, so that a
 * reader freeing a few bytes at a time does not wake the writer for each). Returns n, or -1 if the
 * reader has closed the ring (the bytes not yet written are lost). */
ssize_t ftring_write(struct ftring *r, const void *buf, size_t n);

/* Reads 1..n bytes, sleeping while the ring is empty. Returns the count, or 0 once the writer has
 * closed the ring and everything it wrote has been read. */
ssize_t ftring_read(struct ftring *r, void *buf, size_t n);

/* Bytes readable now (write_pos - read_pos). */
uint64_t ftring_readable(const struct ftring *r);

void ftring_close_writer(struct ftring *r);
void ftring_close_reader(struct ftring *r);

/* Flow control from the reader's side: while held (hold != 0), the writer sleeps before its next
 * byte, whatever room the ring has; releasing wakes it. A closed reader ends the hold (the write
 * fails, as it does on a full ring). */
void ftring_hold_writer(struct ftring *r, int hold);

/* Registers this process for MEMBARRIER_CMD_GLOBAL_EXPEDITED (see struct ftring.registered). */
int ftring_register_membarrier(void);

void ftring_detach(struct ftring *r);

/* The wake-up half of a publication, out of line (rarely taken). */
void ftring_wake_reader(struct ftring *r, uint64_t write_pos);
void ftring_wake_writer(struct ftring *r, uint64_t read_pos);

/*
 * One byte without waiting, for QEMU's putc/getc (one call per logged byte, so it must cost a few
 * nanoseconds): ftring_try_put returns 0 if the ring is full, ftring_try_get -1 if it is empty;
 * the caller then takes the blocking path (ftring_write, ftring_read).
 */
static inline int ftring_try_put(struct ftring *r, uint8_t b)
{
    struct ftring_header *h = r->h;
    if (__builtin_expect(__atomic_load_n(&h->writer_hold, __ATOMIC_RELAXED) != 0, 0)) {
        return 0; /* held: ftring_write waits */
    }
    uint64_t w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED); /* ours */
    if (w - r->peer_seen > r->mask) {
        r->peer_seen = __atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE);
        if (w - r->peer_seen > r->mask) {
            return 0;
        }
    }
    r->data[w & r->mask] = b;
    __atomic_store_n(&h->write_pos, w + 1, __ATOMIC_RELEASE);
    if (!r->registered) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
    if (__builtin_expect(__atomic_load_n(&h->reader_waiting, __ATOMIC_ACQUIRE) != 0, 0)) {
        ftring_wake_reader(r, w + 1);
    }
    return 1;
}

static inline int ftring_try_get(struct ftring *r)
{
    struct ftring_header *h = r->h;
    uint64_t rd = __atomic_load_n(&h->read_pos, __ATOMIC_RELAXED); /* ours */
    if (r->peer_seen <= rd) {
        r->peer_seen = __atomic_load_n(&h->write_pos, __ATOMIC_ACQUIRE);
        if (r->peer_seen <= rd) {
            return -1;
        }
    }
    uint8_t b = r->data[rd & r->mask];
    __atomic_store_n(&h->read_pos, rd + 1, __ATOMIC_RELEASE);
    if (!r->registered) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
    if (__builtin_expect(__atomic_load_n(&h->writer_waiting, __ATOMIC_ACQUIRE) != 0, 0)) {
        ftring_wake_writer(r, rd + 1);
    }
    return b;
}

#endif
