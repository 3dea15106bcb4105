package org.qemuft.it.shim;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.gate.GuestNic;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.ServiceClient;
import org.qemuft.it.support.TapRelay;
import org.qemuft.it.support.TestNet;
import org.qemuft.nativeio.Tap;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * A guest's bulk transmit replays exactly even when the host end of its NIC falls behind: the
 * test service sends megabytes to a client over a TAP while the NIC's host end reads slowly
 * (it pauses as a descheduled or garbage-collecting controller would), recorded to a plain file
 * and then replayed from it, without libftshim.
 *
 * <p>With the stream netdev qemu-ft used before, QEMU's write to a full socket failed with EAGAIN,
 * QEMU queued the frame and completed the guest's transmit later from its main loop, at a moment
 * the log does not record, while the replay completes every transmit at once: the replay stopped
 * advancing (docs/libftshim.md, "QEMU surprises"). {@link
 * #theStreamNetdevDivergesWhenItsReaderFallsBehind} reproduces that on request
 * ({@code -Dqemuft.it.slowNic.stream=true} in qemuft.jvm.args); it is not part of the suite.
 */
class SlowNicReaderIT {
  private static final String GUEST_IP = "10.50.0.10";
  private static final Duration BOOT = ShimPairIT.BOOT;
  private static final Duration ANSWER = Duration.ofSeconds(120);
  private static final long SEND_BYTES = 2L << 20;
  private static final int SEND_ROUNDS = 3;
  /** The slow reader: a pause of this many ms after every {@link #PAUSE_EVERY} frames. */
  private static final int PAUSE_MS = Integer.getInteger("qemuft.it.slowNic.pauseMs", 20);
  private static final int PAUSE_EVERY = Integer.getInteger("qemuft.it.slowNic.pauseEvery", 16);

  @TempDir Path tmp;

  /** The host end of the guest NIC under test. */
  private interface HostEnd extends AutoCloseable {
    QemuLaunch attachTo(QemuLaunch launch);

    void started(QemuProcess qemu) throws Exception;

    void sendToGuest(byte[] frame, int len) throws IOException;

    @Override
    void close();
  }

  @Test
  void aBulkTransmitReplaysAlthoughTheNicsHostEndFallsBehind() throws Exception {
    AtomicLong drops = new AtomicLong();
    Recording rec = record(handler -> new UdpEnd(handler, drops));
    System.out.println("frames from the guest the kernel dropped while the host end was behind: " + drops.get());
    assertThat(drops.get()).as("frames the kernel dropped while the host end was behind: without any, this test "
        + "did not make it fall behind").isPositive();
    long replayed = replay(rec, new UdpEnd(f -> { }, new AtomicLong()), Duration.ofSeconds(600))
        .orElseThrow(() -> new AssertionError("the replay did not reach the guest's power-off; log kept as "
            + keep(rec.log)));
    assertThat(replayed).as("the replay pauses where the recording's guest asked to power off")
        .isBetween(rec.atShutdownRequest, rec.icount);
  }

  @Test
  @EnabledIfSystemProperty(named = "qemuft.it.slowNic.stream", matches = "true")
  void theStreamNetdevDivergesWhenItsReaderFallsBehind() throws Exception {
    Recording rec = record(handler -> new StreamEnd(tmp.resolve("nic-" + System.nanoTime() + ".sock"), handler));
    // Recording took well under a minute; a replay that has not finished in three is stuck.
    assertThat(replay(rec, new StreamEnd(tmp.resolve("nic-b.sock"), f -> { }), Duration.ofSeconds(180)))
        .as("the replay of a stream-netdev recording with a slow reader (log kept as " + keep(rec.log) + ")")
        .isEmpty();
  }

  private record Recording(Path log, VmSpec spec, long icount, long atShutdownRequest) {}

  /** Records the service guest through a SEND-heavy session whose host end reads slowly. */
  private Recording record(java.util.function.Function<Consumer<byte[]>, HostEnd> endFor) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("rec"));
    VmSpec spec = Guest.service(GUEST_IP + "/24");
    Path log = dir.resolve("replay.bin");
    AtomicLong frames = new AtomicLong();
    long icount;
    try (TestNet net = new TestNet()) {
      String nsC = net.netns("C");
      try (Tap tap = net.tapInto(nsC, "10.50.0.100/24")) {
        try (HostEnd end = endFor.apply(f -> {
              if (frames.incrementAndGet() % PAUSE_EVERY == 0) {
                sleep(PAUSE_MS);
              }
              try {
                tap.write(f, 0, f.length);
              } catch (IOException e) {
                // the TAP closed at the end of the test
              }
            });
            TapRelay relay = TapRelay.start(tap, end::sendToGuest)) {
          try (QemuProcess primary = end.attachTo(QemuLaunch.of(spec, dir.resolve("p"), "qft-slownic-p")
              .mode(Mode.RECORD, log).pauseOnShutdown(true)).start()) {
            end.started(primary);
            primary.awaitSerial("QEMUFT-READY", BOOT);
            try (ServiceClient c = ServiceClient.connect(nsC, GUEST_IP, BOOT)) {
              for (int round = 1; round <= SEND_ROUNDS; round++) {
                assertThat(c.request("ADD c1 " + round + " 1", ANSWER)).isEqualTo("OK " + round + " " + round);
                c.bulk(SEND_BYTES, ANSWER);
              }
              assertThat(c.request("SHUTDOWN", ANSWER)).isEqualTo("BYE");
            }
            primary.awaitSerial("QEMUFT-SERVICE-EXIT status=0", BOOT);
            try (QemuMonitor qp = QemuMonitor.connect(primary.qmpSocket(), ShimPairIT.QMP)) {
              ShimPairIT.awaitStatus(qp, primary, "shutdown", BOOT);
              icount = qp.queryReplay().icount();
              qp.quit();
            }
            assertThat(primary.awaitExit(ShimPairIT.QMP)).contains(0);
          }
        }
      }
    }
    long[] atRequest = {-1};
    ReplayLogScanner scan = ReplayLogScanner.forLogFile((kind, start, end, ic) -> {
      if (kind == ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN.code()) {
        atRequest[0] = ic;
      }
    }, false);
    scan.feed(Files.readAllBytes(log), 0, (int) Files.size(log));
    assertThat(atRequest[0]).as("the guest's power-off request in the log").isPositive();
    System.out.printf("recorded: %d frames from the guest, icount %d (power-off requested at %d), %d bytes of log%n",
        frames.get(), icount, atRequest[0], Files.size(log));
    return new Recording(log, spec, icount, atRequest[0]);
  }

  /** Replays the recording; the icount where the replay paused at the guest's power-off, or empty. */
  private java.util.Optional<Long> replay(Recording rec, HostEnd end, Duration within) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("play"));
    try (end; QemuProcess backup = end.attachTo(QemuLaunch.of(rec.spec, dir, "qft-slownic-b")
        .mode(Mode.REPLAY, rec.log).pauseOnShutdown(true)).start()) {
      end.started(backup);
      try {
        backup.awaitSerial("QEMUFT-SERVICE-EXIT status=0", within);
      } catch (org.qemuft.controller.vm.QemuException e) {
        System.out.println("the replay did not finish: " + e.getMessage());
        return java.util.Optional.empty();
      }
      try (QemuMonitor qb = QemuMonitor.connect(backup.qmpSocket(), ShimPairIT.QMP)) {
        ShimPairIT.awaitStatus(qb, backup, "shutdown", within);
        long icount = qb.queryReplay().icount();
        qb.quit();
        return java.util.Optional.of(icount);
      }
    }
  }

  private static String keep(Path log) {
    try {
      Path keep = Path.of(System.getProperty("qemuft.root"), "build", "shim-failures",
          "slownic-" + System.currentTimeMillis() + ".bin");
      Files.createDirectories(keep.getParent());
      Files.copy(log, keep);
      return keep.toString();
    } catch (IOException e) {
      return "(not kept: " + e + ")";
    }
  }

  private static void sleep(int ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** qemu-ft's guest NIC: UDP on loopback ({@link GuestNic}). */
  private static final class UdpEnd implements HostEnd {
    private final GuestNic nic;
    private final AtomicLong drops;

    UdpEnd(Consumer<byte[]> handler, AtomicLong drops) {
      try {
        // A small buffer (the kernel makes it 64 KiB, some 25 frames), so that the slow reader
        // surely falls behind far enough for the kernel to drop frames.
        this.nic = GuestNic.open(handler::accept, "qft-slownic", 32 * 1024);
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
      this.drops = drops;
    }

    @Override
    public QemuLaunch attachTo(QemuLaunch launch) {
      return launch.guestNic(nic.address());
    }

    @Override
    public void started(QemuProcess qemu) throws Exception {
      nic.attach(qemu.pid(), ShimPairIT.QMP);
    }

    @Override
    public void sendToGuest(byte[] frame, int len) throws IOException {
      nic.sendToGuest(frame, 0, len);
    }

    @Override
    public void close() {
      drops.set(nic.kernelDrops());
      nic.close();
    }
  }

  /**
   * The netdev qemu-ft used before: {@code -netdev stream} on a Unix socket this end listens on,
   * each frame a 4-byte big-endian length and the frame.
   */
  private static final class StreamEnd implements HostEnd {
    private final Path path;
    private final ServerSocketChannel server;
    private final Thread reader;
    private volatile SocketChannel qemu;

    StreamEnd(Path path, Consumer<byte[]> handler) {
      this.path = path;
      try {
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(path));
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
      reader = Thread.ofPlatform().daemon().name("qft-slownic-stream").start(() -> {
        try (SocketChannel c = server.accept()) {
          qemu = c;
          ByteBuffer len = ByteBuffer.allocate(4);
          while (true) {
            fill(c, len.clear());
            ByteBuffer frame = ByteBuffer.allocate(len.getInt(0));
            fill(c, frame);
            handler.accept(frame.array());
          }
        } catch (IOException e) {
          // QEMU went away, or the test closed this end
        }
      });
    }

    private static void fill(SocketChannel c, ByteBuffer b) throws IOException {
      while (b.hasRemaining()) {
        if (c.read(b) < 0) {
          throw new EOFException();
        }
      }
    }

    @Override
    public QemuLaunch attachTo(QemuLaunch launch) {
      return launch.extraArgs("-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=" + path,
          "-device", "virtio-net-pci,netdev=net0,tx=timer,mac=" + Guest.MAC,
          "-object", "filter-replay,id=net0-replay,netdev=net0");
    }

    @Override
    public void started(QemuProcess qemu) {
      // QEMU connects by itself
    }

    @Override
    public void sendToGuest(byte[] frame, int len) throws IOException {
      SocketChannel c = qemu;
      if (c != null) {
        synchronized (this) {
          ByteBuffer[] bufs = {ByteBuffer.allocate(4).putInt(0, len), ByteBuffer.wrap(frame, 0, len)};
          while (bufs[1].hasRemaining()) {
            c.write(bufs);
          }
        }
      }
    }

    @Override
    public void close() {
      try {
        server.close();
        SocketChannel c = qemu;
        if (c != null) {
          c.close();
        }
        reader.join(5000);
        Files.deleteIfExists(path);
      } catch (IOException | InterruptedException e) {
        // on the way out
      }
    }
  }
}
