/*
 * Drives libftshim from outside, the way QEMU 7.2's replay/ code does: run it with
 * LD_PRELOAD=libftshim.so and QEMUFT_SHIM_LOG/QEMUFT_SHIM_RING set, and give it operations as
 * arguments. It makes exactly the stdio calls replay/ makes (fopen, putc, fwrite, getc, fread,
 * fseek, ftell, feof, ferror, fclose) and prints one line per operation for the test to check:
 *
 *   open PATH MODE      fopen            -> "open ok" | "open failed: ..."
 *   seek OFF            fseek SEEK_SET   -> "seek OFF RC"
 *   tell                ftell            -> "tell N"
 *   put HEX             putc per byte    -> "put N"   (N bytes accepted)
 *   write HEX           fwrite           -> "write N"
 *   get N               getc N times     -> "get HEX" [+ " eof"]
 *   read N              fread            -> "read HEX" [+ " short"]
 *   pattern-write N     N bytes, byte at ring position p = (p * 7 + 3) & 0xff, by putc
 *                                        -> "pattern-write N"
 *   pattern-read N      N bytes by getc, checked against the pattern
 *                                        -> "pattern-read N ok" | "... mismatch at P" | "... eof at P"
 *   flags               feof, ferror     -> "flags EOF ERR"
 *   close               fclose           -> "close RC"
 *   sleep MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static FILE *f;

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        out[i] = (unsigned char)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
    }
    return n;
}

static void print_hex(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("%02x", b[i]);
    }
}

static unsigned char pattern(long long p)
{
    return (unsigned char)((p * 7 + 3) & 0xff);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        if (strcmp(op, "open") == 0 && i + 2 < argc) {
            f = fopen(argv[i + 1], argv[i + 2]);
            i += 2;
            if (f == NULL) {
                printf("open failed: %m\n");
                return 2;
            }
            printf("open ok\n");
        } else if (strcmp(op, "seek") == 0 && i + 1 < argc) {
            long off = atol(argv[++i]);
            printf("seek %ld %d\n", off, fseek(f, off, SEEK_SET));
        } else if (strcmp(op, "tell") == 0) {
            printf("tell %ld\n", ftell(f));
        } else if (strcmp(op, "put") == 0 && i + 1 < argc) {
            unsigned char b[4096];
            size_t n = unhex(argv[++i], b), ok = 0;
            for (size_t k = 0; k < n; k++) {
                if (putc(b[k], f) != EOF) {
                    ok++;
                }
            }
            printf("put %zu\n", ok);
        } else if (strcmp(op, "write") == 0 && i + 1 < argc) {
            unsigned char b[4096];
            size_t n = unhex(argv[++i], b);
            printf("write %zu\n", fwrite(b, 1, n, f));
        } else if (strcmp(op, "get") == 0 && i + 1 < argc) {
            long n = atol(argv[++i]);
            printf("get ");
            int eof = 0;
            for (long k = 0; k < n; k++) {
                int c = getc(f);
                if (c == EOF) {
                    eof = 1;
                    break;
                }
                printf("%02x", c);
            }
            printf(eof ? " eof\n" : "\n");
        } else if (strcmp(op, "read") == 0 && i + 1 < argc) {
            size_t n = (size_t)atol(argv[++i]);
            unsigned char *b = malloc(n + 1);
            size_t got = fread(b, 1, n, f);
            printf("read ");
            print_hex(b, got);
            printf(got < n ? " short\n" : "\n");
            free(b);
        } else if (strcmp(op, "pattern-write") == 0 && i + 1 < argc) {
            long long n = atoll(argv[++i]);
            long long start = ftell(f) - 12;
            for (long long k = 0; k < n; k++) {
                if (putc(pattern(start + k), f) == EOF) {
                    printf("pattern-write failed at %lld\n", start + k);
                    return 3;
                }
            }
            printf("pattern-write %lld\n", n);
        } else if (strcmp(op, "pattern-read") == 0 && i + 1 < argc) {
            long long n = atoll(argv[++i]);
            long long start = ftell(f) - 12;
            long long k;
            for (k = 0; k < n; k++) {
                int c = getc(f);
                if (c == EOF) {
                    printf("pattern-read %lld eof at %lld\n", n, start + k);
                    break;
                }
                if (c != pattern(start + k)) {
                    printf("pattern-read %lld mismatch at %lld\n", n, start + k);
                    break;
                }
            }
            if (k == n) {
                printf("pattern-read %lld ok\n", n);
            }
        } else if (strcmp(op, "flags") == 0) {
            printf("flags %d %d\n", feof(f) != 0, ferror(f) != 0);
        } else if (strcmp(op, "close") == 0) {
            printf("close %d\n", fclose(f));
            f = NULL;
        } else if (strcmp(op, "sleep") == 0 && i + 1 < argc) {
            long ms = atol(argv[++i]);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        } else {
            fprintf(stderr, "ftshim-drive: bad operation '%s'\n", op);
            return 64;
        }
    }
    return 0;
}
