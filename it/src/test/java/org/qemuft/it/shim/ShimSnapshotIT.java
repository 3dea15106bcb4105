package org.qemuft.it.shim;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.RingCopier;
import org.qemuft.it.support.ShmRings;
import org.qemuft.it.support.Snapshots;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.replaylog.ReplayEventKind;

/**
 * Snapshots through the shim: QEMU stores ftell() of its log in a snapshot and, replaying, seeks
 * back to it when it loads one (replay/replay-snapshot.c). Snapshots saved while recording into a
 * ring load in replays reading a ring: rrsnapshot at start (a seek back over what QEMU has looked
 * ahead at) and -loadvm of a later snapshot (a seek forward over events); both replays stop at
 * exactly the log's icount of the guest's power-off. The go-live sequence (savevm while replaying
 * from a ring, a new recording QEMU from that snapshot) is GoLiveIT's.
 */
class ShimSnapshotIT {
  static final Duration LONG = Duration.ofMinutes(4);
  static final Duration QMP = Duration.ofSeconds(60);
  static final String DONE = "QEMUFT-WORK-DONE mib=\\d+ checksum=([0-9a-f]{16}) elapsed_ms=[0-9.]+";

  @TempDir Path tmp;

  /**
   * A ring holding {@code stream} as a backup controller feeds it (ReplayFeed, STOP_THERE: up to the
   * guest's power-off request, then END), closed.
   */
  static LogRing ringWith(ShmRings rings, String name, byte[] stream) throws Exception {
    long cap = Math.max(LogRing.MIN_CAPACITY, Long.highestOneBit(stream.length) * 2);
    LogRing ring = rings.create(name, cap);
    ReplayFeed feed = new ReplayFeed(ring, 0, ReplayFeed.AtGuestPowerOff.STOP_THERE);
    assertThat(feed.feed(stream, 0, stream.length, Duration.ZERO)).isTrue();
    assertThat(feed.ended()).isTrue();
    assertThat(feed.guestPowerOff()).isPresent();
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
    // Never with the host-side input wake-up: its timer (a filter-buffer's) is not part of a
    // snapshot, so a replay that loads one saved in the middle of a recording would run it out of
    // phase with the recording and stall (docs/rr-pace.md, "Snapshots"). The guest's own idle
    // waker is guest state and loads with the snapshot.
    VmSpec spec = Guest.workload(128).withInputWakeUs(0);
    Path store = Snapshots.store(tmp.resolve("store.qcow2"));
    byte[] stream;
    long recorded;
    long atPowerOff;
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
          Snapshots.savevm(qmp, "mid"); // record mode: QEMU stores ftell() of the ring stream
          done = rec.awaitSerial(DONE, LONG).group();
          ShimPairIT.awaitStatus(qmp, rec, "shutdown", LONG);
          recorded = qmp.queryReplay().icount();
          qmp.quit();
        }
        assertThat(rec.awaitExit(QMP)).contains(0);
        capture.awaitEnd(LONG);
        stream = capture.captured();
        assertThat(capture.icountAfterLast(ReplayEventKind.SHUTDOWN_HOST_SIGNAL)).isEqualTo(recorded);
        // Where the guest asked to power off; the recording ran on a little (ShimPairIT explains).
        atPowerOff = capture.icountAfterLast(ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN);
        assertThat(atPowerOff).isPositive().isLessThanOrEqualTo(recorded).isGreaterThan(recorded - 1_000_000);
      }

      // rrsnapshot=start: loaded at start, QEMU seeks back to where the recording saved it.
      Files.copy(store, tmp.resolve("store1.qcow2"));
      try (LogRing ring = ringWith(rings, "qemuft-rep1", stream);
          QemuProcess rep = QemuLaunch.of(spec, tmp.resolve("rep1"), "qft-snap-rep1")
              .mode(Mode.REPLAY, tmp.resolve("rep1/replay.bin")).shim(ShmRings.shimLibrary(), ring.path())
              .rrSnapshot("start").snapshotStore(tmp.resolve("store1.qcow2")).pauseOnShutdown(true).start()) {
        assertThat(awaitEnd(rep)).isEqualTo(atPowerOff);
        assertThat(rep.serialText()).contains(done);
        assertThat(ring.readPosition()).as("QEMU read up to the END after the power-off")
            .isEqualTo(ring.writePosition());
      }

      // -loadvm mid: QEMU reads the first event, loads the snapshot and seeks forward to its
      // offset; the shim consumes the events in between. The guest continues from the middle.
      Files.copy(store, tmp.resolve("store2.qcow2"));
      try (LogRing ring = ringWith(rings, "qemuft-rep2", stream);
          QemuProcess rep = QemuLaunch.of(spec, tmp.resolve("rep2"), "qft-snap-rep2")
              .mode(Mode.REPLAY, tmp.resolve("rep2/replay.bin")).shim(ShmRings.shimLibrary(), ring.path())
              .loadvm("mid").snapshotStore(tmp.resolve("store2.qcow2")).pauseOnShutdown(true).start()) {
        assertThat(awaitEnd(rep)).as("the snapshot's icount base is the recording's").isEqualTo(atPowerOff);
        assertThat(rep.serialText()).contains(done).doesNotContain("QEMUFT-READY");
      }
    }
  }
}
