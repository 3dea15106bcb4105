package org.qemuft.controller.pair;

import java.util.ArrayDeque;

/**
 * How far behind the backup is, in time: the primary notes when each piece of the log was
 * produced (read from its QEMU's ring); once the backup reports how far it has replayed, the lag
 * is how long ago the oldest byte it has not replayed yet was produced. While the backup keeps
 * up, that is the log's transit plus replay delay; when it falls behind, it grows with the
 * guest execution the backup still has to replay.
 *
 * <p>Thread-safe.
 */
final class LagTracker {
  private final ArrayDeque<long[]> marks = new ArrayDeque<>();
  private long replayed;

  /** The log up to stream offset {@code end} exists since {@code nanos} (System.nanoTime). */
  synchronized void produced(long end, long nanos) {
    long[] last = marks.peekLast();
    if (last != null && nanos - last[1] < 1_000_000) {
      last[0] = Math.max(last[0], end); // one mark per millisecond is resolution enough
      return;
    }
    marks.addLast(new long[] {end, nanos});
  }

  /** The backup has replayed the log up to {@code offset}. */
  synchronized void replayed(long offset) {
    if (offset <= replayed) {
      return;
    }
    replayed = offset;
    while (!marks.isEmpty() && marks.peekFirst()[0] <= offset) {
      marks.removeFirst();
    }
  }

  synchronized long replayedOffset() {
    return replayed;
  }

  /** Milliseconds since the oldest unreplayed byte was produced; 0 when the backup is level. */
  synchronized long lagMillis(long nowNanos) {
    long[] first = marks.peekFirst();
    return first == null ? 0 : Math.max(0, (nowNanos - first[1]) / 1_000_000);
  }
}
