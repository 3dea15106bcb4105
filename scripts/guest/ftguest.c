/*
 * ftguest: qemu-ft's programs inside the test guest, one static binary.
 *
 *   ftguest serve [-p PORT] [-d FILE]   the test service (TCP, default port 7000)
 *   ftguest work MIB [IDLE_MS]          the CPU-bound benchmark workload
 *   ftguest diskwrite DIR MIB           the disk workload (see below)
 *
 * The service keeps an ordered, append-only sequence of client operations. Requests are lines:
 *
 *   ADD <client-id> <op-no> <amount>  apply once; answer "OK <seq> <total>". A repeated
 *                                     <client-id> <op-no> is answered again with the answer it
 *                                     got the first time, never applied twice.
 *   GET                               "TOTAL <total> SEQ <last-seq> CLIENTS <n>" followed by
 *                                     " <client-id>:<last-op-no>:<last-seq>" per client.
 *   PING                              "PONG" (no state; for latency measurements)
 *   SEND <bytes>                      <bytes> bytes of payload, then "\nEND\n" (no state; for
 *                                     throughput measurements from the guest)
 *   SHUTDOWN                          "BYE", then the service exits (init powers the guest off)
 *
 * Anything else is answered "ERR <reason>" and changes nothing. With -d FILE (persistent mode)
 * every applied operation is appended to FILE and fsync'ed before it is answered, and the file
 * is replayed at start, so an answered operation survives a crash of the guest.
 *
 * The workload generates MIB mebibytes of pseudo-random data in memory, checksums them, prints
 * the checksum and the guest's elapsed time (CLOCK_MONOTONIC), and returns. Progress lines
 * every 32 MiB carry the guest's clock, so clock continuity can be checked mid-run. With IDLE_MS
 * it sleeps that long after each progress line: the guest idles mid-run (QEMU then warps its
 * clock over the idle time, which a go-live must not cut in half; docs/go-live.md).
 *
 * The disk workload counts its runs in DIR/runs (read, add one, write, fsync: a run that starts
 * from a restored snapshot counts the same number again), then writes MIB MiB of pseudo-random
 * data to DIR/blob in 1 MiB writes and fsyncs it, timing that (CLOCK_MONOTONIC), drops the page
 * cache, reads the file back and prints its checksum.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 1024
#define MAX_ID 64
#define MAX_CLIENTS 256
#define OUT_CAP 65536

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ftguest: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---------------------------------------------------------------- the operation sequence */

struct op {
    char client[MAX_ID + 1];
    uint64_t op_no;
    uint64_t seq;
    int64_t total; /* the total right after this operation: its answer */
};

struct client_state {
    char id[MAX_ID + 1];
    uint64_t last_op_no;
    uint64_t last_seq;
};

static struct op *ops;          /* ops[i].seq == i + 1 */
static size_t n_ops, cap_ops;
static size_t *op_index;        /* open addressing over ops, entries are index + 1 */
static size_t index_cap;
static struct client_state *clients;
static size_t n_clients, cap_clients;
static int64_t total;
static int data_fd = -1;

static uint64_t hash_key(const char *client, uint64_t op_no)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = client; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    }
    h ^= op_no + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static void index_put(size_t i)
{
    size_t slot = hash_key(ops[i].client, ops[i].op_no) & (index_cap - 1);
    while (op_index[slot]) {
        slot = (slot + 1) & (index_cap - 1);
    }
    op_index[slot] = i + 1;
}

static struct op *find_op(const char *client, uint64_t op_no)
{
    if (!index_cap) {
        return NULL;
    }
    size_t slot = hash_key(client, op_no) & (index_cap - 1);
    while (op_index[slot]) {
        struct op *o = &ops[op_index[slot] - 1];
        if (o->op_no == op_no && strcmp(o->client, client) == 0) {
            return o;
        }
        slot = (slot + 1) & (index_cap - 1);
    }
    return NULL;
}

