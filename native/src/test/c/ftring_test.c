/*
 * Unit tests of the ring in C (make check): threads and processes, wraparound, blocking when
 * full and empty, close in both directions, and attach refusing bad ring files.
 */
#include "ftring.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
static char dir[256];

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static uint8_t pattern(uint64_t p)
{
    return (uint8_t)((p * 7 + 3) & 0xff);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct job {
    const char *path;
    uint64_t total;
    uint64_t seed;
    int result;
};

/* Writes total pattern bytes in random pieces (1..3000 bytes), then closes the writer. */
static void *writer(void *arg)
{
    struct job *j = arg;
    struct ftring r;
    char err[FTRING_ERR_MAX];
    if (ftring_attach(&r, j->path, err) != 0) {
        fprintf(stderr, "writer: %s\n", err);
        j->result = -1;
        return NULL;
    }
    uint8_t buf[3000];
    uint64_t p = 0, s = j->seed;
    while (p < j->total) {
        size_t n = 1 + rnd(&s) % sizeof(buf);
        if (n > j->total - p) {
            n = (size_t)(j->total - p);
        }
        for (size_t i = 0; i < n; i++) {
            buf[i] = pattern(p + i);
        }
        if (ftring_write(&r, buf, n) != (ssize_t)n) {
            j->result = -2;
            break;
        }
        p += n;
    }
    ftring_close_writer(&r);
    ftring_detach(&r);
    return NULL;
}

/* Reads until the end of the stream in random pieces, checking the pattern; returns the count. */
static int64_t read_all(const char *path, uint64_t seed)
{
    struct ftring r;
    char err[FTRING_ERR_MAX];
    if (ftring_attach(&r, path, err) != 0) {
        fprintf(stderr, "reader: %s\n", err);
        return -1;
    }
    uint8_t buf[5000];
    uint64_t p = 0, s = seed;
    for (;;) {
        size_t n = 1 + rnd(&s) % sizeof(buf);
        ssize_t k = ftring_read(&r, buf, n);
        if (k == 0) {
            break;
        }
        for (ssize_t i = 0; i < k; i++) {
            if (buf[i] != pattern(p + (uint64_t)i)) {
                fprintf(stderr, "mismatch at %llu\n", (unsigned long long)(p + (uint64_t)i));
                ftring_detach(&r);
                return -2;
            }
        }
        p += (uint64_t)k;
    }
    ftring_detach(&r);
    return (int64_t)p;
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void test_threads_wraparound(void)
{
    char path[512];
    path_of(path, sizeof(path), "threads");
    struct ftring r;
    char err[FTRING_ERR_MAX];
    CHECK(ftring_create(&r, path, 4096, err) == 0, "%s", err);
    struct job j = {path, 20u << 20, 88172645463325252ull, 0};
    pthread_t t;
    pthread_create(&t, NULL, writer, &j);
    int64_t got = read_all(path, 1234567);
    pthread_join(t, NULL);
    CHECK(j.result == 0, "writer result %d", j.result);
    CHECK(got == (int64_t)j.total, "read %lld of %llu", (long long)got,
          (unsigned long long)j.total);
    CHECK(r.h->write_pos == j.total && r.h->read_pos == j.total, "positions %llu %llu",
          (unsigned long long)r.h->write_pos, (unsigned long long)r.h->read_pos);
    ftring_detach(&r);
    unlink(path);
}

static void test_processes(void)
{
    char path[512];
    path_of(path, sizeof(path), "procs");
    struct ftring r;
    char err[FTRING_ERR_MAX];
    CHECK(ftring_create(&r, path, 8192, err) == 0, "%s", err);
    ftring_detach(&r);
    pid_t child = fork();
    if (child == 0) {
        ftring_register_membarrier(); /* as in QEMU: the hot side publishes without a fence */
        struct job j = {path, 30u << 20, 42, 0};
        writer(&j);
        _exit(j.result == 0 ? 0 : 1);
    }
    int64_t got = read_all(path, 99);
    int status;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer process status %d", status);
    CHECK(got == 30 << 20, "read %lld", (long long)got);
    unlink(path);
}

/* The one-byte paths (QEMU's putc/getc) mixed with the blocking ones, as the shim mixes them. */
static void *mixed_writer(void *arg)
{
    struct job *j = arg;
    struct ftring r;
    char err[FTRING_ERR_MAX];
    if (ftring_attach(&r, j->path, err) != 0) {
        j->result = -1;
        return NULL;
    }
    uint8_t buf[700];
    uint64_t p = 0, s = j->seed;
    while (p < j->total) {
        if (rnd(&s) % 2) {
            size_t n = 1 + rnd(&s) % sizeof(buf);
            if (n > j->total - p) {
                n = (size_t)(j->total - p);
            }
            for (size_t i = 0; i < n; i++) {
                buf[i] = pattern(p + i);
            }
            if (ftring_write(&r, buf, n) < 0) {
                break; /* the reader gave up */
            }
            p += n;
        } else {
            for (int i = 0; i < 50 && p < j->total; i++, p++) {
                uint8_t b = pattern(p);
                if (!ftring_try_put(&r, b) && ftring_write(&r, &b, 1) < 0) {
                    p = j->total;
                }
            }
        }
    }
    ftring_close_writer(&r);
    ftring_detach(&r);
    return NULL;
}

static void test_one_byte_paths_mixed_with_blocking_ones(void)
{
    char path[512];
    path_of(path, sizeof(path), "mixed");
    struct ftring r;
    char err[FTRING_ERR_MAX];
    CHECK(ftring_create(&r, path, 4096, err) == 0, "%s", err);
    struct job j = {path, 4u << 20, 5, 0};
    pthread_t t;
    pthread_create(&t, NULL, mixed_writer, &j);
    uint64_t p = 0, s = 77;
    uint8_t buf[900];
    int ok = 1;
    for (;;) {
        if (rnd(&s) % 2) {
            ssize_t k = ftring_read(&r, buf, 1 + rnd(&s) % sizeof(buf));
            if (k == 0) {
                break;
            }
            for (ssize_t i = 0; i < k && ok; i++) {
                ok = buf[i] == pattern(p + (uint64_t)i);
            }
            p += (uint64_t)k;
        } else {
            int b = ftring_try_get(&r);
            if (b < 0) {
                uint8_t one;
                if (ftring_read(&r, &one, 1) == 0) {
                    break;
                }
                b = one;
            }
            ok = ok && b == pattern(p);
            p++;
        }
        CHECK(r.h->read_pos <= r.h->write_pos, "read %llu past write %llu",
              (unsigned long long)r.h->read_pos, (unsigned long long)r.h->write_pos);
        if (!ok || r.h->read_pos > r.h->write_pos) {
            break;
        }
    }
    if (!ok || p != j.total) {
        ftring_close_reader(&r); /* let the writer give up too */
    }
    pthread_join(t, NULL);
    CHECK(ok, "pattern mismatch near %llu", (unsigned long long)p);
    CHECK(p == j.total, "read %llu of %llu", (unsigned long long)p, (unsigned long long)j.total);
    ftring_detach(&r);
    unlink(path);
}

/* A 4 KiB ring file named after the test, mapped twice: w for the writer, rd for the reader. */
static void open_pair(char *path, size_t size, const char *name, struct ftring *w, struct ftring *rd)
{
    char err[FTRING_ERR_MAX];
    path_of(path, size, name);
    CHECK(ftring_create(w, path, 4096, err) == 0, "%s", err);
    CHECK(ftring_attach(rd, path, err) == 0, "%s", err);
}

static void close_pair(const char *path, struct ftring *w, struct ftring *rd)
{
    ftring_detach(w);
    ftring_detach(rd);
    unlink(path);
}

static void *close_reader_later(void *arg)
{
    struct ftring *r = arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ftring_close_reader(r);
    return NULL;
}

static void test_full_ring_blocks_until_reader_closes(void)
{
    char path[512];
    struct ftring w, rd;
    open_pair(path, sizeof(path), "full", &w, &rd);
    uint8_t buf[8192] = {0};
    pthread_t t;
    pthread_create(&t, NULL, close_reader_later, &rd);
    /* 4096 bytes fit; the rest blocks until the reader closes, then the write fails. */
    ssize_t n = ftring_write(&w, buf, sizeof(buf));
    pthread_join(t, NULL);
    CHECK(n == -1, "write into a full ring whose reader closed returned %zd", n);
    CHECK(w.h->write_pos == 4096, "write_pos %llu", (unsigned long long)w.h->write_pos);
    close_pair(path, &w, &rd);
}

struct held_writer {
    struct ftring *r;
    volatile int put_ok;  /* the one-byte path accepted a byte while held */
    volatile int written; /* bytes ftring_write finished */
};

static void *write_while_held(void *arg)
{
    struct held_writer *hw = arg;
    hw->put_ok = ftring_try_put(hw->r, 7);
    uint8_t b[100] = {0};
    hw->written = (int)ftring_write(hw->r, b, sizeof(b));
    return NULL;
}

static void test_hold_stops_the_writer_until_released(void)
{
    char path[512];
    struct ftring w, rd;
    open_pair(path, sizeof(path), "hold", &w, &rd);
    uint8_t b[10] = {0};
    CHECK(ftring_write(&w, b, 10) == 10, "write before the hold");
    ftring_hold_writer(&rd, 1);
    struct held_writer hw = {&w, -1, -1};
    pthread_t t;
    pthread_create(&t, NULL, write_while_held, &hw);
    struct timespec ts = {0, 150 * 1000 * 1000};
    nanosleep(&ts, NULL);
    /* The ring has room for 4086 more bytes, but nothing moves while the reader holds it. */
    CHECK(hw.put_ok == 0, "one-byte put while held returned %d", hw.put_ok);
    CHECK(hw.written == -1, "ftring_write finished (%d) while held", hw.written);
    CHECK(w.h->write_pos == 10, "write_pos %llu while held", (unsigned long long)w.h->write_pos);
    ftring_hold_writer(&rd, 0);
    pthread_join(t, NULL);
    CHECK(hw.written == 100, "write after the release returned %d", hw.written);
    CHECK(w.h->write_pos == 110, "write_pos %llu after the release", (unsigned long long)w.h->write_pos);
    /* A reader that closes while holding ends the hold: the write fails instead of sleeping. */
    ftring_hold_writer(&rd, 1);
    pthread_create(&t, NULL, close_reader_later, &rd);
    CHECK(ftring_write(&w, b, 10) == -1, "write held by a reader that then closed");
    pthread_join(t, NULL);
    close_pair(path, &w, &rd);
}

static void *close_writer_later(void *arg)
{
    struct ftring *r = arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint8_t b[3] = {1, 2, 3};
    ftring_write(r, b, 3);
    ftring_close_writer(r);
    return NULL;
}

static void test_empty_ring_blocks_then_end(void)
{
    char path[512];
    struct ftring w, rd;
    open_pair(path, sizeof(path), "empty", &w, &rd);
    pthread_t t;
    pthread_create(&t, NULL, close_writer_later, &w);
    uint8_t b[10];
    ssize_t k = ftring_read(&rd, b, sizeof(b));
    CHECK(k >= 1 && b[0] == 1, "first read %zd", k);
    while (k < 3) {
        ssize_t more = ftring_read(&rd, b + k, sizeof(b) - (size_t)k);
        CHECK(more > 0, "read after partial %zd", more);
        if (more <= 0) {
            break;
        }
        k += more;
    }
    CHECK(ftring_read(&rd, b, sizeof(b)) == 0, "read after the writer closed and drained");
    pthread_join(t, NULL);
    close_pair(path, &w, &rd);
}

static void expect_attach_error(const char *path, const char *needle)
{
    struct ftring r;
    char err[FTRING_ERR_MAX] = "";
    CHECK(ftring_attach(&r, path, err) != 0, "attach of %s should fail (%s)", path, needle);
    CHECK(strstr(err, needle) != NULL && strstr(err, path) != NULL,
          "message '%s' should name the file and say '%s'", err, needle);
}

static void test_attach_refuses_bad_rings(void)
{
    char path[512];
    path_of(path, sizeof(path), "bad");
    struct ftring r;
    char err[FTRING_ERR_MAX];
    expect_attach_error(path, "cannot open");

    CHECK(ftring_create(&r, path, 4096, err) == 0, "%s", err);
    r.h->magic = 0x1234;
    expect_attach_error(path, "not a qemu-ft ring");
    r.h->magic = FTRING_MAGIC;
    r.h->format = 7;
    expect_attach_error(path, "ring format 7");
    r.h->format = FTRING_FORMAT;
    r.h->replay_version = 0x00e0200b;
    expect_attach_error(path, "replay log version 0x00e0200b");
    r.h->replay_version = FTRING_REPLAY_VERSION;
    r.h->capacity = 8192;
    expect_attach_error(path, "capacity 8192 does not fit");
    r.h->capacity = 4096;
    r.h->write_pos = 5000;
    expect_attach_error(path, "inconsistent");
    r.h->write_pos = 0;
    CHECK(ftring_attach(&r, path, err) == 0, "restored header: %s", err);
    ftring_detach(&r);

    int fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(write(fd, "short", 5) == 5, "write");
    close(fd);
    expect_attach_error(path, "is not a qemu-ft ring");
    unlink(path);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/dev/shm/qemuft-ctest-%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", dir);
    if (system(cmd) != 0) {
        return 2;
    }
    test_threads_wraparound();
    test_processes();
    test_one_byte_paths_mixed_with_blocking_ones();
    test_full_ring_blocks_until_reader_closes();
    test_hold_stops_the_writer_until_released();
    test_empty_ring_blocks_then_end();
    test_attach_refuses_bad_rings();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        failures++;
    }
    if (failures) {
        fprintf(stderr, "ftring-test: %d failure(s)\n", failures);
        return 1;
    }
    printf("ftring-test: all passed\n");
    return 0;
}
