package org.qemuft.it.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.qemuft.it.support.TestNet;
import org.qemuft.nativeio.Tap;

/** The FFM TAP device against the real kernel network stack. */
class TapIT {
  private static final byte[] OUR_MAC = HexFormat.of().parseHex("525400abcdef");
  private static final byte[] OUR_IP = {10, 99, 0, 2};
  private static final byte[] THEIR_IP = {10, 99, 0, 1};

  @Test
  void aFrameWrittenReachesTheKernelAndItsAnswerIsRead() throws Exception {
    try (TestNet net = new TestNet()) {
      String ns = net.netns("tap");
      // The device lives as long as our descriptor; it goes where the kernel answers for 10.99.0.1.
      try (Tap tap = net.tapInto(ns, "10.99.0.1/24")) {

        byte[] buf = new byte[Tap.MAX_FRAME];
        byte[] reply = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (reply == null && System.nanoTime() < deadline) {
          byte[] req = arpRequest();
          tap.write(req, 0, req.length);
          int n;
          while ((n = tap.read(buf, Duration.ofMillis(500))) > 0) {
            if (isArpReplyToUs(buf, n)) {
              reply = java.util.Arrays.copyOf(buf, n);
              break;
            }
          }
        }
        assertThat(reply).as("an ARP reply for 10.99.0.1 from the kernel").isNotNull();
        assertThat(java.util.Arrays.copyOfRange(reply, 0, 6)).isEqualTo(OUR_MAC);
      }
    }
  }

  @Test
  void closeEndsABlockedRead() throws Exception {
    try (TestNet net = new TestNet()) {
      Tap tap = Tap.open(net.name("c"));
      CompletableFuture<Integer> read = CompletableFuture.supplyAsync(() -> {
        try {
          return tap.read(new byte[Tap.MAX_FRAME], Duration.ofMinutes(5));
        } catch (IOException e) {
          throw new IllegalStateException(e);
        }
      });
      Thread.sleep(200);
      tap.close();
      assertThat(read.get(30, TimeUnit.SECONDS)).isEqualTo(-1);
      assertThatThrownBy(() -> tap.write(new byte[60], 0, 60)).hasMessageContaining("is closed");
    }
  }

  @Test
  void badNamesAreRefusedWithTheReason() {
    assertThatThrownBy(() -> Tap.open("a-name-longer-than-15")).hasMessageContaining("1-15 characters");
    assertThatThrownBy(() -> Tap.open("lo")).hasMessageContaining("cannot attach to TAP device lo");
  }

  private static byte[] arpRequest() {
    ByteBuffer b = ByteBuffer.allocate(60);
    b.put(new byte[] {-1, -1, -1, -1, -1, -1}).put(OUR_MAC).putShort((short) 0x0806);
    b.putShort((short) 1).putShort((short) 0x0800).put((byte) 6).put((byte) 4).putShort((short) 1);
    b.put(OUR_MAC).put(OUR_IP).put(new byte[6]).put(THEIR_IP);
    return b.array();
  }

  private static boolean isArpReplyToUs(byte[] f, int n) {
    return n >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2
        && java.util.Arrays.equals(f, 28, 32, THEIR_IP, 0, 4);
  }
}