static void *grow(void *p, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 64;
    void *q = realloc(p, n * elem);
    if (!q) {
        die("out of memory");
    }
    *cap = n;
    return q;
}

static struct client_state *client_for(const char *id)
{
    for (size_t i = 0; i < n_clients; i++) {
        if (strcmp(clients[i].id, id) == 0) {
            return &clients[i];
        }
    }
    if (n_clients == cap_clients) {
        clients = grow(clients, &cap_clients, sizeof *clients);
    }
    struct client_state *c = &clients[n_clients++];
    memset(c, 0, sizeof *c);
    strcpy(c->id, id);
    return c;
}

/* Appends an operation to the in-memory sequence (not to the data file). */
static struct op *append_op(const char *client, uint64_t op_no, int64_t amount)
{
    if (n_ops == cap_ops) {
        ops = grow(ops, &cap_ops, sizeof *ops);
    }
    if ((n_ops + 1) * 2 > index_cap) {
        free(op_index);
        index_cap = index_cap ? index_cap * 2 : 256;
        op_index = calloc(index_cap, sizeof *op_index);
        if (!op_index) {
            die("out of memory");
        }
        for (size_t i = 0; i < n_ops; i++) {
            index_put(i);
        }
    }
    total += amount;
    struct op *o = &ops[n_ops];
    strcpy(o->client, client);
    o->op_no = op_no;
    o->seq = n_ops + 1;
    o->total = total;
    index_put(n_ops++);
    struct client_state *c = client_for(client);
    c->last_op_no = op_no;
    c->last_seq = o->seq;
    return o;
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID) {
        return false;
    }
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
              || ch == '-' || ch == '_' || ch == '.')) {
            return false;
        }
    }
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+') {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!*s) {
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

/* ---------------------------------------------------------------- persistent mode */

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("writing the data file: %s", strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads FILE's records back into memory. A torn last record (crash mid-append) is cut off. */
static void load_data(const char *path)
{
    data_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (data_fd < 0) {
        die("opening data file %s: %s", path, strerror(errno));
    }
    FILE *f = fdopen(dup(data_fd), "r");
    if (!f) {
        die("reading data file %s: %s", path, strerror(errno));
    }
    char line[MAX_LINE + 2];
    off_t good = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            break; /* torn record */
        }
        char client[MAX_ID + 2], op_s[32], amount_s[32];
        uint64_t op_no;
        int64_t amount;
        if (sscanf(line, "ADD %65s %31s %31s", client, op_s, amount_s) != 3 || !valid_id(client)
            || !parse_u64(op_s, &op_no) || !parse_i64(amount_s, &amount)) {
            die("data file %s: record at byte %lld is not 'ADD <client> <op> <amount>'", path,
                (long long)good);
        }
        append_op(client, op_no, amount);
        good += (off_t)len;
    }
    fclose(f);
    if (ftruncate(data_fd, good) != 0) {
        die("truncating torn record in %s: %s", path, strerror(errno));
    }
}

static void persist(const char *client, uint64_t op_no, int64_t amount)
{
    if (data_fd < 0) {
        return;
    }
    char rec[MAX_LINE];
    int n = snprintf(rec, sizeof rec, "ADD %s %" PRIu64 " %" PRId64 "\n", client, op_no, amount);
    write_all(data_fd, rec, (size_t)n);
    if (fsync(data_fd) != 0) {
        die("fsync of the data file: %s", strerror(errno));
    }
}

/* ---------------------------------------------------------------- the server */

struct conn {
    int fd;
    char in[MAX_LINE + 1];
    size_t in_len;
    char *out;
    size_t out_len;
    uint64_t bulk_left; /* SEND payload still to generate */
    bool closing;
};

static struct conn conns[MAX_CLIENTS];
static bool shutting_down;

static void reply(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->out + c->out_len, OUT_CAP - c->out_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= OUT_CAP - c->out_len) {
        c->closing = true; /* a client that never reads its answers is dropped */
        return;
    }
    c->out_len += (size_t)n;
}

