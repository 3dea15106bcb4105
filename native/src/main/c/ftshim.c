/*
 * libftshim: preloaded into QEMU 7.2 (LD_PRELOAD), it turns QEMU's record/replay log file into the
 * shared-memory ring of ftring.c. docs/libftshim.md explains what QEMU does with the file and why
 * the shim does what it does; the short version:
 *
 * - replay/replay.c opens the log with fopen() ("wb" to record, "rb" to replay) and from then on
 *   uses only stdio on that FILE*: putc/fwrite, getc/fread, fseek/ftell, feof/ferror, fclose. The
 *   shim intercepts fopen/fopen64 of exactly the path in QEMUFT_SHIM_LOG and returns a FILE* from
 *   fopencookie() whose callbacks talk to the ring; every other file is left alone.
 * - The stream is unbuffered: each putc reaches the ring at once, so the controller's view of the
 *   write position is never behind what QEMU has recorded (the output rule depends on it).
 * - QEMU logs byte by byte (replay_put_dword is four putc calls), and glibc's unbuffered path to
 *   a cookie costs tens of nanoseconds a byte. So the shim also interposes exactly the stdio
 *   functions replay/ calls on the log (putc, fwrite, getc, fread, fseek, ftell, feof, ferror): on
 *   the shim's FILE* they go straight to the ring (a few nanoseconds a byte); on any other FILE*
 *   they call libc's. The cookie callbacks stay correct for any other stdio call on the stream:
 *   both paths share the shim's state, and glibc holds no buffer.
 * - The ring carries the events only. Ring position 0 is log file offset 12 (after the header);
 *   the shim answers ftell/fseek with the file offsets QEMU expects, absorbs the header a recording
 *   QEMU writes at exit, and makes up the header a replaying QEMU reads at start.
 */
#include "ftring.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_LOG "QEMUFT_SHIM_LOG"
#define ENV_RING "QEMUFT_SHIM_RING"

/* How many consumed bytes a replaying stream keeps to serve backward seeks: loading a snapshot
 * seeks back over the event QEMU has already looked ahead at (replay_post_load re-reads it). */
#define HISTORY_SIZE (64u * 1024u)

struct shim_stream {
    FILE *fp;                    /* what fopen returned to QEMU */
    int recording;               /* 1: QEMU writes (rr=record); 0: QEMU reads (rr=replay) */
    int eof, error;              /* feof/ferror of the interposed calls */
    uint64_t voff;               /* the file offset QEMU believes it is at */
    uint8_t header[FTRING_LOG_HEADER_SIZE]; /* written by QEMU (record) or made up (replay) */
    unsigned header_written;     /* bit i: QEMU wrote header byte i */
    uint8_t history[HISTORY_SIZE]; /* replay: the last consumed bytes, by ring position */
    int eof_reported;
};

static struct {
    const char *log;             /* QEMUFT_SHIM_LOG */
    const char *ring_path;       /* QEMUFT_SHIM_RING */
    struct ftring ring;
    int attached;
    int opened;                  /* the log has been opened once */
    struct shim_stream *stream;
} shim;

static FILE *(*real_fopen64)(const char *, const char *);

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One write: the line stays whole even if QEMU's threads write to stderr too. */
    char out[1100];
    int n = snprintf(out, sizeof(out), "libftshim: %s\n", line);
    if (n > 0) {
        ssize_t ignored = write(STDERR_FILENO, out, (size_t)n < sizeof(out) ? (size_t)n
                                                                           : sizeof(out) - 1);
        (void)ignored;
    }
}

/* A failure QEMU must not run past: one line, then exit non-zero. _exit, because this may run
 * inside QEMU's atexit handler or with QEMU's threads running. */
__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    say("%s", line);
    _exit(EXIT_FAILURE);
}

static uint64_t stream_end(void)
{
    return shim.ring.h->base_offset + __atomic_load_n(&shim.ring.h->write_pos, __ATOMIC_RELAXED);
}

/* ---- record: QEMU writes ---------------------------------------------------------------- */

