package org.qemuft.replaylog;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;
import java.util.zip.GZIPInputStream;

/**
 * Test-side encoder of arbitrary valid events, written from the format table in
 * docs/replay-log.md independently of the scanner, plus loaders for the recorded logs.
 */
final class LogGen {
  private LogGen() {}

  /** Valid kind codes (0..39 without 21). */
  static final int[] KINDS;

  static {
    List<Integer> k = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      if (i != 21) {
        k.add(i);
      }
    }
    KINDS = k.stream().mapToInt(Integer::intValue).toArray();
  }

  /** A log being built: bytes plus the events they hold. */
  static final class Log {
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final List<Ev> events = new ArrayList<>();
    final long base;
    long icount;

    Log(long base, long icount) {
      this.base = base;
      this.icount = icount;
    }

    long position() {
      return base + out.size();
    }

    Log event(byte[] encoded) {
      long start = position();
      out.writeBytes(encoded);
      if (encoded[0] == 0) {
        icount += ByteBuffer.wrap(encoded, 1, 4).getInt();
      }
      events.add(new Ev(encoded[0] & 0xff, start, position(), icount));
      return this;
    }

    byte[] bytes() {
      return out.toByteArray();
    }
  }

  /** One valid event of the given kind with random fields. */
  static byte[] event(int kind, RandomGenerator r) {
    ByteBuffer b = ByteBuffer.allocate(maxSize(kind));
    b.put((byte) kind);
    switch (kind) {
      case 0 -> b.putInt(r.nextInt(8) == 0 ? Integer.MAX_VALUE - r.nextInt(3) : 1 + r.nextInt(200_000));
      case 3, 4, 8, 25, 28, 29 -> b.putLong(r.nextLong());
      case 5 -> {
        int type = r.nextInt(4);
        b.putInt(type);
        switch (type) {
          case 0 -> {
            if (r.nextBoolean()) {
              b.putInt(0).putLong(r.nextLong()).put((byte) r.nextInt(2));
            } else {
              b.putInt(1).putInt(r.nextInt(151)).put((byte) r.nextInt(2));
            }
          }
          case 1 -> b.putInt(r.nextInt(9)).put((byte) r.nextInt(2));
          default -> b.putInt(r.nextInt(2)).putLong(r.nextLong());
        }
      }
      case 7 -> b.put((byte) r.nextInt(256)).put(blob(r, r.nextInt(8) == 0 ? 5000 : 100));
      case 9 -> {
        int len = r.nextInt(50) == 0 ? ReplayLogScanner.MAX_NET_FRAME : r.nextInt(1600);
        b.put((byte) r.nextInt(4)).putInt(r.nextInt(2)).put(blobOfLength(r, len));
      }
      case 22 -> b.putInt(r.nextInt()).putInt(r.nextInt(Integer.MAX_VALUE));
      case 23 -> b.put(blob(r, 200));
      case 24 -> b.putInt(-1 - r.nextInt(Integer.MAX_VALUE));
      case 26 -> {
        int n = r.nextInt(12);
        b.putLong(n).putLong(r.nextLong());
        for (int i = 0; i < 2 * n; i++) {
          b.putLong(r.nextLong());
        }
      }
      case 27 -> b.putInt(r.nextInt()).put(blob(r, 40));
      default -> {}
    }
    byte[] out = new byte[b.position()];
    b.flip().get(out);
    return out;
  }

  private static int maxSize(int kind) {
    return switch (kind) {
      case 7 -> 10 + 5000;
      case 9 -> 10 + ReplayLogScanner.MAX_NET_FRAME;
      default -> 512;
    };
  }

  /** u32 length then that many random bytes, length below {@code bound}. */
  private static byte[] blob(RandomGenerator r, int bound) {
    return blobOfLength(r, r.nextInt(bound));
  }

  private static byte[] blobOfLength(RandomGenerator r, int len) {
    byte[] d = new byte[4 + len];
    ByteBuffer.wrap(d).putInt(len);
    for (int i = 4; i < d.length; i++) {
      d[i] = (byte) r.nextInt(256);
    }
    return d;
  }

  /** A random valid log of {@code n} events (INSTRUCTION-heavy, like real ones), END optional. */
  static Log randomLog(RandomGenerator r, int n, boolean fileHeader, boolean end) {
    Log log = new Log(0, 0);
    if (fileHeader) {
      log.out.writeBytes(ReplayLogEncoder.fileHeader());
    }
    for (int i = 0; i < n; i++) {
      int kind;
      int pick = r.nextInt(10);
      if (pick < 3) {
        kind = 0;
      } else if (pick < 5) {
        kind = 31;
      } else {
        do {
          kind = KINDS[r.nextInt(KINDS.length)];
        } while (kind == 39);
      }
      log.event(event(kind, r));
    }
    if (end) {
      log.event(new byte[] {39});
    }
    return log;
  }

  static byte[] resource(String name) {
    try (InputStream in = LogGen.class.getResourceAsStream(name)) {
      if (in == null) {
        throw new IllegalStateException("test resource " + name + " is missing");
      }
      try (InputStream gz = new GZIPInputStream(in)) {
        return gz.readAllBytes();
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * The small recorded logs QEMU wrote to a file (12-byte header, finished), for fuzzing; the
   * 7 MB linux-boot-blkreplay.bin.gz is scanned by ReplayLogScannerTest only.
   */
  static final String[] FILE_LOGS = {
    "seabios-sigterm.bin.gz",
    "seabios-qmp-quit.bin.gz",
    "ipxe-net-serial.bin.gz",
    "ipxe-input-net-serial.bin.gz",
  };
}
