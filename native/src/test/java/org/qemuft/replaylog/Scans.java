package org.qemuft.replaylog;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.random.RandomGenerator;

/** Drives a scanner over bytes split into random chunks, the way a ring or socket delivers them. */
final class Scans {
  private Scans() {}

  record Outcome(
      List<Ev> events,
      ReplayLogException error,
      long safeEnd,
      long icount,
      boolean atBoundary,
      boolean endSeen) {}

  /** Feeds {@code data} in chunks of random size (1..maxChunk), sometimes via a direct buffer. */
  static Outcome chunked(byte[] data, RandomGenerator r, int maxChunk, Scanner factory) {
    Ev.Collector c = new Ev.Collector();
    ReplayLogScanner s = factory.create(c);
    ReplayLogException error = null;
    ByteBuffer direct = ByteBuffer.allocateDirect(maxChunk);
    int p = 0;
    try {
      while (p < data.length) {
        int n = Math.min(data.length - p, 1 + r.nextInt(maxChunk));
        if (r.nextInt(4) == 0) {
          direct.clear().put(data, p, n).flip();
          s.feed(direct);
        } else if (r.nextInt(3) == 0) {
          // A chunk inside a larger array, at an offset, with junk around it.
          byte[] wider = new byte[n + 7];
          System.arraycopy(data, p, wider, 3, n);
          s.feed(wider, 3, n);
        } else {
          s.feed(data, p, n);
        }
        if (r.nextInt(8) == 0) {
          s.feed(data, p + n, 0);
        }
        p += n;
      }
    } catch (ReplayLogException e) {
      error = e;
    }
    return new Outcome(c.events, error, s.safeEnd(), s.icount(), s.atEventBoundary(), s.endSeen());
  }

  static Outcome whole(byte[] data, Scanner factory) {
    Ev.Collector c = new Ev.Collector();
    ReplayLogScanner s = factory.create(c);
    ReplayLogException error = null;
    try {
      s.feed(data, 0, data.length);
    } catch (ReplayLogException e) {
      error = e;
    }
    return new Outcome(c.events, error, s.safeEnd(), s.icount(), s.atEventBoundary(), s.endSeen());
  }

  @FunctionalInterface
  interface Scanner {
    ReplayLogScanner create(ReplayEventListener l);
  }

  static final Scanner FILE = l -> ReplayLogScanner.forLogFile(l, false);
  static final Scanner STREAM = l -> ReplayLogScanner.forStream(l, 0, 0);
}