static ssize_t record_write(void *cookie, const char *buf, size_t n)
{
    struct shim_stream *s = cookie;
    size_t done = 0;
    while (done < n) {
        if (s->voff < FTRING_LOG_HEADER_SIZE) {
            /* The header: QEMU writes the version here at exit (replay_finish). */
            size_t k = FTRING_LOG_HEADER_SIZE - s->voff;
            if (k > n - done) {
                k = n - done;
            }
            memcpy(s->header + s->voff, buf + done, k);
            for (size_t i = 0; i < k; i++) {
                s->header_written |= 1u << (s->voff + i);
            }
            s->voff += k;
            done += k;
            continue;
        }
        uint64_t end = stream_end();
        if (s->voff != end) {
            say("QEMU wrote at offset %llu of its replay log %s, but the stream in ring %s ends at "
                "%llu: bytes already in the ring cannot be rewritten; the write fails",
                (unsigned long long)s->voff, shim.log, shim.ring_path, (unsigned long long)end);
            errno = ESPIPE;
            return done > 0 ? (ssize_t)done : -1;
        }
        if (ftring_write(&shim.ring, buf + done, n - done) < 0) {
            say("ring %s: the controller closed it while QEMU was recording; the replay log %s is "
                "lost from offset %llu on", shim.ring_path, shim.log,
                (unsigned long long)s->voff);
            errno = EPIPE;
            return done > 0 ? (ssize_t)done : -1;
        }
        s->voff += n - done;
        done = n;
    }
    return (ssize_t)n;
}

/* ---- replay: QEMU reads ----------------------------------------------------------------- */

_Static_assert((HISTORY_SIZE & (HISTORY_SIZE - 1)) == 0, "history size is a power of two");

static void remember(struct shim_stream *s, uint64_t pos, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->history[(pos + i) % HISTORY_SIZE] = b[i];
    }
}

/* Reads ring bytes at the read position into buf and the history; 0 at the end of the stream. */
static ssize_t consume(struct shim_stream *s, uint8_t *buf, size_t n)
{
    uint64_t pos = __atomic_load_n(&shim.ring.h->read_pos, __ATOMIC_RELAXED);
    ssize_t k = ftring_read(&shim.ring, buf, n);
    if (k > 0) {
        remember(s, pos, buf, (size_t)k);
    }
    return k;
}

static ssize_t replay_eof(struct shim_stream *s)
{
    if (!s->eof_reported) {
        s->eof_reported = 1;
        say("ring %s: the controller closed the stream at replay-log offset %llu; QEMU reading %s "
            "gets end of file", shim.ring_path, (unsigned long long)stream_end(), shim.log);
    }
    return 0;
}

static ssize_t replay_read(void *cookie, char *buf, size_t n)
{
    struct shim_stream *s = cookie;
    if (n == 0) {
        return 0;
    }
    if (s->voff < FTRING_LOG_HEADER_SIZE) {
        size_t k = FTRING_LOG_HEADER_SIZE - s->voff;
        if (k > n) {
            k = n;
        }
        memcpy(buf, s->header + s->voff, k);
        s->voff += k;
        return (ssize_t)k;
    }
    uint64_t want = s->voff - shim.ring.h->base_offset; /* ring position QEMU asks for */
    uint64_t rpos = __atomic_load_n(&shim.ring.h->read_pos, __ATOMIC_RELAXED);
    if (want < rpos) {
        if (rpos - want > HISTORY_SIZE) {
            say("QEMU seeked back to offset %llu of its replay log %s, but ring %s has moved on to "
                "%llu and keeps only the last %u bytes; the read fails",
                (unsigned long long)s->voff, shim.log, shim.ring_path,
                (unsigned long long)(rpos + shim.ring.h->base_offset), HISTORY_SIZE);
            errno = EINVAL;
            return -1;
        }
        size_t k = rpos - want < n ? (size_t)(rpos - want) : n;
        for (size_t i = 0; i < k; i++) {
            buf[i] = (char)s->history[(want + i) % HISTORY_SIZE];
        }
        s->voff += k;
        return (ssize_t)k;
    }
    while (want > rpos) {
        /* A forward seek (e.g. loading a snapshot taken later): consume what lies between. */
        uint8_t skip[4096];
        size_t k = want - rpos < sizeof(skip) ? (size_t)(want - rpos) : sizeof(skip);
        ssize_t got = consume(s, skip, k);
        if (got == 0) {
            return replay_eof(s);
        }
        rpos += (uint64_t)got;
    }
    ssize_t got = consume(s, (uint8_t *)buf, n);
    if (got == 0) {
        return replay_eof(s);
    }
    s->voff += (uint64_t)got;
    return got;
}