static void reply_get(struct conn *c)
{
    uint64_t last_seq = n_ops ? ops[n_ops - 1].seq : 0;
    reply(c, "TOTAL %" PRId64 " SEQ %" PRIu64 " CLIENTS %zu", total, last_seq, n_clients);
    for (size_t i = 0; i < n_clients; i++) {
        reply(c, " %s:%" PRIu64 ":%" PRIu64, clients[i].id, clients[i].last_op_no,
              clients[i].last_seq);
    }
    reply(c, "\n");
}

static void handle_line(struct conn *c, char *line)
{
    char *argv[5];
    int argc = 0;
    for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
        if (argc == 5) {
            reply(c, "ERR too many words\n");
            return;
        }
        argv[argc++] = tok;
    }
    if (argc == 0) {
        reply(c, "ERR empty request\n");
    } else if (strcmp(argv[0], "ADD") == 0) {
        uint64_t op_no;
        int64_t amount;
        if (argc != 4) {
            reply(c, "ERR usage: ADD <client-id> <op-no> <amount>\n");
        } else if (!valid_id(argv[1])) {
            reply(c, "ERR client-id must be 1-%d of [A-Za-z0-9._-]\n", MAX_ID);
        } else if (!parse_u64(argv[2], &op_no)) {
            reply(c, "ERR op-no must be an unsigned integer\n");
        } else if (!parse_i64(argv[3], &amount)) {
            reply(c, "ERR amount must be an integer\n");
        } else {
            struct op *o = find_op(argv[1], op_no);
            if (!o) {
                persist(argv[1], op_no, amount);
                o = append_op(argv[1], op_no, amount);
            }
            reply(c, "OK %" PRIu64 " %" PRId64 "\n", o->seq, o->total);
        }
    } else if (strcmp(argv[0], "GET") == 0 && argc == 1) {
        reply_get(c);
    } else if (strcmp(argv[0], "PING") == 0 && argc == 1) {
        reply(c, "PONG\n");
    } else if (strcmp(argv[0], "SEND") == 0 && argc == 2) {
        uint64_t n;
        if (!parse_u64(argv[1], &n) || n > (1ULL << 40)) {
            reply(c, "ERR usage: SEND <bytes> (at most 1 TiB)\n");
        } else {
            c->bulk_left = n;
        }
    } else if (strcmp(argv[0], "SHUTDOWN") == 0 && argc == 1) {
        reply(c, "BYE\n");
        shutting_down = true;
    } else {
        reply(c, "ERR unknown request (ADD, GET, PING, SEND, SHUTDOWN)\n");
    }
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void conn_read(struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, MAX_LINE - c->in_len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        c->closing = true;
        return;
    }
    c->in_len += (size_t)n;
    char *start = c->in;
    char *nl;
    while (!c->closing && (nl = memchr(start, '\n', c->in_len - (size_t)(start - c->in)))) {
        *nl = '\0';
        handle_line(c, start);
        start = nl + 1;
    }
    c->in_len -= (size_t)(start - c->in);
    memmove(c->in, start, c->in_len);
    if (c->in_len == MAX_LINE) {
        reply(c, "ERR line longer than %d bytes\n", MAX_LINE);
        c->closing = true;
    }
}

/* Tops up the output buffer with SEND payload: generated as the socket drains, never all at once. */
static void fill_bulk(struct conn *c)
{
    if (c->bulk_left == 0 || c->out_len > OUT_CAP / 2) {
        return;
    }
    size_t room = OUT_CAP - c->out_len - 8;
    size_t n = c->bulk_left < room ? (size_t)c->bulk_left : room;
    memset(c->out + c->out_len, 'x', n);
    c->out_len += n;
    c->bulk_left -= n;
    if (c->bulk_left == 0) {
        memcpy(c->out + c->out_len, "\nEND\n", 5);
        c->out_len += 5;
    }
}

