package org.qemuft.replaylog;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.random.RandomGenerator;

/** Checks a scanner run on arbitrary bytes against the reference decoder. */
final class Oracle {
  private Oracle() {}

  /**
   * Scans {@code data} whole and in random chunks and checks both against the reference: the same
   * events (so nothing is accepted that does not decode), the same error offset, the same
   * completeness. Any exception other than ReplayLogException propagates and fails the test.
   */
  static Scans.Outcome check(byte[] data, boolean file, RandomGenerator r, String what) {
    Scans.Scanner factory = file ? Scans.FILE : Scans.STREAM;
    ReferenceDecoder.Result ref =
        file ? ReferenceDecoder.decodeFile(data) : ReferenceDecoder.decodeStream(data, 0, 0);
    Scans.Outcome whole = Scans.whole(data, factory);
    Scans.Outcome chunked = Scans.chunked(data, r, 1 + r.nextInt(r.nextBoolean() ? 8 : 70_000), factory);
    for (Scans.Outcome o : List.of(whole, chunked)) {
      assertThat(o.events()).as(what).isEqualTo(ref.events());
      switch (ref.status()) {
        case ERROR -> {
          assertThat(o.error()).as(what).isNotNull();
          assertThat(o.error().offset()).as(what + ": " + o.error().getMessage())
              .isEqualTo(ref.errorOffset());
        }
        case TRUNCATED -> {
          assertThat(o.error()).as(what).isNull();
          assertThat(o.atBoundary()).as(what).isFalse();
        }
        case COMPLETE -> {
          assertThat(o.error()).as(what).isNull();
          assertThat(o.atBoundary()).as(what).isTrue();
        }
      }
      long lastEnd = ref.events().isEmpty()
          ? (file && data.length >= 12 && !headerRefused(ref) ? 12 : 0)
          : ref.events().getLast().end();
      assertThat(o.safeEnd()).as(what).isEqualTo(lastEnd);
      assertThat(o.safeEnd()).as(what).isLessThanOrEqualTo(data.length);
    }
    return whole;
  }

  private static boolean headerRefused(ReferenceDecoder.Result ref) {
    return ref.status() == ReferenceDecoder.Status.ERROR && ref.errorOffset() == 0;
  }
}
