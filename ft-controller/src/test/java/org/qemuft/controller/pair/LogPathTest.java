package org.qemuft.controller.pair;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.qemuft.controller.channel.ChannelSettings;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.channel.ReplayLogs;
import org.qemuft.controller.gate.OutputGate;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;

/**
 * The log's path through both controllers without QEMU: a real recorded log written into the
 * primary's ring (as the shim would), shipped by {@link LogShipper} over a real {@link LogChannel}
 * on loopback, received by {@link LogReceiver} into the backup's ring (read as the backup QEMU
 * would). The test plays both QEMUs.
 */
@Timeout(300)
class LogPathTest {
  private static final long RING = 256 * 1024;

  private final List<AutoCloseable> cleanup = new ArrayList<>();
  private final List<AutoCloseable> rings = new ArrayList<>();
  private final List<Thread> threads = new ArrayList<>();

  @AfterEach
  void tearDown() throws Exception {
    for (int i = cleanup.size() - 1; i >= 0; i--) {
      cleanup.get(i).close();
    }
    for (Thread t : threads) {
      t.interrupt();
      t.join(10_000);
      assertThat(t.isAlive()).as(t.getName() + " still running").isFalse();
    }
    for (AutoCloseable r : rings) {
      r.close();
    }
  }

  private final class Pair {
    final LogRing primaryRing;
    final LogRing backupRing;
    final OutputGate gate;
    final LogShipper shipper;
    final LogReceiver receiver;
    final List<long[]> releases = new CopyOnWriteArrayList<>();

    Pair(long maxLagBytes) throws Exception {
      this(maxLagBytes, Duration.ofSeconds(30));
    }