static void conn_write(struct conn *c)
{
    fill_bulk(c);
    ssize_t n = write(c->fd, c->out, c->out_len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n < 0) {
        c->closing = true;
        c->out_len = 0;
        return;
    }
    memmove(c->out, c->out + n, c->out_len - (size_t)n);
    c->out_len -= (size_t)n;
}

static int serve(int port, const char *data)
{
    signal(SIGPIPE, SIG_IGN);
    if (data) {
        load_data(data);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 64) != 0) {
        die("listening on port %d: %s", port, strerror(errno));
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        conns[i].fd = -1;
    }
    printf("QEMUFT-SERVICE-UP port=%d ops=%zu total=%" PRId64 "%s\n", port, n_ops, total,
           data ? " persistent" : "");
    fflush(stdout);

    struct pollfd pfd[MAX_CLIENTS + 1];
    for (;;) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (conns[i].fd >= 0) {
                short ev = (conns[i].out_len || conns[i].bulk_left) ? POLLOUT
                                                                    : (conns[i].closing ? 0 : POLLIN);
                pfd[n++] = (struct pollfd){.fd = conns[i].fd, .events = ev};
            }
        }
        if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR) {
            die("poll: %s", strerror(errno));
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int slot = -1;
                for (int i = 0; i < MAX_CLIENTS && slot < 0; i++) {
                    if (conns[i].fd < 0) {
                        slot = i;
                    }
                }
                if (slot < 0 || !(conns[slot].out = malloc(OUT_CAP))) {
                    static const char busy[] = "ERR too many connections\n";
                    if (write(fd, busy, sizeof busy - 1) < 0) {
                        /* the client is gone or slow; closing is all that is left */
                    }
                    close(fd);
                } else {
                    conns[slot].fd = fd;
                }
            }
        }
        for (int i = 1, k = 0; i < n; i++) {
            while (conns[k].fd != pfd[i].fd) {
                k++;
            }
            struct conn *c = &conns[k];
            if (pfd[i].revents & POLLOUT) {
                conn_write(c);
            } else if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                conn_read(c);
            }
            if (c->closing && c->out_len == 0 && c->bulk_left == 0) {
                conn_close(c);
            }
        }
        if (shutting_down) {
            /* Flush the answers (BYE at least) before going away. */
            for (int i = 0; i < MAX_CLIENTS; i++) {
                if (conns[i].fd >= 0) {
                    int fl = fcntl(conns[i].fd, F_GETFL);
                    fcntl(conns[i].fd, F_SETFL, fl & ~O_NONBLOCK);
                    while (conns[i].out_len && !conns[i].closing) {
                        conn_write(&conns[i]);
                    }
                    conn_close(&conns[i]);
                }
            }
            printf("QEMUFT-SERVICE-DOWN ops=%zu total=%" PRId64 "\n", n_ops, total);
            fflush(stdout);
            return 0;
        }
    }
}

/* ---------------------------------------------------------------- the workload */

static int work(uint64_t mib, uint64_t idle_ms)
{
    enum { WORDS = (1 << 20) / sizeof(uint64_t) };
    static uint64_t buf[WORDS];
    uint64_t x = 0x9e3779b97f4a7c15ULL, sum = 0xcbf29ce484222325ULL;
    int64_t t0 = now_ns();
    for (uint64_t m = 1; m <= mib; m++) {
        for (size_t i = 0; i < WORDS; i++) { /* xorshift64* fills the MiB ... */
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            buf[i] = x * 0x2545f4914f6cdd1dULL;
        }
        for (size_t i = 0; i < WORDS; i++) { /* ... and a multiplicative hash sums it */
            sum = (sum ^ buf[i]) * 0x100000001b3ULL;
            sum ^= sum >> 29;
        }
        if (m % 32 == 0 && m != mib) {
            printf("QEMUFT-WORK-PROGRESS mib=%" PRIu64 " elapsed_ms=%.3f\n", m,
                   (double)(now_ns() - t0) / 1e6);
            fflush(stdout);
            if (idle_ms > 0) {
                struct timespec idle = {(time_t)(idle_ms / 1000), (long)(idle_ms % 1000) * 1000000L};
                while (nanosleep(&idle, &idle) != 0 && errno == EINTR) {
                }
            }
        }
    }
    printf("QEMUFT-WORK-DONE mib=%" PRIu64 " checksum=%016" PRIx64 " elapsed_ms=%.3f\n", mib, sum,
           (double)(now_ns() - t0) / 1e6);
    fflush(stdout);
    return 0;
}

