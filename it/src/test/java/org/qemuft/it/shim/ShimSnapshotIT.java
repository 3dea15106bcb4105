package org.qemuft.it.shim;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.RingCopier;
import org.qemuft.it.support.ShmRings;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.qmp.QmpErrorException;
import org.qemuft.replaylog.ReplayEventKind;

/**
 * Snapshots through the shim: QEMU stores ftell() of its log in a snapshot and, replaying, seeks
 * back to it when it loads one (replay/replay-snapshot.c). Snapshots saved while recording into a
 * ring load in replays reading a ring (rrsnapshot at start: a seek back over what QEMU has looked
 * ahead at; -loadvm of a later snapshot: a seek forward over events), and the go-live sequence
 * (ReplayFeed.goLive, savevm while replaying, a new recording QEMU from that snapshot) continues
 * the guest to the end it would have reached anyway.
 */
class ShimSnapshotIT {
  static final Duration LONG = Duration.ofMinutes(4);
  static final Duration QMP = Duration.ofSeconds(60);
  static final String DONE = "QEMUFT-WORK-DONE mib=\\d+ checksum=([0-9a-f]{16}) elapsed_ms=[0-9.]+";

  @TempDir Path tmp;

  static Path snapshotStore(Path file) throws Exception {
    Process img = new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", file.toString(), "1G")
        .redirectErrorStream(true).start();
    assertThat(img.waitFor()).as(new String(img.getInputStream().readAllBytes())).isZero();
    return file;
  }

  /** HMP savevm, retried while record/replay refuses it for pending events. */
  static void savevm(QemuMonitor qmp, String tag) throws Exception {
    for (int i = 0; ; i++) {
      try {
        qmp.hmp("savevm " + tag, QMP);
        return;
      } catch (QmpErrorException e) {
        if (i > 50 || !e.getMessage().contains("does not allow")) {
          throw e;
        }
        Thread.sleep(100);
      }
    }
  }

  /** A ring holding all of {@code stream}, fed through ReplayFeed and closed. */
  static LogRing ringWith(ShmRings rings, String name, byte[] stream) throws Exception {
    long cap = Math.max(LogRing.MIN_CAPACITY, Long.highestOneBit(stream.length) * 2);
    LogRing ring = rings.create(name, cap);
    ReplayFeed feed = new ReplayFeed(ring);
    assertThat(feed.feed(stream, 0, stream.length, Duration.ZERO)).isTrue();
    assertThat(feed.ended()).isTrue();
    ring.closeWriter();
    return ring;
  }

  /** Waits for the replay's pause at the guest's end; returns its icount. */
  static long awaitEnd(QemuProcess q) throws Exception {
    q.awaitQmp(LONG);
    try (QemuMonitor qmp = QemuMonitor.connect(q.qmpSocket(), LONG)) {
      ShimPairIT.awaitStatus(qmp, q, "shutdown", LONG);
      long icount = qmp.queryReplay().icount();
      qmp.quit();
      return icount;
    }
  }

  @Test
  void snapshotsSavedWhileRecordingIntoARingLoadInReplaysFromARing() throws Exception {
    VmSpec spec = Guest.workload(128);
    Path store = snapshotStore(tmp.resolve("store.qcow2"));
    byte[] stream;
    long recorded;
    String done;
    try (ShmRings rings = new ShmRings()) {
      try (LogRing ringA = rings.create("qemuft-rec", 256 * 1024);
          QemuProcess rec = QemuLaunch.of(spec, tmp.resolve("rec"), "qft-snap-rec")
              .mode(Mode.RECORD, tmp.resolve("rec/replay.bin")).shim(ShmRings.shimLibrary(), ringA.path())
              .rrSnapshot("start").snapshotStore(store).pauseOnShutdown(true).start();
          RingCopier capture = new RingCopier(ringA, null, false, true)) {
        rec.awaitQmp(LONG);
        try (QemuMonitor qmp = QemuMonitor.connect(rec.qmpSocket(), QMP)) {
          rec.awaitSerial("QEMUFT-WORK-PROGRESS mib=32 ", LONG);
          savevm(qmp, "mid"); // record mode: QEMU stores ftell() of the ring stream
          done = rec.awaitSerial(DONE, LONG).group();
          ShimPairIT.awaitStatus(qmp, rec, "shutdown", LONG);
          recorded = qmp.queryReplay().icount();
          qmp.quit();
        }
        assertThat(rec.awaitExit(QMP)).contains(0);
        capture.awaitEnd(LONG);
        stream = capture.captured();
        assertThat(capture.icountAfterLast(ReplayEventKind.SHUTDOWN_HOST_SIGNAL)).isEqualTo(recorded);
      }

      // rrsnapshot=start: loaded at start, QEMU seeks back to where the recording saved it.
      Files.copy(store, tmp.resolve("store1.qcow2"));
      try (LogRing ring = ringWith(rings, "qemuft-rep1", stream);
          QemuProcess rep = QemuLaunch.of(spec, tmp.resolve("rep1"), "qft-snap-rep1")
              .mode(Mode.REPLAY, tmp.resolve("rep1/replay.bin")).shim(ShmRings.shimLibrary(), ring.path())
              .rrSnapshot("start").snapshotStore(tmp.resolve("store1.qcow2")).pauseOnShutdown(true).start()) {
        assertThat(awaitEnd(rep)).isLessThanOrEqualTo(recorded).isGreaterThan(recorded - 1_000_000);
        assertThat(rep.serialText()).contains(done);
        // Paused at the guest's shutdown, QEMU leaves the last few events (those logged while the
        // recording was paused and quitting) unread.
        assertThat(ring.readPosition()).isGreaterThan(ring.writePosition() - 4096);
      }

      // -loadvm mid: QEMU reads the first event, loads the snapshot and seeks forward to its
      // offset; the shim consumes the events in between. The guest continues from the middle.
      Files.copy(store, tmp.resolve("store2.qcow2"));
      try (LogRing ring = ringWith(rings, "qemuft-rep2", stream);
          QemuProcess rep = QemuLaunch.of(spec, tmp.resolve("rep2"), "qft-snap-rep2")
              .mode(Mode.REPLAY, tmp.resolve("rep2/replay.bin")).shim(ShmRings.shimLibrary(), ring.path())
              .loadvm("mid").snapshotStore(tmp.resolve("store2.qcow2")).pauseOnShutdown(true).start()) {
        assertThat(awaitEnd(rep)).isLessThanOrEqualTo(recorded).isGreaterThan(recorded - 1_000_000);
        assertThat(rep.serialText()).contains(done).doesNotContain("QEMUFT-READY");
      }
    }
  }

