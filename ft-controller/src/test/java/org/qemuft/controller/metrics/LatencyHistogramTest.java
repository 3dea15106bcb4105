package org.qemuft.controller.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class LatencyHistogramTest {
  @Test
  void percentilesAreWithinOneSixteenthOfTheExactOnes() {
    Random r = new Random(42);
    LatencyHistogram h = new LatencyHistogram();
    long[] values = new long[100_000];
    for (int i = 0; i < values.length; i++) {
      values[i] = (long) Math.exp(r.nextDouble() * 25); // 1 ns .. ~72 s, log-uniform
      h.record(values[i]);
    }
    Arrays.sort(values);
    for (double p : new double[] {0.5, 0.9, 0.99, 0.999}) {
      long exact = values[(int) Math.ceil(p * values.length) - 1];
      assertThat(h.percentile(p)).as("p%s", p * 100)
          .isGreaterThanOrEqualTo(exact).isLessThanOrEqualTo(exact + exact / 16 + 1);
    }
    assertThat(h.count()).isEqualTo(values.length);
  }

  @Test
  void bucketsCoverEveryValueContiguously() {
    for (long v : new long[] {0, 1, 15, 16, 17, 31, 32, 1000, 1L << 40, Long.MAX_VALUE}) {
      int i = LatencyHistogram.index(v);
      assertThat(LatencyHistogram.upperBound(i)).isGreaterThanOrEqualTo(v);
      if (i > 0) {
        assertThat(LatencyHistogram.upperBound(i - 1)).isLessThan(v);
      }
    }
  }

  @Test
  void emptyIsZero() {
    assertThat(new LatencyHistogram().percentile(0.99)).isZero();
  }
}