/* ---------------------------------------------------------------- the disk workload */

static int diskwrite(const char *dir, uint64_t mib)
{
    enum { WORDS = (1 << 20) / sizeof(uint64_t) };
    static uint64_t buf[WORDS];
    char path[512];

    snprintf(path, sizeof path, "%s/runs", dir);
    long runs = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &runs) != 1) {
            runs = 0;
        }
        fclose(f);
    }
    runs++;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        die("diskwrite: open %s: %s", path, strerror(errno));
    }
    char num[32];
    int n = snprintf(num, sizeof num, "%ld\n", runs);
    write_all(fd, num, (size_t)n);
    if (fsync(fd) != 0 || close(fd) != 0) {
        die("diskwrite: fsync %s: %s", path, strerror(errno));
    }
    printf("QEMUFT-DISKWRITE-RUN run=%ld\n", runs);
    fflush(stdout);

    snprintf(path, sizeof path, "%s/blob", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        die("diskwrite: open %s: %s", path, strerror(errno));
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int64_t t0 = now_ns();
    for (uint64_t m = 0; m < mib; m++) {
        for (size_t i = 0; i < WORDS; i++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            buf[i] = x * 0x2545f4914f6cdd1dULL;
        }
        write_all(fd, (const char *)buf, sizeof buf);
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        die("diskwrite: fsync %s: %s", path, strerror(errno));
    }
    double write_ms = (double)(now_ns() - t0) / 1e6;

    int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (dc >= 0) {
        write_all(dc, "3\n", 2);
        close(dc);
    }
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        die("diskwrite: open %s: %s", path, strerror(errno));
    }
    uint64_t sum = 0xcbf29ce484222325ULL;
    ssize_t got;
    uint64_t total = 0;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        for (size_t i = 0; i < (size_t)got / sizeof(uint64_t); i++) {
            sum = (sum ^ buf[i]) * 0x100000001b3ULL;
            sum ^= sum >> 29;
        }
        total += (uint64_t)got;
    }
    if (got < 0) {
        die("diskwrite: read %s: %s", path, strerror(errno));
    }
    close(fd);
    if (total != mib << 20) {
        die("diskwrite: read back %" PRIu64 " bytes of %s, wrote %" PRIu64, total, path, mib << 20);
    }
    printf("QEMUFT-DISKWRITE-DONE run=%ld mib=%" PRIu64 " checksum=%016" PRIx64 " write_ms=%.3f\n",
           runs, mib, sum, write_ms);
    fflush(stdout);
    return 0;
}

/*
 * The idle waker: sleeps INTERVAL_US at a time, forever, at SCHED_IDLE priority. While the guest
 * idles, its wake-ups are the only thing that runs, and each one gives a recording QEMU a vCPU pass
 * in which it hands over queued input (frames): input waits at most INTERVAL_US instead of until
 * the next timer of a tickless guest.
 *
 * While anything else runs, the waker is starved: its timer still fires (a timer interrupt, i.e.
 * log events and a hand-off in the backup's replay), and it gets the CPU only at the next
 * scheduler tick. Then the guest is busy and needs no waking: the waker sleeps BUSY_SLEEP_NS with
 * BUSY_SLACK_NS of timer slack, so its expiry is served by the tick's own interrupt, and then
 * tries one short sleep again. A busy guest thus takes one waker interrupt per BUSY_SLEEP_NS or so
 * instead of one per tick (docs/rr-pace.md, "The guest's idle waker"). Starved means it waited on
 * the run queue (run_delay in /proc/thread-self/schedstat), not that it woke late: a QEMU whose
 * host is busy also wakes it late, in guest time, with the guest idle. While the guest idles after
 * a busy spell the waker may still be in its long sleep; the tick (the guest runs nohz=off) bounds
 * the wait meanwhile.
 */
