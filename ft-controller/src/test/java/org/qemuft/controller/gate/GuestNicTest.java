package org.qemuft.controller.gate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The guest NIC's host end over real UDP sockets on loopback. "QEMU" is a socket of this JVM
 * connected to the NIC's end, as QemuLaunch's wrapper makes QEMU's, so attaching to this process
 * finds it.
 */
class GuestNicTest {
  private static final long SELF = ProcessHandle.current().pid();
  private static final Duration WAIT = Duration.ofSeconds(10);

  @Test
  void framesTravelBothWaysBetweenTheAttachedQemuAndTheHandler() throws Exception {
    List<byte[]> fromGuest = new CopyOnWriteArrayList<>();
    try (GuestNic nic = GuestNic.open(fromGuest::add, "test-nic");
        DatagramChannel qemu = fakeQemu(nic)) {
      assertThat(nic.address().getAddress().isLoopbackAddress()).isTrue();
      assertThat(nic.sendToGuest(new byte[] {1, 2, 3}, 0, 3)).as("nothing attached yet").isFalse();

      nic.attach(SELF, WAIT);
      assertThat(nic.attached()).isTrue();
      assertThat(nic.qemuAddress()).isEqualTo(qemu.getLocalAddress());

      qemu.write(ByteBuffer.wrap(new byte[] {9, 8, 7, 6}));
      await(() -> fromGuest.size() == 1);
      assertThat(fromGuest.getFirst()).containsExactly(9, 8, 7, 6);
      assertThat(nic.framesFromGuest()).isEqualTo(1);

      byte[] frame = new byte[] {0, 1, 2, 3, 4, 5, 6};
      assertThat(nic.sendToGuest(frame, 2, 4)).isTrue();
      ByteBuffer got = ByteBuffer.allocate(100);
      qemu.read(got);
      assertThat(got.flip().remaining()).isEqualTo(4);
      assertThat(got.get(0)).isEqualTo((byte) 2);
      assertThat(nic.framesToGuest()).isEqualTo(1);

      // QEMU 7.2 takes an empty datagram for the end of the connection and stops reading.
      assertThat(nic.sendToGuest(frame, 0, 0)).isFalse();
      assertThat(nic.sendToGuest(new byte[GuestNic.MAX_FRAME + 1], 0, GuestNic.MAX_FRAME + 1)).isFalse();

      assertThatThrownBy(() -> nic.attach(SELF, WAIT)).isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("open a new GuestNic");
    }
  }

  @Test
  void datagramsFromAnythingButQemuAreDropped() throws Exception {
    List<byte[]> fromGuest = new CopyOnWriteArrayList<>();
    try (GuestNic nic = GuestNic.open(fromGuest::add, "test-nic");
        DatagramChannel qemu = fakeQemu(nic);
        DatagramChannel stranger = DatagramChannel.open(StandardProtocolFamily.INET)) {
      stranger.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      // Before the attach this end is not connected yet: the datagram is queued (then discarded
      // by the JDK's connect, or refused by the reader).
      stranger.send(ByteBuffer.wrap(new byte[] {66}), nic.address());
      nic.attach(SELF, WAIT);
      // Connected now: the kernel does not even deliver it.
      stranger.send(ByteBuffer.wrap(new byte[] {67}), nic.address());
      qemu.write(ByteBuffer.wrap(new byte[] {1}));
      qemu.write(ByteBuffer.wrap(new byte[] {2}));
      await(() -> fromGuest.size() == 2);
      assertThat(fromGuest).extracting(f -> f[0]).containsExactly((byte) 1, (byte) 2);
      assertThat(nic.framesFromGuest()).isEqualTo(2);
    }
  }

  @Test
  void aSlowHandlerLosesFramesInTheKernelInsteadOfHoldingQemusSend() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    try (GuestNic nic = GuestNic.open(f -> {
          try {
            release.await(30, TimeUnit.SECONDS);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }, "test-nic");
        DatagramChannel qemu = fakeQemu(nic)) {
      nic.attach(SELF, WAIT);
      qemu.configureBlocking(false);
      int sent = 0;
      for (int i = 0; i < 20_000; i++) {
        // A non-blocking send, as QEMU's: on loopback it never fails for want of room.
        assertThat(qemu.write(ByteBuffer.allocate(1500))).isEqualTo(1500);
        sent++;
      }
      long drops = nic.kernelDrops();
      release.countDown();
      assertThat(sent).isEqualTo(20_000);
      assertThat(drops).as("the receive buffer holds far fewer than 30 MB").isPositive();
    }
  }

  @Test
  void attachingToAProcessWithoutTheSocketFailsWithAReason() throws Exception {
    try (GuestNic nic = GuestNic.open(f -> { }, "test-nic")) {
      assertThatThrownBy(() -> nic.attach(SELF, Duration.ofMillis(200))).isInstanceOf(IOException.class)
          .hasMessageContaining("has no UDP socket connected to the guest NIC end " + nic.address());
      assertThatThrownBy(() -> nic.attach(Long.MAX_VALUE / 2, WAIT)).isInstanceOf(IOException.class)
          .hasMessageContaining("exited before its guest NIC socket");
    }
  }

  @Test
  void theProcTableIsReadByRemoteAddressAndInode() throws Exception {
    InetSocketAddress nicEnd = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0xA027);
    assertThat(GuestNic.procAddress(nicEnd)).isEqualTo("0100007F:A027"); // x86: a little-endian u32
    String table = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
        10747: 0100007F:8A3F 0100007F:0009 01 00000000:00000000 00:00000000 00000000     0        0 471358 2 00000000ea4ff589 0
         6806: 0100007F:BADA 0100007F:A027 01 00000000:00000000 00:00000000 00000000     0        0 522955 2 00000000634b1c54 0
         6807: 0100007F:A027 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 522956 2 00000000634b1c55 17
         6808: 0100007F:BADB 0100007F:A027 01 00000000:00000000 00:00000000 00000000     0        0 999999 2 00000000634b1c56 0
        """;
    assertThat(GuestNic.connectedPort(table, Set.of(522955L, 471358L), nicEnd)).isEqualTo(0xBADA);
    assertThat(GuestNic.connectedPort(table, Set.of(471358L), nicEnd)).isEqualTo(-1);
    assertThatThrownBy(() -> GuestNic.connectedPort(table, Set.of(522955L, 999999L), nicEnd))
        .isInstanceOf(IOException.class).hasMessageContaining("more than one");
    assertThat(GuestNic.dropsOf(table, nicEnd)).isEqualTo(17);
    assertThat(GuestNic.dropsOf(table, new InetSocketAddress(InetAddress.getLoopbackAddress(), 1))).isEqualTo(-1);
  }

  /** A socket connected to the NIC's end, as QemuLaunch's wrapper gives QEMU. */
  private static DatagramChannel fakeQemu(GuestNic nic) throws IOException {
    DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET);
    ch.connect(nic.address());
    return ch;
  }

  private static void await(java.util.function.BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      assertThat(System.nanoTime()).as("condition within " + WAIT).isLessThan(deadline);
      Thread.sleep(5);
    }
  }
}
