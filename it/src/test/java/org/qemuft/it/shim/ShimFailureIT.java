package org.qemuft.it.shim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.ShmRings;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * A replaying QEMU fed a damaged stream, or a stream that ends, fails with a clear message and
 * never hangs; a misconfigured shim stops QEMU at once with one line naming the file and the
 * reason.
 */
class ShimFailureIT {
  static final Duration LONG = Duration.ofMinutes(3);
  private static final int MIB = 16;

  @TempDir static Path shared;
  @TempDir Path tmp;

  /** A recording of the workload (events only, no file header) and its event boundaries. */
  static byte[] stream;
  static final List<long[]> events = new ArrayList<>(); // {kind, start, end}

  @BeforeAll
  static void record() throws Exception {
    Path log = shared.resolve("replay.bin");
    try (QemuProcess rec = QemuLaunch.of(Guest.workload(MIB), shared.resolve("rec"), "qft-shimf-rec")
        .mode(Mode.RECORD, log).start()) {
      rec.awaitSerial("QEMUFT-WORK-DONE", LONG);
      assertThat(rec.awaitExit(LONG)).contains(0);
    }
    byte[] file = Files.readAllBytes(log);
    stream = Arrays.copyOfRange(file, ReplayLogScanner.FILE_HEADER_SIZE, file.length);
    ReplayLogScanner.forStream((k, s, e, i) -> events.add(new long[] {k, s, e}), LogRing.BASE_OFFSET, 0)
        .feed(stream, 0, stream.length);
  }

  private static QemuLaunch backup(Path dir, LogRing ring) {
    return QemuLaunch.of(Guest.workload(MIB), dir, "qft-shimf-b").mode(Mode.REPLAY, dir.resolve("replay.bin"))
        .shim(ShmRings.shimLibrary(), ring.path());
  }

  /** The first event of this kind at or after the middle of the stream: {kind, start, end}. */
  private static long[] eventAfterMiddle(ReplayEventKind kind) {
    long middle = LogRing.BASE_OFFSET + stream.length / 2;
    return events.stream().filter(e -> e[0] == kind.code() && e[1] >= middle).findFirst().orElseThrow();
  }

  private static int index(long offset) {
    return (int) (offset - LogRing.BASE_OFFSET);
  }

  private static String eofLine(LogRing ring, long offset) {
    return "libftshim: ring " + ring.path() + ": the controller closed the stream at replay-log offset "
        + offset + "; QEMU reading ";
  }

  @Test
  void aCorruptEventIsRefusedByTheFeedAndTheBackupStopsCleanlyAfterTheGoodOnes() throws Exception {
    long[] victim = eventAfterMiddle(ReplayEventKind.INSTRUCTION);
    byte[] damaged = stream.clone();
    damaged[index(victim[1])] = 21; // a kind QEMU never writes
    try (ShmRings rings = new ShmRings(); LogRing ring = rings.create("qemuft-backup", 256 * 1024);
        QemuProcess backup = backup(tmp.resolve("b"), ring).start()) {
      ReplayFeed feed = new ReplayFeed(ring);
      ReplayLogException refused = null;
      for (int p = 0; p < damaged.length && refused == null; p += 65536) {
        try {
          feed.feed(damaged, p, Math.min(65536, damaged.length - p), LONG);
        } catch (ReplayLogException e) {
          refused = e;
        }
      }
      assertThat(refused).as("the feed refuses the damage").isNotNull();
      assertThat(refused.offset()).isEqualTo(victim[1]);
      assertThat(refused.getMessage()).contains("21");
      assertThat(ring.writerClosed()).isTrue();
      assertThat(ring.writePosition()).isEqualTo(victim[1] - LogRing.BASE_OFFSET);

      assertThat(backup.awaitExit(LONG)).as("the backup ends, it does not hang").contains(1);
      assertThat(backup.qemuLogText()).contains(eofLine(ring, victim[1]))
          .contains("error reading the replay data");
      assertThat(ring.readPosition()).as("QEMU replayed everything before the damage")
          .isEqualTo(ring.writePosition());
    }
  }

  @Test
  void aStreamTheControllerEndsMidEventGivesTheBackupItsWholeEventsThenEndOfFile() throws Exception {
    long[] cutIn = eventAfterMiddle(ReplayEventKind.INSTRUCTION);
    int cut = index(cutIn[1]) + 2; // inside the INSTRUCTION's count
    try (ShmRings rings = new ShmRings(); LogRing ring = rings.create("qemuft-backup", 256 * 1024);
        QemuProcess backup = backup(tmp.resolve("b"), ring).start()) {
      ReplayFeed feed = new ReplayFeed(ring);
      for (int p = 0; p < cut; p += 65536) {
        assertThat(feed.feed(stream, p, Math.min(65536, cut - p), LONG)).isTrue();
      }
      assertThat(feed.partialBytes()).isEqualTo(2);
      assertThat(feed.safeEnd()).isEqualTo(cutIn[1]);
      ring.closeWriter(); // the primary is gone and the backup is not to go live
      assertThat(backup.awaitExit(LONG)).contains(1);
      assertThat(backup.qemuLogText()).contains(eofLine(ring, cutIn[1]))
          .contains("error reading the replay data");
    }
  }

