package org.qemuft.replaylog;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Fuzzing the scanner with damaged real logs and exhaustive single-byte damage, checked against
 * the reference decoder: no exception but ReplayLogException, no hang, nothing accepted that does
 * not decode, the same result however the bytes are chunked.
 *
 * <p>Runs QEMUFT_FUZZ_ITERATIONS mutations of the recorded logs (default 200, quick) from seed
 * QEMUFT_FUZZ_SEED (default: the clock; every failure message names it). A long run: {@code
 * QEMUFT_FUZZ_ITERATIONS=20000 mvn_ft -pl native verify -Dtest=ReplayLogFuzzTest}.
 */
class ReplayLogFuzzTest {
  private static final int ITERATIONS = Integer.parseInt(env("QEMUFT_FUZZ_ITERATIONS", "200"));
  private static final long SEED =
      Long.parseLong(env("QEMUFT_FUZZ_SEED", Long.toString(System.nanoTime())));

  private static String env(String name, String otherwise) {
    String v = System.getenv(name);
    return v == null || v.isBlank() ? otherwise : v;
  }

  @Test
  void mutatedRealLogs() {
    List<byte[]> logs = new ArrayList<>();
    for (String name : LogGen.FILE_LOGS) {
      logs.add(LogGen.resource(name));
    }
    SplittableRandom r = new SplittableRandom(SEED);
    for (int i = 0; i < ITERATIONS; i++) {
      int which = r.nextInt(logs.size());
      byte[] log = logs.get(which);
      byte[] other = logs.get(r.nextInt(logs.size()));
      Mutations.Mutated m = Mutations.any(log, other, r);
      String what = "seed " + SEED + ", iteration " + i + ", " + LogGen.FILE_LOGS[which] + ": " + m.what();
      Scans.Outcome o = Oracle.check(m.bytes(), true, r, what);
      if (o.error() == null && m.what().contains("bit flip")) {
        // A flip inside a payload (frame, clock value) is undetectable and fine; the scan must
        // then still end exactly at END.
        assertThat(o.endSeen() || !o.atBoundary() || o.safeEnd() == m.bytes().length).as(what).isTrue();
      }
    }
  }

  @Test
  void randomBytesAsFileAndStream() {
    SplittableRandom r = new SplittableRandom(SEED ^ 0x5eed);
    for (int i = 0; i < ITERATIONS * 10; i++) {
      byte[] data = new byte[r.nextInt(2000)];
      r.nextBytes(data);
      boolean file = r.nextBoolean();
      if (file && data.length >= 12 && r.nextBoolean()) {
        System.arraycopy(ReplayLogEncoder.fileHeader(), 0, data, 0, 12);
      }
      Oracle.check(data, file, r, "seed " + SEED + ", random bytes " + i);
    }
  }

  /**
   * Every value of every byte of the fixed fields of one event of each kind (and of each INPUT
   * variant), between two valid events: about 77,000 cases, so every field check is reached with
   * every value rather than by luck.
   */
  @Test
  void everySingleByteSubstitutionInAnEventsFixedFields() {
    SplittableRandom r = new SplittableRandom(7);
    List<byte[]> samples = new ArrayList<>();
    for (int kind : LogGen.KINDS) {
      samples.add(LogGen.event(kind, r));
    }
    samples.add(ReplayLogScannerTest.hex("05 00000000 00000000 0000000000000039 01"));
    samples.add(ReplayLogScannerTest.hex("05 00000000 00000001 0000001e 01"));
    samples.add(ReplayLogScannerTest.hex("05 00000001 00000008 00"));
    samples.add(ReplayLogScannerTest.hex("05 00000002 00000001 fffffffffffffffb"));
    samples.add(ReplayLogScannerTest.hex("05 00000003 00000000 0000000000007fff"));
    samples.add(ReplayLogScannerTest.hex("09 01 00000001 00000002 aabb"));
    samples.add(ReplayLogScannerTest.hex("1a 0000000000000001 0000000000000005 0000000000000001 0000000000000002"));
    byte[] before = ReplayLogEncoder.instruction(1234);
    byte[] after = {31, 0, 0, 0, 1};
    int cases = 0;
    for (byte[] event : samples) {
      for (int at = 0; at < Math.min(18, event.length); at++) {
        for (int v = 0; v < 256; v++) {
          ByteArrayOutputStream out = new ByteArrayOutputStream();
          out.writeBytes(before);
          byte[] damaged = event.clone();
          damaged[at] = (byte) v;
          out.writeBytes(damaged);
          out.writeBytes(after);
          Oracle.check(out.toByteArray(), false, r,
              "event " + ReplayLogScannerTest.hexOf(event) + " byte " + at + " = " + v);
          cases++;
        }
      }
    }
    assertThat(cases).isGreaterThan(75_000);
  }
}