/* ---- both ------------------------------------------------------------------------------- */

static int stream_seek(void *cookie, off64_t *offset, int whence)
{
    struct shim_stream *s = cookie;
    int64_t target;
    switch (whence) {
    case SEEK_SET:
        target = *offset;
        break;
    case SEEK_CUR:
        target = (int64_t)s->voff + *offset;
        break;
    case SEEK_END:
        if (!s->recording) {
            say("QEMU asked for the end of its replay log %s, which a stream being replayed does "
                "not have yet; the seek fails", shim.log);
            errno = EINVAL;
            return -1;
        }
        target = (int64_t)stream_end() + *offset;
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (target < 0 || (s->recording && (uint64_t)target > stream_end())) {
        say("QEMU seeked to offset %lld of its replay log %s, outside the stream (0..%llu so far) "
            "in ring %s; the seek fails", (long long)target, shim.log,
            (unsigned long long)stream_end(), shim.ring_path);
        errno = EINVAL;
        return -1;
    }
    s->voff = (uint64_t)target;
    *offset = target;
    return 0;
}

static int stream_close(void *cookie)
{
    struct shim_stream *s = cookie;
    if (s->recording) {
        if (s->header_written & 0xf) {
            uint32_t v = (uint32_t)s->header[0] << 24 | (uint32_t)s->header[1] << 16
                         | (uint32_t)s->header[2] << 8 | s->header[3];
            __atomic_store_n(&shim.ring.h->log_version_written, v, __ATOMIC_RELEASE);
            if (v != FTRING_REPLAY_VERSION) {
                ftring_close_writer(&shim.ring);
                die("QEMU finished its replay log %s with version 0x%08x, but ring %s carries "
                    "0x%08x (QEMU 7.2): this QEMU's log cannot be shipped or replayed by qemu-ft",
                    shim.log, v, shim.ring_path, FTRING_REPLAY_VERSION);
            }
        }
        ftring_close_writer(&shim.ring);
    } else {
        ftring_close_reader(&shim.ring);
    }
    __atomic_store_n(&shim.stream, NULL, __ATOMIC_RELEASE);
    free(s);
    return 0;
}

/* ---- the interposed stdio calls --------------------------------------------------------- */

static struct {
    int (*putc)(int, FILE *);
    size_t (*fwrite)(const void *, size_t, size_t, FILE *);
    int (*getc)(FILE *);
    size_t (*fread)(void *, size_t, size_t, FILE *);
    int (*fseek)(FILE *, long, int);
    long (*ftell)(FILE *);
    int (*feof)(FILE *);
    int (*ferror)(FILE *);
} real;

static void *libc_symbol(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
        die("cannot find libc's %s: %s", name, dlerror());
    }
    return p;
}

static void resolve_real(void)
{
    real.putc = libc_symbol("putc");
    real.fwrite = libc_symbol("fwrite");
    real.getc = libc_symbol("getc");
    real.fread = libc_symbol("fread");
    real.fseek = libc_symbol("fseek");
    real.ftell = libc_symbol("ftell");
    real.feof = libc_symbol("feof");
    real.ferror = libc_symbol("ferror");
}

/* Resolved in the constructor; lazily only if another library's constructor calls first. */
#define REAL(fn) (real.fn != NULL ? real.fn : (resolve_real(), real.fn))

/* The functions QEMU must find in the shim; everything else stays hidden (-fvisibility=hidden). */
#define EXPORT __attribute__((visibility("default")))

/* The shim's stream if f is its FILE*, else NULL. QEMU calls these under its replay mutex. */
static inline struct shim_stream *ours(FILE *f)
{
    struct shim_stream *s = __atomic_load_n(&shim.stream, __ATOMIC_ACQUIRE);
    return s != NULL && s->fp == f ? s : NULL;
}