  /** Why ReplayFeed holds partial events back: QEMU 7.2 fails on one instead of waiting. */
  @Test
  void aPartialEventWrittenRawMakesQemuFailAtIt() throws Exception {
    long[] cutIn = eventAfterMiddle(ReplayEventKind.INSTRUCTION);
    int cut = index(cutIn[1]) + 2;
    try (ShmRings rings = new ShmRings(); LogRing ring = rings.create("qemuft-backup", 256 * 1024);
        QemuProcess backup = backup(tmp.resolve("b"), ring).start()) {
      for (int p = 0; p < cut; ) {
        p += ring.write(stream, p, cut - p, LONG);
      }
      ring.closeWriter();
      assertThat(backup.awaitExit(LONG)).contains(1);
      assertThat(backup.qemuLogText()).contains(eofLine(ring, LogRing.BASE_OFFSET + cut))
          .contains("error reading the replay data");
    }
  }

  @Test
  void aRingOfAnotherReplayVersionStopsQemuBeforeItStarts() throws Exception {
    try (ShmRings rings = new ShmRings()) {
      LogRing.create(rings.path("qemuft-v"), 4096).close();
      try (FileChannel ch = FileChannel.open(rings.path("qemuft-v"), StandardOpenOption.WRITE)) {
        ch.write(ByteBuffer.allocate(4).order(ByteOrder.nativeOrder()).putInt(0, 0x00e0200d), 32);
      }
      try (QemuProcess q = QemuLaunch.of(Guest.workload(MIB), tmp.resolve("v"), "qft-shimf-v")
          .mode(Mode.REPLAY, tmp.resolve("v/replay.bin")).shim(ShmRings.shimLibrary(), rings.path("qemuft-v"))
          .start()) {
        assertThat(q.awaitExit(LONG)).contains(1);
        assertThat(q.qemuLogText().strip()).startsWith("libftshim: ring " + rings.path("qemuft-v"))
            .contains("replay log version 0x00e0200d").contains("0x00e0200c");
        assertThat(q.serialText()).as("the guest never ran").isEmpty();
      }
      // Opening the same ring from Java names the problem the same way.
      assertThatThrownBy(() -> LogRing.open(rings.path("qemuft-v")))
          .hasMessageContaining("replay log version 0x00e0200d");
    }
  }

  @Test
  void misconfiguredShimsStopQemuWithOneLineNamingTheFileAndTheReason() throws Exception {
    Path lib = ShmRings.shimLibrary();
    try (ShmRings rings = new ShmRings(); LogRing ring = rings.create("qemuft-r", 4096)) {
      Path rr = tmp.resolve("replay.bin");
      // QEMU is given one rrfile, the shim another: nothing would reach the ring.
      try (QemuProcess q = QemuLaunch.of(Guest.workload(MIB), tmp.resolve("m1"), "qft-shimf-m1")
          .mode(Mode.RECORD, rr).preload(lib, Map.of("QEMUFT_SHIM_LOG", tmp.resolve("other.bin").toString(),
              "QEMUFT_SHIM_RING", ring.path().toString())).start()) {
        assertThat(q.awaitExit(LONG)).contains(1);
        assertThat(q.qemuLogText().strip()).startsWith("libftshim: QEMU's rrfile is '" + rr + "'")
            .contains("QEMUFT_SHIM_LOG").doesNotContain("\n");
      }
      assertThat(rr).doesNotExist();
      // The ring does not exist.
      try (QemuProcess q = QemuLaunch.of(Guest.workload(MIB), tmp.resolve("m2"), "qft-shimf-m2")
          .mode(Mode.RECORD, rr).shim(lib, rings.path("qemuft-missing")).start()) {
        assertThat(q.awaitExit(LONG)).contains(1);
        assertThat(q.qemuLogText().strip()).startsWith("libftshim: ring " + rings.path("qemuft-missing")
            + ": cannot open").contains("No such file or directory").doesNotContain("\n");
      }
      // Preloaded without its configuration.
      try (QemuProcess q = QemuLaunch.of(Guest.workload(MIB), tmp.resolve("m3"), "qft-shimf-m3")
          .mode(Mode.RECORD, rr).preload(lib, Map.of()).start()) {
        assertThat(q.awaitExit(LONG)).contains(1);
        assertThat(q.qemuLogText()).contains("libftshim: preloaded into QEMU without its configuration");
      }
      assertThat(ring.writePosition()).isZero();
    }
  }
}
