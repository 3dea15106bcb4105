package org.qemuft.controller.metrics;

import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * Durations in nanoseconds, counted into log-linear buckets (16 per power of two, so a reported
 * percentile is within 1/16 of the true value). Lock-free; recording allocates nothing.
 */
public final class LatencyHistogram {
  private static final int SUB_BITS = 4;
  private static final int SUB = 1 << SUB_BITS;
  private static final int BUCKETS = (64 - SUB_BITS + 1) * SUB;

  private final AtomicLongArray counts = new AtomicLongArray(BUCKETS);
  private final LongAdder total = new LongAdder();
  private final LongAdder sum = new LongAdder();

  public void record(long nanos) {
    long v = Math.max(0, nanos);
    counts.incrementAndGet(index(v));
    total.increment();
    sum.add(v);
  }

  public long count() {
    return total.sum();
  }

  public long sumNanos() {
    return sum.sum();
  }

  /**
   * The smallest bucket bound below which at least {@code fraction} of the values lie (e.g. 0.99);
   * 0 when empty.
   */
  public long percentile(double fraction) {
    long n = total.sum();
    if (n == 0) {
      return 0;
    }
    long rank = (long) Math.ceil(fraction * n);
    long seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
      seen += counts.get(i);
      if (seen >= Math.max(1, rank)) {
        return upperBound(i);
      }
    }
    return upperBound(BUCKETS - 1);
  }

  static int index(long v) {
    if (v < SUB) {
      return (int) v;
    }
    int exp = 63 - Long.numberOfLeadingZeros(v); // >= SUB_BITS
    int sub = (int) (v >>> (exp - SUB_BITS)) & (SUB - 1);
    return (exp - SUB_BITS + 1) * SUB + sub;
  }

  static long upperBound(int index) {
    if (index < SUB) {
      return index;
    }
    int exp = index / SUB + SUB_BITS - 1;
    long sub = index % SUB;
    long lower = (1L << exp) | (sub << (exp - SUB_BITS));
    return lower + (1L << (exp - SUB_BITS)) - 1;
  }
}
