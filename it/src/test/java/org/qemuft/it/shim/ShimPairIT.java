package org.qemuft.it.shim;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.LongAdder;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.gate.GuestNic;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.RingCopier;
import org.qemuft.it.support.ShmRings;
import org.qemuft.it.support.TapRelay;
import org.qemuft.it.support.TestNet;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.Netns;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.nativeio.Tap;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.qmp.ReplayInfo;
import org.qemuft.replaylog.ReplayEventKind;

/**
 * A primary QEMU records through libftshim into a ring; the test copies that ring, through a
 * ReplayFeed as a backup controller does ({@code STOP_THERE} at the guest's power-off), into a
 * second ring, which a replaying QEMU reads at the same time. Both run to the guest's end and pause
 * there ({@code -action shutdown=pause}); the replay must end at exactly the recording's
 * instruction count at the guest's power-off request (see {@link #finishAndCompare} for what that
 * count is and why). Once with the CPU-bound workload, once with the test service answering a
 * client over a real TAP, so that input frames are recorded through filter-replay.
 */
class ShimPairIT {
  static final Duration BOOT = Duration.ofMinutes(3);
  static final Duration QMP = Duration.ofSeconds(60);
  static final String DONE = "QEMUFT-WORK-DONE mib=\\d+ checksum=[0-9a-f]{16} elapsed_ms=[0-9.]+";
  /** Small rings, so that both block often and the flow control is exercised. */
  static final long RING = 256 * 1024;

  @TempDir Path tmp;

  static QemuLaunch primary(VmSpec spec, Path dir, LogRing ring) {
    return QemuLaunch.of(spec, dir, "qft-shim-p").mode(Mode.RECORD, dir.resolve("replay.bin"))
        .shim(ShmRings.shimLibrary(), ring.path()).pauseOnShutdown(true);
  }

  static QemuLaunch backup(VmSpec spec, Path dir, LogRing ring) {
    return QemuLaunch.of(spec, dir, "qft-shim-b").mode(Mode.REPLAY, dir.resolve("replay.bin"))
        .shim(ShmRings.shimLibrary(), ring.path()).pauseOnShutdown(true);
  }

  /** Polls query-status until {@code status}; a replaying QEMU may answer slowly while it waits for log. */
  static void awaitStatus(QemuMonitor qmp, QemuProcess qemu, String status, Duration timeout)
      throws Exception {
    awaitStatus(qmp, qemu, status, timeout, () -> "");
  }