static inline uint64_t ring_offset(uint64_t pos)
{
    return FTRING_LOG_HEADER_SIZE + pos;
}

EXPORT int putc(int c, FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(putc)(c, f);
    }
    uint8_t b = (uint8_t)c;
    if (s->recording) {
        /* At the end of the stream: the one-byte path; otherwise (the header, a full ring, a
         * misplaced write) the general one. */
        if (s->voff == ring_offset(__atomic_load_n(&shim.ring.h->write_pos, __ATOMIC_RELAXED))
            && ftring_try_put(&shim.ring, b)) {
            s->voff++;
            return b;
        }
        if (record_write(s, (const char *)&b, 1) == 1) {
            return b;
        }
    } else {
        errno = EBADF;
    }
    s->error = 1;
    return EOF;
}

EXPORT size_t fwrite(const void *buf, size_t size, size_t n, FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(fwrite)(buf, size, n, f);
    }
    if (size == 0 || n == 0) {
        return 0;
    }
    if (!s->recording) {
        errno = EBADF;
        s->error = 1;
        return 0;
    }
    size_t total = size * n, done = 0;
    while (done < total) {
        ssize_t k = record_write(s, (const char *)buf + done, total - done);
        if (k <= 0) {
            s->error = 1;
            break;
        }
        done += (size_t)k;
    }
    return done / size;
}

EXPORT int getc(FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(getc)(f);
    }
    if (s->recording) {
        errno = EBADF;
        s->error = 1;
        return EOF;
    }
    uint64_t rpos = __atomic_load_n(&shim.ring.h->read_pos, __ATOMIC_RELAXED);
    if (s->voff == ring_offset(rpos)) {
        int b = ftring_try_get(&shim.ring);
        if (b >= 0) {
            s->history[rpos % HISTORY_SIZE] = (uint8_t)b;
            s->voff++;
            return b;
        }
    }
    uint8_t b;
    ssize_t k = replay_read(s, (char *)&b, 1);
    if (k == 1) {
        return b;
    }
    if (k == 0) {
        s->eof = 1;
    } else {
        s->error = 1;
    }
    return EOF;
}

EXPORT size_t fread(void *buf, size_t size, size_t n, FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(fread)(buf, size, n, f);
    }
    if (size == 0 || n == 0) {
        return 0;
    }
    if (s->recording) {
        errno = EBADF;
        s->error = 1;
        return 0;
    }
    size_t total = size * n, done = 0;
    while (done < total) {
        ssize_t k = replay_read(s, (char *)buf + done, total - done);
        if (k <= 0) {
            if (k == 0) {
                s->eof = 1;
            } else {
                s->error = 1;
            }
            break;
        }
        done += (size_t)k;
    }
    return done / size;
}

EXPORT int fseek(FILE *f, long offset, int whence)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(fseek)(f, offset, whence);
    }
    off64_t o = offset;
    if (stream_seek(s, &o, whence) != 0) {
        return -1;
    }
    s->eof = 0; /* as a successful fseek does */
    return 0;
}

EXPORT long ftell(FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(ftell)(f);
    }
    return (long)s->voff;
}

EXPORT int feof(FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(feof)(f);
    }
    return s->eof || REAL(feof)(f);
}

EXPORT int ferror(FILE *f)
{
    struct shim_stream *s = ours(f);
    if (s == NULL) {
        return REAL(ferror)(f);
    }
    return s->error || REAL(ferror)(f);
}

/* ---- setup -------------------------------------------------------------------------------- */

static void attach_ring(void)
{
    if (shim.attached) {
        return;
    }
    char err[FTRING_ERR_MAX];
    /* Registered before mapping: ftring_attach copies the flag into the ring handle. */
    ftring_register_membarrier();
    if (ftring_attach(&shim.ring, shim.ring_path, err) != 0) {
        die("%s (%s=%s, QEMU's replay log %s)", err, ENV_RING, shim.ring_path, shim.log);
    }
    shim.attached = 1;
}

static int alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