#define WAKER_STARVED_NS 1000000LL   /* waited this long on the run queue: the guest is busy */
#define WAKER_BUSY_SLEEP_NS 20000000LL
#define WAKER_BUSY_SLACK_NS 4000000UL /* one tick at HZ=250 */

static void waker_slack(unsigned long ns)
{
    /* The kernel may defer a sleeper's wake-up by its timer slack (50 µs by default). */
    if (prctl(PR_SET_TIMERSLACK, ns, 0UL, 0UL, 0UL) != 0) {
        die("idle-waker: PR_SET_TIMERSLACK: %s", strerror(errno));
    }
}

static void waker_sleep(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000LL), .tv_nsec = (long)(ns % 1000000000LL)};
    int e = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    if (e != 0 && e != EINTR) {
        die("idle-waker: clock_nanosleep: %s", strerror(e));
    }
}

/* How long this thread has waited on a run queue, in ns (schedstat: runtime, run_delay, slices). */
static int64_t waker_run_delay(int fd)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    unsigned long long runtime, delay;
    if (n <= 0) {
        die("idle-waker: reading /proc/thread-self/schedstat: %s", n < 0 ? strerror(errno) : "empty");
    }
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &runtime, &delay) != 2) {
        die("idle-waker: /proc/thread-self/schedstat says '%s'", buf);
    }
    return (int64_t)delay;
}

static _Noreturn void idle_waker(uint64_t interval_us)
{
    struct sched_param sp = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0) {
        die("idle-waker: SCHED_IDLE: %s", strerror(errno));
    }
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        die("idle-waker: /proc/thread-self/schedstat: %s", strerror(errno));
    }
    int64_t interval = (int64_t)interval_us * 1000;
    waker_slack(1);
    for (;;) {
        int64_t waited = waker_run_delay(fd);
        waker_sleep(interval);
        if (waker_run_delay(fd) - waited > WAKER_STARVED_NS) {
            waker_slack(WAKER_BUSY_SLACK_NS);
            waker_sleep(WAKER_BUSY_SLEEP_NS);
            waker_slack(1);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        int port = 7000;
        const char *data = NULL;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
                port = atoi(argv[++i]);
            } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
                data = argv[++i];
            } else {
                die("serve: unknown argument '%s' (usage: ftguest serve [-p PORT] [-d FILE])",
                    argv[i]);
            }
        }
        return serve(port, data);
    }
    uint64_t mib;
    uint64_t idle_ms = 0;
    if ((argc == 3 || (argc == 4 && parse_u64(argv[3], &idle_ms))) && strcmp(argv[1], "work") == 0
        && parse_u64(argv[2], &mib) && mib > 0) {
        return work(mib, idle_ms);
    }
    if (argc == 4 && strcmp(argv[1], "diskwrite") == 0 && parse_u64(argv[3], &mib) && mib > 0) {
        return diskwrite(argv[2], mib);
    }
    uint64_t us;
    if (argc == 3 && strcmp(argv[1], "idle-waker") == 0 && parse_u64(argv[2], &us) && us > 0) {
        idle_waker(us);
    }
    die("usage: ftguest serve [-p PORT] [-d FILE] | ftguest work MIB [IDLE_MS] | ftguest diskwrite DIR MIB"
        " | ftguest idle-waker INTERVAL_US");
    return 2;
}
