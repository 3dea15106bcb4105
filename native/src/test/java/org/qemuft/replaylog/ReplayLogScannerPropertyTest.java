package org.qemuft.replaylog;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.LongRange;

/**
 * Properties of the scanner over generated logs: exact results under any chunking, any cut, any
 * resume point; and on damaged input, only events the reference decoder also finds.
 */
class ReplayLogScannerPropertyTest {

  @Property(tries = 300)
  void validLogsScanExactlyUnderAnyChunking(
      @ForAll long seed,
      @ForAll @IntRange(min = 0, max = 300) int n,
      @ForAll @IntRange(min = 1, max = 5000) int maxChunk,
      @ForAll boolean fileHeader,
      @ForAll boolean end,
      @ForAll boolean trailer) {
    SplittableRandom r = new SplittableRandom(seed);
    LogGen.Log log = LogGen.randomLog(r, n, fileHeader, end);
    boolean withTrailer = end && trailer && !fileHeader;
    if (withTrailer) {
      log.out.writeBytes(new byte[] {0x00, (byte) 0xe0, 0x20, 0x0c});
    }
    byte[] data = log.bytes();
    Scans.Outcome o = Scans.chunked(data, r, maxChunk, fileHeader ? Scans.FILE : Scans.STREAM);

    assertThat(o.error()).isNull();
    assertThat(o.events()).isEqualTo(log.events);
    assertThat(o.icount()).isEqualTo(log.icount);
    assertThat(o.atBoundary()).isTrue();
    assertThat(o.endSeen()).isEqualTo(end);
    long expectedEnd = log.events.isEmpty() ? (fileHeader ? 12 : 0) : log.events.getLast().end();
    assertThat(o.safeEnd()).isEqualTo(expectedEnd);
  }

  @Property(tries = 300)
  void aCutAnywhereYieldsExactlyTheWholeEventsBeforeIt(
      @ForAll long seed,
      @ForAll @IntRange(min = 1, max = 200) int n,
      @ForAll @IntRange(min = 0, max = 1000) int cutPermille,
      @ForAll boolean fileHeader) {
    SplittableRandom r = new SplittableRandom(seed);
    LogGen.Log log = LogGen.randomLog(r, n, fileHeader, true);
    byte[] data = log.bytes();
    int cut = (int) ((long) data.length * cutPermille / 1000);
    Scans.Outcome o =
        Scans.chunked(Arrays.copyOf(data, cut), r, 64, fileHeader ? Scans.FILE : Scans.STREAM);

    List<Ev> whole = log.events.stream().filter(e -> e.end() <= cut).toList();
    assertThat(o.error()).isNull();
    assertThat(o.events()).isEqualTo(whole);
    long headerEnd = fileHeader && cut >= 12 ? 12 : 0;
    long safe = whole.isEmpty() ? headerEnd : whole.getLast().end();
    assertThat(o.safeEnd()).isEqualTo(safe);
    boolean onBoundary = cut == safe && (!fileHeader || cut >= 12);
    assertThat(o.atBoundary()).isEqualTo(onBoundary);
  }

  @Property(tries = 200)
  void aStreamResumedAtAnEventBoundaryContinuesOffsetsAndIcount(
      @ForAll long seed,
      @ForAll @IntRange(min = 1, max = 200) int n,
      @ForAll @IntRange(min = 0, max = 1000) int splitPermille,
      @ForAll @LongRange(min = 0, max = 1L << 40) long startOffset,
      @ForAll @LongRange(min = 0, max = 1L << 40) long startIcount) {
    SplittableRandom r = new SplittableRandom(seed);
    LogGen.Log head = LogGen.randomLog(r, n, false, false);
    int k = (int) ((long) head.events.size() * splitPermille / 1000);
    long boundary = k == 0 ? 0 : head.events.get(k - 1).end();
    long icountThere = k == 0 ? 0 : head.events.get(k - 1).icount();
    byte[] tail = Arrays.copyOfRange(head.bytes(), (int) boundary, head.bytes().length);

    Scans.Outcome o = Scans.chunked(tail, r, 100,
        l -> ReplayLogScanner.forStream(l, startOffset, startIcount));
    List<Ev> expected = head.events.subList(k, head.events.size()).stream()
        .map(e -> new Ev(e.kind(), e.start() - boundary + startOffset,
            e.end() - boundary + startOffset, e.icount() - icountThere + startIcount))
        .toList();
    assertThat(o.error()).isNull();
    assertThat(o.events()).isEqualTo(expected);
  }

  @Property(tries = 1000)
  void damagedLogsYieldOnlyWhatTheReferenceDecodes(
      @ForAll long seed,
      @ForAll @IntRange(min = 0, max = 120) int n,
      @ForAll boolean fileHeader) {
    SplittableRandom r = new SplittableRandom(seed);
    LogGen.Log log = LogGen.randomLog(r, n, fileHeader, r.nextBoolean());
    LogGen.Log other = LogGen.randomLog(r, 1 + r.nextInt(50), false, true);
    Mutations.Mutated m = r.nextBoolean()
        ? Mutations.fieldByte(log.bytes(), log.events, 0, r)
        : Mutations.any(log.bytes(), other.bytes(), r);
    Scans.Outcome o = Oracle.check(m.bytes(), fileHeader, r, m.what());

    // Rule-independent: every event that ends before the first damaged byte is found again,
    // unchanged, and nothing is blamed on bytes of those intact events.
    List<Ev> intact = log.events.stream().filter(e -> e.end() <= m.firstChanged()).toList();
    assertThat(o.events().size()).as(m.what()).isGreaterThanOrEqualTo(intact.size());
    assertThat(o.events().subList(0, intact.size())).as(m.what()).isEqualTo(intact);
    if (o.error() != null) {
      long intactEnd = intact.isEmpty() ? 0 : intact.getLast().end();
      assertThat(o.error().offset()).as(m.what()).isGreaterThanOrEqualTo(intactEnd);
    }
  }

  @Property(tries = 1000)
  void randomBytesYieldOnlyWhatTheReferenceDecodes(
      @ForAll long seed,
      @ForAll @IntRange(min = 0, max = 400) int length,
      @ForAll boolean fileHeader) {
    SplittableRandom r = new SplittableRandom(seed);
    byte[] data = new byte[length];
    for (int i = 0; i < length; i++) {
      // Mostly small values, so random data often forms plausible kinds and lengths.
      data[i] = (byte) (r.nextInt(3) == 0 ? r.nextInt(256) : r.nextInt(41));
    }
    if (fileHeader && length >= 12 && r.nextBoolean()) {
      System.arraycopy(ReplayLogEncoder.fileHeader(), 0, data, 0, 12);
    }
    Oracle.check(data, fileHeader, r, "random bytes, seed " + seed);
  }
}
