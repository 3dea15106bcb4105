package org.qemuft.controller.channel;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.AfterEach;

/** Settings, cleanup, and the check that a closed channel leaves no thread behind. */
abstract class ChannelTestBase {
  static final String PAIR = "web1";
  static final long EPOCH = 7;
  static final byte[] SECRET = "correct horse battery staple, 32".getBytes(StandardCharsets.US_ASCII);
  static final InetSocketAddress ANY_LOOPBACK_PORT = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);

  private final List<AutoCloseable> toClose = Collections.synchronizedList(new ArrayList<>());

  static ChannelSettings settings(boolean compression) {
    return settings(compression, Duration.ofMillis(50), Duration.ofSeconds(2), Duration.ofSeconds(5));
  }

  static ChannelSettings settings(boolean compression, Duration heartbeat, Duration peerTimeout, Duration handshake) {
    return new ChannelSettings(PAIR, EPOCH, SECRET, compression, heartbeat, peerTimeout, handshake);
  }

  <T extends AutoCloseable> T track(T c) {
    toClose.add(c);
    return c;
  }

  LogChannel listen(ChannelSettings s, Recorder r) throws IOException {
    LogChannel c = track(LogChannel.listen(ANY_LOOPBACK_PORT, s, r, r::held));
    r.channel = c;
    return c;
  }

  LogChannel listen(InetSocketAddress at, ChannelSettings s, Recorder r) throws IOException {
    LogChannel c = track(LogChannel.listen(at, s, r, r::held));
    r.channel = c;
    return c;
  }

  LogChannel dial(InetSocketAddress to, ChannelSettings s, Recorder r) {
    LogChannel c = track(LogChannel.dial(to, s, r));
    r.channel = c;
    return c;
  }

  @AfterEach
  void closeEverythingAndCheckThreads() throws Exception {
    List<AutoCloseable> all = new ArrayList<>(toClose);
    Collections.reverse(all);
    for (AutoCloseable c : all) {
      c.close();
    }
    long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
    List<String> left;
    do {
      left = Thread.getAllStackTraces().keySet().stream()
          .filter(t -> t.isAlive() && t.getName().startsWith("qemu-ft channel"))
          .map(Thread::getName).toList();
      if (left.isEmpty()) {
        break;
      }
      Thread.sleep(20);
    } while (System.nanoTime() < deadline);
    assertThat(left).as("channel threads still running after close").isEmpty();
  }
}
