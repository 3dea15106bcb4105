package org.qemuft.replaylog;

import java.util.Arrays;
import java.util.random.RandomGenerator;

/** Ways a log gets damaged: flipped bits, truncation, splicing, insertion, deletion. */
final class Mutations {
  private Mutations() {}

  record Mutated(byte[] bytes, int firstChanged, String what) {}

  static Mutated any(byte[] log, byte[] other, RandomGenerator r) {
    return switch (r.nextInt(6)) {
      case 0 -> bitFlips(log, r);
      case 1 -> truncate(log, r);
      case 2 -> splice(log, other, r);
      case 3 -> insert(log, r);
      case 4 -> delete(log, r);
      default -> overwrite(log, r);
    };
  }

  /**
   * Damages one byte of an event's fixed fields (not its payload), with values near the edges of
   * what is valid: this is where the scanner's field checks live, and where random flips rarely
   * land in payload-heavy logs.
   */
  static Mutated fieldByte(byte[] log, java.util.List<Ev> events, long base, RandomGenerator r) {
    if (events.isEmpty()) {
      return bitFlips(log, r);
    }
    Ev e = events.get(r.nextInt(events.size()));
    int start = (int) (e.start() - base);
    int at = start + r.nextInt((int) Math.min(18, e.end() - e.start()));
    byte[] m = log.clone();
    int[] edgy = {0, 1, 2, 3, 4, 8, 9, 0x0c, 0x10, 0x20, 0x27, 0x28, 0x7f, 0x80, 0x96, 0x97, 0xe0, 0xff};
    m[at] = (byte) (r.nextBoolean() ? edgy[r.nextInt(edgy.length)] : r.nextInt(256));
    return new Mutated(m, at, "byte " + at + " of event " + e + " set to " + (m[at] & 0xff));
  }

  static Mutated bitFlips(byte[] log, RandomGenerator r) {
    byte[] m = log.clone();
    int flips = 1 + r.nextInt(4);
    int first = Integer.MAX_VALUE;
    for (int i = 0; i < flips && m.length > 0; i++) {
      int at = r.nextInt(m.length);
      m[at] ^= (byte) (1 << r.nextInt(8));
      first = Math.min(first, at);
    }
    return new Mutated(m, first, flips + " bit flip(s)");
  }

  static Mutated truncate(byte[] log, RandomGenerator r) {
    int at = r.nextInt(log.length + 1);
    return new Mutated(Arrays.copyOf(log, at), at, "truncated at " + at);
  }

  /** The head of one log joined to the tail of another, both cut at arbitrary bytes. */
  static Mutated splice(byte[] log, byte[] other, RandomGenerator r) {
    int at = r.nextInt(log.length + 1);
    int from = r.nextInt(other.length + 1);
    byte[] m = Arrays.copyOf(log, at + other.length - from);
    System.arraycopy(other, from, m, at, other.length - from);
    return new Mutated(m, at, "spliced at " + at + " with other from " + from);
  }

  static Mutated insert(byte[] log, RandomGenerator r) {
    int at = r.nextInt(log.length + 1);
    int n = 1 + r.nextInt(20);
    byte[] m = new byte[log.length + n];
    System.arraycopy(log, 0, m, 0, at);
    for (int i = 0; i < n; i++) {
      m[at + i] = (byte) r.nextInt(256);
    }
    System.arraycopy(log, at, m, at + n, log.length - at);
    return new Mutated(m, at, n + " random bytes inserted at " + at);
  }

  static Mutated delete(byte[] log, RandomGenerator r) {
    int at = r.nextInt(log.length + 1);
    int n = Math.min(log.length - at, 1 + r.nextInt(20));
    byte[] m = new byte[log.length - n];
    System.arraycopy(log, 0, m, 0, at);
    System.arraycopy(log, at + n, m, at, log.length - at - n);
    return new Mutated(m, at, n + " bytes deleted at " + at);
  }

  static Mutated overwrite(byte[] log, RandomGenerator r) {
    byte[] m = log.clone();
    if (m.length == 0) {
      return new Mutated(m, 0, "nothing to overwrite");
    }
    int at = r.nextInt(m.length);
    int n = Math.min(m.length - at, 1 + r.nextInt(16));
    for (int i = 0; i < n; i++) {
      m[at + i] = (byte) r.nextInt(256);
    }
    return new Mutated(m, at, n + " bytes overwritten at " + at);
  }
}