    Pair(long maxLagBytes, Duration maxLag) throws Exception {
      primaryRing = ring("p");
      backupRing = ring("b");
      LogShipper[] s = new LogShipper[1];
      gate = new OutputGate(frame -> releases.add(new long[] {frame[0], s[0].stats().acked()}), 1 << 20);
      shipper = new LogShipper(primaryRing, gate, 1 << 22, maxLagBytes, maxLag, 0);
      s[0] = shipper;
      receiver = new LogReceiver(new ReplayFeed(backupRing, 0, ReplayFeed.AtGuestPowerOff.STOP_THERE), 1 << 22);
      byte[] secret = new byte[32];
      ThreadLocalRandom.current().nextBytes(secret);
      ChannelSettings settings = new ChannelSettings("logpath", 1, secret, true, Duration.ofMillis(50),
          Duration.ofSeconds(5));
      LogChannel backup = LogChannel.listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), settings,
          receiver, receiver::heldEnd);
      cleanup.add(backup);
      receiver.attach(backup);
      LogChannel primary = LogChannel.dial(backup.localAddress(), settings, shipper);
      cleanup.add(primary);
      shipper.attach(primary);
      cleanup.add(shipper::stop);
      cleanup.add(receiver::stop);
      start("shipper", shipper::run);
      start("feeder", receiver::runFeeder);
      start("acks", () -> {
        while (!Thread.currentThread().isInterrupted()) {
          receiver.ackIfReplayMoved();
          try {
            Thread.sleep(5);
          } catch (InterruptedException e) {
            return;
          }
        }
      });
    }
  }

  @Test
  void theBackupReplaysExactlyThePrimarysStreamAndHeldFramesWaitForTheirEvent() throws Exception {
    byte[] log = ReplayLogs.events("linux-boot-blkreplay");
    long[] ends = ReplayLogs.eventEnds(log);
    Pair pair = new Pair(1 << 20);

    ByteArrayOutputStream replayed = new ByteArrayOutputStream();
    Thread backupQemu = start("backup-qemu", () -> readAll(pair.backupRing, replayed, log.length));
    List<Long> heldAt = new ArrayList<>();
    SplittableRandom r = new SplittableRandom(7);
    for (int p = 0; p < log.length; ) {
      int n = Math.min(1 + r.nextInt(3000), log.length - p);
      pair.primaryRing.write(log, p, n, Duration.ofSeconds(60));
      p += n;
      if (heldAt.size() < 50 && r.nextInt(100) == 0) {
        // The guest sends a frame now: the gate notes where the log stands.
        heldAt.add(pair.primaryRing.writePosition());
        pair.gate.hold(new byte[] {(byte) heldAt.size()}, pair.primaryRing.writePosition());
      }
    }
    pair.primaryRing.closeWriter();
    backupQemu.join(120_000);

    assertThat(replayed.toByteArray()).isEqualTo(log);
    awaitAcked(pair.shipper, log.length);
    assertThat(pair.releases).hasSize(heldAt.size());
    for (int i = 0; i < heldAt.size(); i++) {
      long[] rel = pair.releases.get(i);
      assertThat(rel[0]).as("frames leave in order").isEqualTo(i + 1);
      // Released only once the whole first event starting at or after its position was acked.
      long position = heldAt.get(i);
      long needed = firstEndAfterStartAtOrBeyond(ends, position);
      assertThat(rel[1]).as("ack when frame " + (i + 1) + " at " + position + " left").isGreaterThanOrEqualTo(needed);
    }
    LogShipper.Stats st = pair.shipper.stats();
    assertThat(st.shipped()).isEqualTo(log.length);
    assertThat(st.replayed()).isEqualTo(log.length);
    assertThat(pair.receiver.failure()).isNull();
  }

  @Test
  void aBackupThatDoesNotReplayStopsThePrimaryAtTheLagLimit() throws Exception {
    byte[] log = ReplayLogs.events("linux-boot-blkreplay");
    long maxLag = 512 * 1024;
    Pair pair = new Pair(maxLag);

    // The backup QEMU reads nothing yet: the primary's writer must end up blocked.
    Thread primaryQemu = recordInto(pair, log, 4096, 0);
    awaitHeld(pair);
    long written = pair.primaryRing.writePosition();
    Thread.sleep(500);
    assertThat(pair.primaryRing.writePosition()).as("QEMU is held").isEqualTo(written);
    LogShipper.Stats held = pair.shipper.stats();
    assertThat(held.shipped() - held.replayed()).isLessThanOrEqualTo(maxLag);
    assertThat(held.holding()).isTrue();
    assertThat(held.stalls()).isPositive();
    assertThat(written).isLessThan(log.length);

    ByteArrayOutputStream replayed = new ByteArrayOutputStream();
    Thread backupQemu = start("backup-qemu", () -> readAll(pair.backupRing, replayed, log.length));
    primaryQemu.join(120_000);
    backupQemu.join(120_000);
    assertThat(replayed.toByteArray()).isEqualTo(log);
    assertThat(pair.shipper.stats().stallMs()).isPositive();
  }

  /**
   * The time bound counts guest execution: instructions recorded and not replayed (icount shift 0:
   * one instruction, one nanosecond). A backup that replays nothing holds the primary once it is
   * {@code maxLag} of guest time behind, long before the byte bound; it lets go once the backup has
   * caught up to within three quarters of it.
   */
  @Test
  void theTimeBoundHoldsThePrimaryAtThatMuchGuestExecution() throws Exception {
    byte[] log = ReplayLogs.events("linux-work-poweroff");
    Duration maxLag = Duration.ofMillis(200);
    Pair pair = new Pair(1 << 30, maxLag);
    // A guest's pace, not memcpy's: the shipper reads as it goes.
    Thread primaryQemu = recordInto(pair, log, 256, 1);
    awaitHeld(pair);
    long written = pair.primaryRing.writePosition();
    Thread.sleep(300);
    assertThat(pair.primaryRing.writePosition()).as("QEMU is held").isEqualTo(written);
    LogShipper.Stats held = pair.shipper.stats();
    assertThat(held.holding()).isTrue();
    assertThat(held.lagMs()).as("held at the time bound").isGreaterThanOrEqualTo(maxLag.toMillis());
    assertThat(written).as("held before the end of the log").isLessThan(log.length);

    ByteArrayOutputStream replayed = new ByteArrayOutputStream();
    byte[] expected = upToPowerOffThenEnd(log);
    Thread backupQemu = start("backup-qemu", () -> readAll(pair.backupRing, replayed, expected.length));
    primaryQemu.join(60_000);
    backupQemu.join(60_000);
    assertThat(replayed.toByteArray()).isEqualTo(expected);
    assertThat(pair.shipper.stats().holding()).isFalse();
    assertThat(pair.shipper.stats().stallMs()).isGreaterThanOrEqualTo(300);
  }

  /**
   * The primary QEMU, as a thread: writes {@code log} into the primary's ring in pieces of
   * {@code piece} bytes, {@code pauseMs} apart, waiting whenever the ring is full or held; then
   * closes the writer.
   */
  private Thread recordInto(Pair pair, byte[] log, int piece, long pauseMs) {
    return start("primary-qemu", () -> {
      try {
        for (int p = 0; p < log.length; ) {
          p += pair.primaryRing.write(log, p, Math.min(piece, log.length - p), Duration.ofMinutes(5));
          if (pauseMs > 0) {
            Thread.sleep(pauseMs);
          }
        }
        pair.primaryRing.closeWriter();
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
  }

  /** Waits until the shipper holds the primary's writer. */
  private static void awaitHeld(Pair pair) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (!pair.primaryRing.writerHeld() || !pair.shipper.stats().holding()) {
      assertThat(System.nanoTime()).as("the shipper holds the primary").isLessThan(deadline);
      Thread.sleep(20);
    }
  }

  /**
   * A real recording whose guest powered off by itself (it ran on for 13,094 instructions before
   * its QEMU paused): both controllers name the icount of the request, and the backup QEMU gets the
   * log up to that request, then END, and nothing after it.
   */
  @Test
  void theBackupQemuGetsTheLogUpToTheGuestsPowerOffThenEnd() throws Exception {
    byte[] log = ReplayLogs.events("linux-work-poweroff");
    Pair pair = new Pair(1 << 20);
    for (int p = 0; p < log.length; ) {
      p += pair.primaryRing.write(log, p, Math.min(3000, log.length - p), Duration.ofSeconds(60));
    }
    pair.primaryRing.closeWriter();
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (pair.receiver.powerOff().isEmpty() || pair.shipper.powerOff()[0] < 0) {
      assertThat(System.nanoTime()).as("both see the power-off").isLessThan(deadline);
      Thread.sleep(10);
    }
    long[] primary = pair.shipper.powerOff();
    ReplayFeed.GuestPowerOff backup = pair.receiver.powerOff().orElseThrow();
    assertThat(primary[1]).isEqualTo(1_975_259_161L).isEqualTo(backup.icount());
    assertThat(backup.end()).isEqualTo(LogRing.BASE_OFFSET + primary[0]);

    int upTo = (int) primary[0];
    ByteArrayOutputStream replayed = new ByteArrayOutputStream();
    byte[] expected = upToPowerOffThenEnd(log);
    assertThat(expected).hasSize(upTo + 1);
    Thread backupQemu = start("backup-qemu", () -> readAll(pair.backupRing, replayed, expected.length));
    backupQemu.join(60_000);
    assertThat(replayed.toByteArray()).isEqualTo(expected);
    awaitAcked(pair.shipper, log.length, upTo);
    assertThat(pair.receiver.replayIcount()).isEqualTo(1_975_259_161L);
    assertThat(pair.receiver.receivedIcount()).as("the whole log was received").isEqualTo(1_975_272_255L);
    Thread.sleep(200);
    assertThat(pair.backupRing.writePosition()).as("nothing after END").isEqualTo(upTo + 1);
    assertThat(pair.receiver.failure()).isNull();
  }

  /**
   * The backup's feed holds an open idle warp back (for a go-live boundary); its QEMU has read
   * everything before it. That must count as replayed: otherwise the primary's flow control,
   * seeing its oldest unreplayed byte age, stops shipping, and the WARP_ACCOUNT that would close
   * the warp never reaches the backup.
   */
  @Test
  void anIdleWarpHeldBackByTheBackupDoesNotStallThePrimary() throws Exception {
    byte[] log = ReplayLogs.events("linux-work-poweroff");
    int warpStart = -1;
    long[] ends = ReplayLogs.eventEnds(log);
    for (int i = 0, start = 0; i < ends.length; start = (int) ends[i], i++) {
      if (start > log.length / 2 && log[start] == 30) { // CHECKPOINT_CLOCK_WARP_START
        warpStart = start;
        break;
      }
    }
    assertThat(warpStart).as("an idle warp in the second half").isPositive();
    int cut = warpStart + 1; // the primary's guest idles: its WARP_START is the last event
    Pair pair = new Pair(1 << 20, Duration.ofMillis(200));
    ByteArrayOutputStream replayed = new ByteArrayOutputStream();
    byte[] expected = upToPowerOffThenEnd(log);
    Thread backupQemu = start("backup-qemu", () -> readAll(pair.backupRing, replayed, expected.length));
    pair.primaryRing.write(log, 0, cut, Duration.ofSeconds(60));
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (replayed.size() < warpStart || pair.shipper.stats().replayed() < cut) { // WARP_START counts
      assertThat(System.nanoTime()).as("the backup has read up to the warp").isLessThan(deadline);
      Thread.sleep(10);
    }
    assertThat(pair.backupRing.writePosition()).as("the open warp is held back").isEqualTo(warpStart);
    Thread.sleep(1000); // five times maxLag
    assertThat(pair.shipper.stats().lagMs()).isLessThan(200);
    for (int p = cut; p < log.length; ) {
      p += pair.primaryRing.write(log, p, Math.min(3000, log.length - p), Duration.ofSeconds(60));
    }
    pair.primaryRing.closeWriter();
    backupQemu.join(60_000);
    assertThat(replayed.toByteArray()).isEqualTo(expected);
  }

  /** The log up to the end of its guest's power-off request, then END (what STOP_THERE feeds). */
  private static byte[] upToPowerOffThenEnd(byte[] log) throws Exception {
    long[] ends = ReplayLogs.eventEnds(log);
    for (int i = 0, start = 0; i < ends.length; start = (int) ends[i], i++) {
      if (org.qemuft.replaylog.ReplayEventKind.of(log[start]).isGuestPowerOff()) {
        byte[] b = java.util.Arrays.copyOf(log, start + 2);
        b[start + 1] = (byte) org.qemuft.replaylog.ReplayEventKind.END.code();
        return b;
      }
    }
    throw new AssertionError("the log has no guest power-off");
  }

  private static long firstEndAfterStartAtOrBeyond(long[] ends, long position) {
    long start = 0;
    for (long end : ends) {
      if (start >= position) {
        return end;
      }
      start = end;
    }
    return Long.MAX_VALUE;
  }

  private static void awaitAcked(LogShipper shipper, long offset) throws InterruptedException {
    awaitAcked(shipper, offset, offset);
  }

  private static void awaitAcked(LogShipper shipper, long offset, long replayed) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (shipper.stats().acked() < offset || shipper.stats().replayed() < replayed) {
      assertThat(System.nanoTime()).as("acked up to " + offset).isLessThan(deadline);
      Thread.sleep(10);
    }
  }

  private static void readAll(LogRing ring, ByteArrayOutputStream into, int length) {
    byte[] buf = new byte[65536];
    try {
      while (into.size() < length) {
        int n = ring.read(buf, 0, buf.length);
        if (n < 0) {
          return;
        }
        if (n == 0) {
          ring.awaitReadable(Duration.ofMillis(100));
          continue;
        }
        into.write(buf, 0, n);
      }
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private LogRing ring(String role) throws Exception {
    Path p = Path.of("/dev/shm", "qemuft-test-" + ProcessHandle.current().pid() + "-"
        + Integer.toHexString(ThreadLocalRandom.current().nextInt()) + "-" + role);
    LogRing ring = LogRing.create(p, RING);
    rings.add(() -> {
      ring.close();
      Files.deleteIfExists(p);
    });
    return ring;
  }

  private Thread start(String name, Runnable r) {
    Thread t = Thread.ofPlatform().daemon().name(name).start(r);
    threads.add(t);
    return t;
  }
}