  @Test
  void goingLiveAtTheLastWholeEventContinuesTheGuestInANewRecording() throws Exception {
    VmSpec spec = Guest.workload(256);
    String checksum;
    try (QemuProcess ref = QemuLaunch.of(spec, tmp.resolve("ref"), "qft-live-ref").mode(Mode.PLAIN, null).start()) {
      checksum = ref.awaitSerial(DONE, LONG).group(1);
      assertThat(ref.awaitExit(LONG)).contains(0);
    }
    Path store = snapshotStore(tmp.resolve("store.qcow2"));
    try (ShmRings rings = new ShmRings();
        LogRing ringA = rings.create("qemuft-primary", 256 * 1024);
        LogRing ringB = rings.create("qemuft-backup", 256 * 1024)) {
      long boundary;
      try (QemuProcess backup = QemuLaunch.of(spec, tmp.resolve("b"), "qft-live-b")
              .mode(Mode.REPLAY, tmp.resolve("b/replay.bin")).shim(ShmRings.shimLibrary(), ringB.path())
              .snapshotStore(store).pauseOnShutdown(true).start();
          QemuProcess primary = QemuLaunch.of(spec, tmp.resolve("p"), "qft-live-p")
              .mode(Mode.RECORD, tmp.resolve("p/replay.bin")).shim(ShmRings.shimLibrary(), ringA.path())
              .start();
          RingCopier copy = new RingCopier(ringA, ringB, false, false)) {
        primary.awaitSerial("QEMUFT-WORK-PROGRESS mib=32 ", LONG);
        primary.kill(); // the primary's host dies: its log ends wherever QEMU was
        copy.awaitDrained(LONG);
        copy.close();
        ReplayFeed feed = copy.feed();
        boundary = feed.goLive(ReplayFeed.GoLiveTail.DEFAULT, LONG);
        assertThat(boundary).isEqualTo(feed.icount()).isPositive();
        assertThat(ringB.writerClosed()).as("the backup must stay stoppable").isFalse();

        backup.awaitQmp(LONG);
        try (QemuMonitor qmp = QemuMonitor.connect(backup.qmpSocket(), LONG)) {
          ShimPairIT.awaitStatus(qmp, backup, "shutdown", LONG);
          long stopped = qmp.queryReplay().icount();
          assertThat(stopped).as("stopped at the boundary or just past it")
              .isGreaterThanOrEqualTo(boundary).isLessThan(boundary + 100_000L * 1000);
          savevm(qmp, "golive"); // replay mode: QEMU stores ftell() of the ring stream it reads
          qmp.quit();
        }
        assertThat(backup.awaitExit(QMP)).contains(0);
        assertThat(backup.serialText()).doesNotContain("QEMUFT-WORK-DONE");
      }

      // The new primary: recording (into a ring again) from the backup's snapshot.
      try (LogRing ringC = rings.create("qemuft-new-primary", 256 * 1024);
          QemuProcess next = QemuLaunch.of(spec, tmp.resolve("n"), "qft-live-n")
              .mode(Mode.RECORD, tmp.resolve("n/replay.bin")).shim(ShmRings.shimLibrary(), ringC.path())
              .loadvm("golive").snapshotStore(store).start();
          RingCopier drain = new RingCopier(ringC, null, false, false)) {
        Matcher m = next.awaitSerial(DONE, LONG);
        assertThat(m.group(1)).as("the same checksum as an uninterrupted run").isEqualTo(checksum);
        assertThat(next.awaitExit(LONG)).contains(0);
        assertThat(next.serialText()).doesNotContain("QEMUFT-READY");
        drain.awaitEnd(LONG);
        assertThat(drain.events(ReplayEventKind.END)).isEqualTo(1);
      }
    }
  }
}