static FILE *open_stream(const char *mode)
{
    int recording;
    if (mode[0] == 'w') {
        recording = 1;
    } else if (mode[0] == 'r' && strchr(mode, '+') == NULL) {
        recording = 0;
    } else {
        die("QEMU opened its replay log %s with mode \"%s\"; libftshim knows QEMU 7.2's \"wb\" "
            "(record) and \"rb\" (replay) only", shim.log, mode);
    }
    if (shim.opened) {
        die("QEMU opened its replay log %s a second time; ring %s carries one stream per QEMU",
            shim.log, shim.ring_path);
    }
    attach_ring();
    struct ftring_header *h = shim.ring.h;
    pid_t holder = 0;
    if (recording) {
        if (ftring_claim_writer(&shim.ring, &holder) != 0) {
            die("ring %s already has a writer (pid %d%s); a recording QEMU needs a fresh ring of "
                "its own that the controller reads", shim.ring_path, (int)holder,
                alive(holder) ? "" : ", no longer running");
        }
        if (__atomic_load_n(&h->write_pos, __ATOMIC_ACQUIRE) != 0
            || __atomic_load_n(&h->writer_closed, __ATOMIC_ACQUIRE)) {
            die("ring %s already holds a stream (%llu bytes written%s); a recording QEMU needs a "
                "fresh ring", shim.ring_path, (unsigned long long)h->write_pos,
                h->writer_closed ? ", closed" : "");
        }
    } else {
        if (ftring_claim_reader(&shim.ring, &holder) != 0) {
            die("ring %s already has a reader (pid %d%s); a replaying QEMU needs a fresh ring of "
                "its own that the controller writes", shim.ring_path, (int)holder,
                alive(holder) ? "" : ", no longer running");
        }
        if (__atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE) != 0
            || __atomic_load_n(&h->reader_closed, __ATOMIC_ACQUIRE)) {
            die("ring %s has been read from already (%llu bytes); a replaying QEMU needs the whole "
                "stream from its start", shim.ring_path, (unsigned long long)h->read_pos);
        }
    }
    struct shim_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        die("out of memory opening ring %s", shim.ring_path);
    }
    s->recording = recording;
    if (!recording) {
        uint32_t v = h->replay_version;
        s->header[0] = (uint8_t)(v >> 24);
        s->header[1] = (uint8_t)(v >> 16);
        s->header[2] = (uint8_t)(v >> 8);
        s->header[3] = (uint8_t)v;
    }
    cookie_io_functions_t io = {
        .read = recording ? NULL : replay_read,
        .write = recording ? record_write : NULL,
        .seek = stream_seek,
        .close = stream_close,
    };
    FILE *f = fopencookie(s, recording ? "w" : "r", io);
    if (f == NULL) {
        die("fopencookie failed for ring %s: %s", shim.ring_path, strerror(errno));
    }
    /* Unbuffered: a byte QEMU logs is in the ring when putc returns (see the top comment). */
    if (setvbuf(f, NULL, _IONBF, 0) != 0) {
        die("cannot make the stream of ring %s unbuffered", shim.ring_path);
    }
    shim.opened = 1;
    s->fp = f;
    __atomic_store_n(&shim.stream, s, __ATOMIC_RELEASE);
    say("QEMU's replay log %s is ring %s (%s, %llu bytes)", shim.log, shim.ring_path,
        recording ? "record: QEMU writes" : "replay: QEMU reads",
        (unsigned long long)h->capacity);
    return f;
}

static FILE *intercept(const char *path, const char *mode)
{
    if (real_fopen64 == NULL) {
        real_fopen64 = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen64");
        if (real_fopen64 == NULL) {
            die("cannot find libc's fopen64: %s", dlerror());
        }
    }
    if (shim.log != NULL && path != NULL && strcmp(path, shim.log) == 0) {
        return open_stream(mode);
    }
    return real_fopen64(path, mode);
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
    return intercept(path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
    return intercept(path, mode);
}

/* QEMU option values escape a comma by doubling it. Returns the malloc'ed value of key=... in an
 * option string such as "shift=auto,rr=record,rrfile=/x", or NULL. */
static char *option_value(const char *opts, const char *key)
{
    size_t klen = strlen(key);
    const char *p = opts;
    while (*p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            char *out = malloc(strlen(v) + 1);
            if (out == NULL) {
                return NULL;
            }
            size_t o = 0;
            while (*v) {
                if (v[0] == ',') {
                    if (v[1] != ',') {
                        break;
                    }
                    v++;
                }
                out[o++] = *v++;
            }
            out[o] = '\0';
            return out;
        }
        /* to the next unescaped comma */
        while (*p) {
            if (p[0] == ',' && p[1] == ',') {
                p += 2;
            } else if (*p++ == ',') {
                break;
            }
        }
    }
    return NULL;
}