  static void awaitStatus(QemuMonitor qmp, QemuProcess qemu, String status, Duration timeout,
      java.util.function.Supplier<String> more) throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    String now = qmp.queryStatus().status();
    while (!now.equals(status)) {
      if (System.nanoTime() > deadline) {
        long a = qmp.queryReplay().icount();
        Thread.sleep(2000);
        long b = qmp.queryReplay().icount();
        String serial = qemu.serialText();
        throw new AssertionError(qemu + ": VM status is still '" + now + "', not '" + status
            + "', after " + timeout + "; icount " + a + " then " + b + " 2 s later; serial tail:\n"
            + serial.substring(Math.max(0, serial.length() - 1500)) + "\nQEMU log:\n"
            + qemu.qemuLogText() + more.get());
      }
      Thread.sleep(100);
      now = qmp.queryStatus().status();
    }
  }

  /**
   * Ends the pair: the primary, paused at the guest's end, reports its icount and quits (QEMU
   * then logs END and the shim closes the ring). The log must hold exactly the instructions the
   * primary reported, and the backup must pause at exactly the icount where the log says the guest
   * asked to power off. Returns that icount.
   *
   * <p>What "the recording's icount" means here (docs/pair.md, "When the guest powers off"):
   * QEMU 7.2 logs the guest's power-off request as a SHUTDOWN event without first logging the
   * instructions executed since the previous event, and the recording vCPU runs on for a few
   * thousand more (13,094 in the recording in native's test resources) until the main loop pauses
   * the VM; those are logged after the SHUTDOWN, and the primary's final query-replay count
   * includes them. A replay that is fed them too pauses at the SHUTDOWN event or somewhere in them,
   * depending on a race, and a VM in state shutdown cannot be resumed ("Resetting the Virtual
   * Machine is required"). The one point both sides can agree on is the request itself: the
   * backup's feed (ReplayFeed, STOP_THERE) gives its QEMU the log up to that event, then END, so
   * the replay's final icount must equal the log's icount at the request, and the recording's
   * final icount must equal the log's total (the few thousand instructions after it included).
   */
  static long finishAndCompare(QemuProcess primary, QemuProcess backup, RingCopier copy,
      LogRing backupRing) throws Exception {
    long recorded;
    try (QemuMonitor qp = QemuMonitor.connect(primary.qmpSocket(), QMP)) {
      awaitStatus(qp, primary, "shutdown", BOOT);
      ReplayInfo info = qp.queryReplay();
      assertThat(info.mode()).isEqualTo("record");
      recorded = info.icount();
      qp.quit();
    }
    assertThat(primary.awaitExit(QMP)).contains(0);
    assertThat(primary.qemuLogText()).contains("libftshim: QEMU's replay log");
    copy.awaitEnd(BOOT);
    String tail = "last events of the log:\n  " + copy.lastEvents();
    assertThat(copy.feed().ended()).isTrue();
    assertThat(copy.feed().icount()).as("the log's icount; " + tail).isEqualTo(recorded);
    ReplayFeed.GuestPowerOff off = copy.feed().guestPowerOff().orElseThrow(
        () -> new AssertionError("the log has no guest power-off request; " + tail));
    assertThat(off.kind()).isEqualTo(ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN);
    long atPowerOff = off.icount();
    assertThat(copy.icountAfterLast(ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN)).isEqualTo(atPowerOff);
    assertThat(atPowerOff).as(tail).isPositive().isLessThanOrEqualTo(recorded);
    // What the recording vCPU ran between the guest's request and its pause.
    assertThat(recorded - atPowerOff).as(tail).isLessThan(1_000_000);
    assertThat(copy.icountAfterLast(ReplayEventKind.SHUTDOWN_HOST_SIGNAL)).as(tail).isEqualTo(recorded);

    try (QemuMonitor qb = QemuMonitor.connect(backup.qmpSocket(), BOOT)) {
      awaitStatus(qb, backup, "shutdown", BOOT, () -> "\n" + copy.eventsAround(
          LogRing.BASE_OFFSET + backupRing.readPosition()) + "\n" + saveForDiagnosis(copy));
      ReplayInfo info = qb.queryReplay();
      assertThat(info.mode()).isEqualTo("play");
      assertThat(info.icount())
          .as("the replay's final icount equals the recording's at the guest's power-off request; "
              + "the recording ran " + (recorded - atPowerOff) + " more before it paused; " + tail)
          .isEqualTo(atPowerOff);
      qb.quit();
    }
    assertThat(backup.awaitExit(QMP)).contains(0);
    System.out.printf("shim pair: the guest asked to power off at icount %d; the replay stopped there, "
        + "the recording %d instructions later%n", atPowerOff, recorded - atPowerOff);
    return atPowerOff;
  }

  @Test
  void aCpuBoundGuestReplaysFromTheRingWhileItIsRecorded() throws Exception {
    VmSpec spec = Guest.workload(64);
    try (ShmRings rings = new ShmRings();
        LogRing ringA = rings.create("qemuft-primary", RING);
        LogRing ringB = rings.create("qemuft-backup", RING)) {
      try (QemuProcess backup = backup(spec, tmp.resolve("b"), ringB).start();
          QemuProcess primary = primary(spec, tmp.resolve("p"), ringA).start();
          RingCopier copy = new RingCopier(ringA, ringB, ReplayFeed.AtGuestPowerOff.STOP_THERE, true, true)) {
        primary.awaitQmp(BOOT);
        backup.awaitQmp(BOOT);
        Matcher p = primary.awaitSerial(DONE, BOOT);
        long icount = finishAndCompare(primary, backup, copy, ringB);
        assertThat(icount).isPositive();
        assertThat(tmp.resolve("p/replay.bin")).as("intercepted, never created").doesNotExist();
        // Replay computed the same thing at the same guest time.
        assertThat(backup.serialText()).contains(p.group());
        assertThat(copy.events(ReplayEventKind.END)).isEqualTo(1);
      }
    }
  }

  /**
   * Input frames recorded through filter-replay, shipped through both rings and replayed
   * concurrently, to the guest's end. The guest NIC transmits on a virtual-clock timer ({@code
   * tx=timer}, set by QemuLaunch):
   * with virtio-net's default transmit bottom half, which QEMU 7.2 does not replay, this replay
   * diverged after the TCP session in most runs (NetworkReplayIT). Also with the host-side input
   * wake-up ({@code VmSpec.inputWakeUs}): its timer fires in both QEMUs and must do so at the same
   * points of the log.
   */
  @ParameterizedTest(name = "host-side input wake-up every {0} µs (0: none)")
  @ValueSource(ints = {0, 500})
  void theTestServiceAnswersAClientAndItsNetworkInputReplays(int wakeUs) throws Exception {
    String guestIp = "10.50.0.10";
    VmSpec spec = Guest.service(guestIp + "/24").withInputWakeUs(wakeUs);
    LongAdder backupFrames = new LongAdder();
    try (ShmRings rings = new ShmRings();
        LogRing ringA = rings.create("qemuft-primary", RING);
        LogRing ringB = rings.create("qemuft-backup", RING);
        TestNet net = new TestNet()) {
      // The client's side: a namespace whose only link is a TAP this JVM holds.
      String nsC = net.netns("C");
      try (Tap tap = net.tapInto(nsC, "10.50.0.100/24")) {
        Path dir = Files.createDirectories(tmp.resolve("net"));
        try (GuestNic nicA = GuestNic.open(f -> toTap(tap, f), "qft-nicA");
            GuestNic nicB = GuestNic.open(f -> backupFrames.increment(), "qft-nicB");
            TapRelay relay = TapRelay.start(tap, (frame, n) -> nicA.sendToGuest(frame, 0, n))) {
          try (QemuProcess backup = backup(spec, tmp.resolve("b"), ringB)
                  .guestNic(nicB.address()).start();
              QemuProcess primary = primary(spec, tmp.resolve("p"), ringA)
                  .guestNic(nicA.address()).start();
              RingCopier copy = new RingCopier(ringA, ringB, ReplayFeed.AtGuestPowerOff.STOP_THERE, true, true)) {
            nicB.attach(backup.pid(), QMP);
            nicA.attach(primary.pid(), QMP);
            primary.awaitSerial("QEMUFT-READY", BOOT);
            try (Socket client = Netns.call(nsC, () -> connect(guestIp, 7000, BOOT))) {
              client.setSoTimeout((int) BOOT.toMillis());
              BufferedReader in = new BufferedReader(new InputStreamReader(client.getInputStream(), StandardCharsets.US_ASCII));
              OutputStream out = client.getOutputStream();
              assertThat(request(in, out, "ADD c1 1 5")).isEqualTo("OK 1 5");
              assertThat(request(in, out, "ADD c1 2 7")).isEqualTo("OK 2 12");
              assertThat(request(in, out, "ADD c1 2 7")).as("a repeat is answered, not applied").isEqualTo("OK 2 12");
              assertThat(request(in, out, "GET")).isEqualTo("TOTAL 12 SEQ 2 CLIENTS 1 c1:2:2");
              assertThat(request(in, out, "SHUTDOWN")).isEqualTo("BYE");
            }
            primary.awaitSerial("QEMUFT-SERVICE-EXIT status=0", BOOT);
            finishAndCompare(primary, backup, copy, ringB);
            assertThat(copy.events(ReplayEventKind.ASYNC_NET))
                .as("frames from the client, recorded through filter-replay").isPositive();
            assertThat(backup.serialText()).contains("QEMUFT-READY").contains("QEMUFT-SERVICE-EXIT status=0");
            assertThat(nicA.framesFromGuest()).isPositive();
            assertThat(backupFrames.sum()).as("a replaying guest sends nothing").isZero();
          }
        }
      }
    }
  }

  private static void toTap(Tap tap, byte[] frame) {
    try {
      tap.write(frame, 0, frame.length);
    } catch (Exception e) {
      // the TAP closed at the end of the test
    }
  }

  /** Connects (from the calling thread's namespace) once the guest's service listens. */
  static Socket connect(String host, int port, Duration timeout) throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      Socket s = new Socket();
      try {
        s.connect(new InetSocketAddress(host, port), 2_000);
        return s;
      } catch (java.io.IOException e) {
        s.close();
        if (System.nanoTime() > deadline) {
          throw new AssertionError("the guest's service at " + host + ":" + port + " did not accept in " + timeout, e);
        }
        Thread.sleep(200);
      }
    }
  }

  /** Keeps the log of a failed pair in build/shim-failures for a replay from a plain file. */
  static String saveForDiagnosis(RingCopier copy) {
    try {
      Path f = Path.of(System.getProperty("qemuft.root"), "build", "shim-failures",
          "replay-" + System.currentTimeMillis() + ".bin");
      return "the log is saved as " + copy.saveAsLogFile(f);
    } catch (Exception e) {
      return "(could not save the log: " + e + ")";
    }
  }

  static String request(BufferedReader in, OutputStream out, String line) throws Exception {
    out.write((line + "\n").getBytes(StandardCharsets.US_ASCII));
    out.flush();
    String answer = in.readLine();
    if (answer == null) {
      throw new AssertionError("the service closed the connection after '" + line + "'");
    }
    return answer;
  }
}