/* In QEMU, the log QEMU will open must be the one the shim intercepts: a mismatch would leave
 * the ring empty and the controller waiting, so it is checked before QEMU starts. */
static void check_qemu_command_line(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        die("cannot read /proc/self/cmdline to check QEMU's rrfile: %s", strerror(errno));
    }
    size_t cap = 64 * 1024, len = 0;
    char *args = malloc(cap);
    ssize_t n;
    while (args != NULL && (n = read(fd, args + len, cap - 1 - len)) > 0) {
        len += (size_t)n;
        if (len == cap - 1) {
            char *bigger = realloc(args, cap * 2);
            if (bigger == NULL) {
                free(args);
            }
            args = bigger;
            cap *= 2;
        }
    }
    close(fd);
    if (args == NULL) {
        die("out of memory reading QEMU's command line");
    }
    args[len] = '\0';
    char *rrfile = NULL;
    for (size_t i = 0; i < len; i += strlen(args + i) + 1) {
        const char *a = args + i;
        if (strcmp(a, "-icount") == 0 || strcmp(a, "--icount") == 0) {
            size_t next = i + strlen(a) + 1;
            if (next < len) {
                free(rrfile);
                rrfile = option_value(args + next, "rrfile");
            }
        }
    }
    if (rrfile == NULL) {
        free(args);
        die("QEMU has no rrfile= in its -icount option, so it neither records nor replays: "
            "%s=%s would never be used (start QEMU with -icount ...,rr=record|replay,rrfile=%s)",
            ENV_LOG, shim.log, shim.log);
    }
    if (strcmp(rrfile, shim.log) != 0) {
        die("QEMU's rrfile is '%s' but %s is '%s': QEMU would write a plain file and ring %s "
            "would stay empty (pass the same path to both)", rrfile, ENV_LOG, shim.log,
            shim.ring_path);
    }
    free(rrfile);
    free(args);
}

static int is_qemu_system(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return 0;
    }
    exe[n] = '\0';
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    return strncmp(base, "qemu-system-", 12) == 0;
}

/* QEMU's children (it starts none in qemu-ft's configuration) must not load the shim again. */
static void drop_from_ld_preload(void)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre != NULL && strchr(pre, ' ') == NULL && strchr(pre, ':') == NULL
        && strstr(pre, "libftshim") != NULL) {
        unsetenv("LD_PRELOAD");
    }
}

__attribute__((constructor))
static void shim_init(void)
{
    /* Resolved now, while QEMU has one thread, not lazily in the vCPU thread's first putc. */
    resolve_real();
    shim.log = getenv(ENV_LOG);
    shim.ring_path = getenv(ENV_RING);
    int qemu = is_qemu_system();
    if (shim.log == NULL || shim.log[0] == '\0' || shim.ring_path == NULL
        || shim.ring_path[0] == '\0') {
        if (!qemu) {
            /* Loaded into something else with no configuration: stay out of the way. */
            shim.log = NULL;
            return;
        }
        die("preloaded into QEMU without its configuration: set %s to the path QEMU gets as "
            "rrfile and %s to the ring file the controller created (now %s=%s, %s=%s)", ENV_LOG,
            ENV_RING, ENV_LOG, shim.log ? shim.log : "(unset)", ENV_RING,
            shim.ring_path ? shim.ring_path : "(unset)");
    }
    if (qemu) {
        check_qemu_command_line();
        attach_ring(); /* a bad ring stops QEMU before it does anything */
        drop_from_ld_preload();
    }
}
