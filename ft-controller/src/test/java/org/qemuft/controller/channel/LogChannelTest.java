package org.qemuft.controller.channel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qemuft.controller.channel.Recorder.Ack;
import org.qemuft.controller.channel.Recorder.Connected;
import org.qemuft.controller.channel.Recorder.Disconnected;
import org.qemuft.controller.channel.Recorder.Log;
import org.qemuft.controller.channel.Recorder.Silent;

/** A real primary and a real backup channel on loopback TCP, and hand-driven peers where one side must misbehave. */
class LogChannelTest extends ChannelTestBase {

  @ParameterizedTest(name = "compression {0}")
  @ValueSource(booleans = {false, true})
  void logFramesArriveIntactInOrderWithOffsetsAndAcksCarryAllThreeNumbers(boolean compression) throws Exception {
    Recorder b = new Recorder();
    b.autoAck = true;
    LogChannel backup = listen(settings(compression), b);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), settings(compression), p);

    PeerInfo toBackup = p.await(Connected.class).peer();
    PeerInfo toPrimary = b.await(Connected.class).peer();
    assertThat(toBackup.role()).isEqualTo("backup");
    assertThat(toBackup.resumeOffset()).isZero();
    assertThat(toBackup.address()).endsWith(":" + backup.localAddress().getPort());
    assertThat(toPrimary.role()).isEqualTo("primary");
    assertThat(primary.connected()).isTrue();
    assertThat(primary.nextOffset()).isZero();

    // A real replay log cut into whole events, then incompressible bytes, then one big frame.
    byte[] events = ReplayLogs.events("seabios-sigterm");
    long[] bounds = ReplayLogs.cut(events, 42, 1, 8192);
    ByteArrayOutputStream sent = new ByteArrayOutputStream();
    long offset = 0;
    for (int i = 0; i + 1 < bounds.length; i++) {
      int len = (int) (bounds[i + 1] - bounds[i]);
      primary.sendLog(offset, events, (int) bounds[i], len);
      sent.write(events, (int) bounds[i], len);
      offset += len;
    }
    SplittableRandom r = new SplittableRandom(7);
    for (int len : new int[] {1, 3, 1000, 65537, 3 << 20}) {
      byte[] noise = new byte[len + 10];
      r.nextBytes(noise);
      primary.sendLog(offset, noise, 10, len); // from an offset inside the caller's array
      sent.write(noise, 10, len);
      offset += len;
    }
    long total = offset;
    assertThat(primary.nextOffset()).isEqualTo(total);

    Ack last = p.await(Ack.class, a -> a.held() == total);
    assertThat(last.replayed()).isEqualTo(total / 2);
    assertThat(last.icount()).isEqualTo(total * 3);
    assertThat(b.stream()).isEqualTo(sent.toByteArray());
    List<Log> logs = b.all(Log.class);
    assertThat(logs).hasSize(bounds.length - 1 + 5);
    long expect = 0;
    for (Log l : logs) {
      assertThat(l.offset()).isEqualTo(expect);
      expect += l.len();
    }
    List<Ack> acks = p.all(Ack.class);
    for (int i = 1; i < acks.size(); i++) {
      assertThat(acks.get(i).held()).isGreaterThanOrEqualTo(acks.get(i - 1).held());
    }
    assertThat(b.violations()).isEmpty();
    assertThat(p.violations()).isEmpty();

    ChannelStats ps = primary.stats();
    ChannelStats bs = backup.stats();
    assertThat(ps.logBytesRaw()).isEqualTo(total);
    assertThat(bs.logBytesRaw()).isEqualTo(total);
    assertThat(bs.logBytesWire()).isEqualTo(ps.logBytesWire());
    if (compression) {
      assertThat(ps.logBytesWire()).isLessThan(total); // the noise does not compress; the log does
    } else {
      assertThat(ps.logBytesWire()).isEqualTo(total + (long) Wire.HEADER * logs.size());
    }
    assertThat(ps.connects()).isEqualTo(1);
    assertThat(bs.connects()).isEqualTo(1);
    assertThat(ps.framesSent()).isGreaterThanOrEqualTo(logs.size());
    assertThat(bs.framesReceived()).isGreaterThanOrEqualTo(logs.size());
    assertThat(ps.lastFrameAgeMs()).isGreaterThanOrEqualTo(0);
    assertThat(ps.resets()).isZero();
    assertThat(ps.authFailures()).isZero();
  }

  @Test
  void heartbeatsKeepAnIdleLinkAlive() throws Exception {
    ChannelSettings s = settings(true, Duration.ofMillis(50), Duration.ofMillis(1500), Duration.ofSeconds(5));
    Recorder b = new Recorder();
    LogChannel backup = listen(s, b);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), s, p);
    p.await(Connected.class);
    b.await(Connected.class);
    long pBefore = primary.stats().framesReceived();
    long bBefore = backup.stats().framesReceived();

    Thread.sleep(3 * s.peerTimeout().toMillis()); // nothing but heartbeats for three peer timeouts

    assertThat(p.all(Silent.class)).isEmpty();
    assertThat(b.all(Silent.class)).isEmpty();
    assertThat(p.all(Disconnected.class)).isEmpty();
    // 4.5 s at one heartbeat per 50 ms is ~90 each way; ask for far fewer (the machine is loaded).
    assertThat(primary.stats().framesReceived() - pBefore).isGreaterThan(10);
    assertThat(backup.stats().framesReceived() - bBefore).isGreaterThan(10);
    assertThat(primary.stats().lastFrameAgeMs()).isLessThan(s.peerTimeout().toMillis());
  }

  @Test
  void aSilentPrimaryIsReportedOncePerSilence() throws Exception {
    ChannelSettings s = settings(false, Duration.ofMillis(50), Duration.ofMillis(400), Duration.ofSeconds(5));
    Recorder b = new Recorder();
    LogChannel backup = listen(s, b);
    try (RawPeer primary = RawPeer.connect(backup.localAddress())) {
      primary.authenticateAsPrimary(PAIR, EPOCH, SECRET);
      b.await(Connected.class);

      Silent first = b.await(Silent.class);
      assertThat(first.silentFor()).isGreaterThanOrEqualTo(s.peerTimeout());
      Thread.sleep(4 * s.peerTimeout().toMillis()); // still silent: no second report
      assertThat(b.all(Silent.class)).hasSize(1);

      primary.sendFrame(TestFrames.HEARTBEAT, 0, 0, new byte[0]); // one sign of life ends that silence
      Silent second = b.await(Silent.class, 2, x -> true);
      assertThat(second.silentFor()).isGreaterThanOrEqualTo(s.peerTimeout());
      assertThat(b.all(Disconnected.class)).as("silence alone does not drop the connection").isEmpty();
      assertThat(backup.connected()).isTrue();
    }
  }

  @Test
  void aSilentBackupIsReportedToThePrimary() throws Exception {
    ChannelSettings s = settings(false, Duration.ofMillis(50), Duration.ofMillis(400), Duration.ofSeconds(5));
    try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
      Recorder p = new Recorder();
      dial(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()), s, p);
      try (RawPeer backup = RawPeer.accept(server)) {
        backup.authenticateAsBackup(PAIR, EPOCH, SECRET, 0);
        p.await(Connected.class);
        Silent silent = p.await(Silent.class);
        assertThat(silent.silentFor()).isGreaterThanOrEqualTo(s.peerTimeout());
        // Meanwhile the primary's own heartbeats kept coming.
        assertThat(backup.frames().stream().filter(f -> f.type() == TestFrames.HEARTBEAT).count()).isPositive();
      }
    }
  }

  @Test
  void goodbyeCarriesTheReasonAndTheBackupResumesWhereItsBufferEnds() throws Exception {
    Recorder b = new Recorder();
    LogChannel backup = listen(settings(true), b);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), settings(true), p);
    p.await(Connected.class);
    primary.sendLog(0, new byte[100], 0, 100);
    b.await(Log.class);

    backup.close("backup host going down for maintenance");
    Disconnected d = p.await(Disconnected.class);
    assertThat(d.reason()).isEqualTo("the backup said goodbye: backup host going down for maintenance");
    assertThat(b.await(Disconnected.class).reason()).startsWith("closed by this controller: backup host going down");
    assertThat(primary.connected()).isFalse();
    assertThatThrownBy(() -> primary.sendLog(100, new byte[1], 0, 1)).isInstanceOf(IOException.class)
        .hasMessageContaining("not connected");

    // A new backup on the same address holds 100 bytes less 40 (it lost its tail): the primary redials and resumes at 60.
    Recorder b2 = new Recorder();
    b2.onLog(0, new byte[60], 60);
    listen(backup.localAddress(), settings(true), b2);
    Connected again = p.await(Connected.class, 2, x -> true);
    assertThat(again.peer().resumeOffset()).isEqualTo(60);
    assertThat(primary.nextOffset()).isEqualTo(60);
    assertThatThrownBy(() -> primary.sendLog(100, new byte[1], 0, 1)).isInstanceOf(IOException.class)
        .hasMessageContaining("continues at 60");
    primary.sendLog(60, new byte[] {1, 2, 3}, 0, 3);
    b2.await(Log.class, l -> l.offset() == 60);
    assertThat(primary.stats().resets()).as("GOODBYE is a clean close").isZero();
    assertThat(primary.stats().connects()).isEqualTo(2);

    primary.close("primary host going down");
    assertThat(b2.await(Disconnected.class).reason()).isEqualTo("the primary said goodbye: primary host going down");
    primary.close("twice is harmless");
  }

  @Test
  void theApiRefusesMisuseWithClearErrors() throws Exception {
    Recorder b = new Recorder();
    LogChannel backup = listen(settings(false), b);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), settings(false), p);
    p.await(Connected.class);

    assertThatThrownBy(() -> primary.sendLog(0, new byte[10], 0, 0)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> primary.sendLog(0, new byte[10], 5, 6)).isInstanceOf(IndexOutOfBoundsException.class);
    assertThatThrownBy(() -> primary.sendLog(0, new byte[LogChannel.MAX_LOG_BYTES + 1], 0, LogChannel.MAX_LOG_BYTES + 1))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(String.valueOf(LogChannel.MAX_LOG_BYTES));
    assertThatThrownBy(() -> primary.sendLog(5, new byte[10], 0, 10)).isInstanceOf(IOException.class)
        .hasMessageContaining("continues at 0");
    assertThatThrownBy(() -> primary.sendAck(0, 0, 0)).isInstanceOf(IllegalStateException.class);
    assertThatThrownBy(() -> backup.sendLog(0, new byte[1], 0, 1)).isInstanceOf(IllegalStateException.class);

    b.await(Connected.class);
    assertThatThrownBy(() -> backup.sendAck(1, 0, 0)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("received the stream only up to 0");
    assertThatThrownBy(() -> backup.sendAck(0, 1, 0)).isInstanceOf(IllegalArgumentException.class);
    primary.sendLog(0, new byte[10], 0, 10);
    b.await(Log.class);
    backup.sendAck(10, 0, 0);
    assertThatThrownBy(() -> backup.sendAck(5, 0, 0)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("must not go backwards");
    assertThat(p.await(Ack.class).held()).isEqualTo(10);
    // The misuse was refused before anything went on the wire: the connection is still up.
    assertThat(primary.connected()).isTrue();
    assertThat(p.all(Disconnected.class)).isEmpty();

    assertThatThrownBy(() -> new ChannelSettings(PAIR, EPOCH, new byte[15], true, Duration.ofMillis(50), Duration.ofSeconds(1)))
        .hasMessageContaining("at least 16");
    assertThatThrownBy(() -> new ChannelSettings("web 1", EPOCH, SECRET, true, Duration.ofMillis(50), Duration.ofSeconds(1)))
        .hasMessageContaining("web 1");
    assertThatThrownBy(() -> new ChannelSettings(PAIR, EPOCH, SECRET, true, Duration.ofMillis(50), Duration.ofMillis(99)))
        .hasMessageContaining("two heartbeat intervals");
    assertThat(settings(true).toString()).doesNotContain(new String(SECRET, java.nio.charset.StandardCharsets.US_ASCII));
  }

  @Test
  void sendLogBeforeAnyConnectionThrowsInsteadOfWaiting() throws Exception {
    int port;
    try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = free.getLocalPort(); // nothing listens there once this closes
    }
    Recorder p = new Recorder();
    LogChannel primary = dial(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port), settings(true), p);
    assertThat(primary.connected()).isFalse();
    assertThat(primary.nextOffset()).isEqualTo(-1);
    assertThatThrownBy(() -> primary.sendLog(0, new byte[1], 0, 1)).isInstanceOf(IOException.class)
        .hasMessageContaining("not connected to the backup");
    assertThat(primary.stats().lastFrameAgeMs()).isEqualTo(-1);
  }

  @Test
  void aBackupThatStopsReadingIsPresumedDeadWithinThePeerTimeoutAndTheWriterIsFreed() throws Exception {
    ChannelSettings s = settings(false, Duration.ofMillis(50), Duration.ofMillis(600), Duration.ofSeconds(5));
    try (ServerSocket server = new ServerSocket()) {
      server.setReceiveBufferSize(4096);
      server.bind(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      Recorder p = new Recorder();
      LogChannel primary = dial(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()), s, p);
      try (RawPeer backup = RawPeer.accept(server)) {
        backup.authenticateAsBackup(PAIR, EPOCH, SECRET, 0);
        p.await(Connected.class);
        backup.pauseReading();

        AtomicReference<Throwable> thrown = new AtomicReference<>();
        byte[] chunk = new byte[256 << 10];
        Thread shipper = Thread.ofPlatform().start(() -> {
          try {
            for (long off = 0; ; off += chunk.length) {
              primary.sendLog(off, chunk, 0, chunk.length);
            }
          } catch (Throwable t) {
            thrown.set(t);
          }
        });
        shipper.join(30_000);
        assertThat(shipper.isAlive()).as("the blocked writer was freed").isFalse();
        assertThat(thrown.get()).isInstanceOf(IOException.class).hasMessageContaining("has read nothing for");
        assertThat(p.await(Disconnected.class).reason()).contains("presumed dead");
        assertThat(primary.stats().resets()).isEqualTo(1);
      }
    }
  }

  @Test
  void aNewAuthenticatedPrimaryConnectionReplacesTheOldOne() throws Exception {
    Recorder b = new Recorder();
    LogChannel backup = listen(settings(false), b);
    try (RawPeer first = RawPeer.connect(backup.localAddress())) {
      first.authenticateAsPrimary(PAIR, EPOCH, SECRET);
      first.sendFrame(TestFrames.LOG, 0, 0, new byte[] {9, 9, 9});
      b.await(Log.class);
      try (RawPeer second = RawPeer.connect(backup.localAddress())) {
        long resume = second.authenticateAsPrimary(PAIR, EPOCH, SECRET);
        assertThat(resume).as("resume is sampled after the old connection's last callback").isEqualTo(3);
        first.awaitClosedByPeer();
        List<Recorder.Event> ev = b.events();
        assertThat(ev).extracting(e -> e.getClass().getSimpleName())
            .containsExactly("Connected", "Log", "Disconnected", "Connected");
        assertThat(b.all(Disconnected.class).getFirst().reason()).contains("replaced by a new authenticated connection");
        assertThat(b.violations()).isEmpty();
      }
    }
  }

  @Test
  void aNewConnectionWaitsForTheLastCallbackOfAConnectionThatEndedOnItsOwn() throws Exception {
    java.util.concurrent.CountDownLatch inDisconnected = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.atomic.AtomicBoolean busy = new java.util.concurrent.atomic.AtomicBoolean();
    java.util.concurrent.atomic.AtomicBoolean overlapped = new java.util.concurrent.atomic.AtomicBoolean();
    Recorder b = new Recorder() {
      @Override
      public void onConnected(PeerInfo peer) {
        overlapped.compareAndSet(false, busy.get());
        super.onConnected(peer);
      }

      @Override
      public void onDisconnected(String reason) {
        busy.set(true);
        super.onDisconnected(reason);
        inDisconnected.countDown();
        try {
          Thread.sleep(500); // a slow controller, still busy with the old connection
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        busy.set(false);
      }
    };
    LogChannel backup = listen(settings(false), b);
    try (RawPeer first = RawPeer.connect(backup.localAddress())) {
      first.authenticateAsPrimary(PAIR, EPOCH, SECRET);
      b.await(Connected.class);
    } // EOF: the old connection ends by itself
    assertThat(inDisconnected.await(20, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
    try (RawPeer second = RawPeer.connect(backup.localAddress())) {
      second.authenticateAsPrimary(PAIR, EPOCH, SECRET);
      b.await(Connected.class, 2, x -> true);
    }
    assertThat(overlapped.get()).as("the new onConnected ran while the old onDisconnected had not returned").isFalse();
    assertThat(b.violations()).isEmpty();
    assertThat(b.events()).extracting(e -> e.getClass().getSimpleName())
        .startsWith("Connected", "Disconnected", "Connected");
  }

  @Test
  void aRepeatedAuthFailureIsWarnedOnceNotEverySecond() {
    LogChannel.RepeatFilter f = new LogChannel.RepeatFilter();
    assertThat(f.note("wrong secret")).isZero();
    assertThat(f.note("wrong secret")).isEqualTo(-1);
    assertThat(f.note("wrong secret")).isEqualTo(-1);
    assertThat(f.note("wrong epoch")).isZero();
    assertThat(f.note("wrong epoch")).isEqualTo(-1);
  }

  @Test
  void closeFromInsideACallbackReturnsAndStopsEverything() throws Exception {
    AtomicReference<LogChannel> self = new AtomicReference<>();
    Recorder b = new Recorder() {
      @Override
      public void onLog(long offset, byte[] events, int len) {
        super.onLog(offset, events, len);
        self.get().close("closing from onLog");
      }
    };
    LogChannel backup = listen(settings(true), b);
    self.set(backup);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), settings(true), p);
    p.await(Connected.class);
    primary.sendLog(0, new byte[5], 0, 5);
    assertThat(b.await(Disconnected.class).reason()).isEqualTo("closed by this controller: closing from onLog");
    assertThat(p.await(Disconnected.class).reason()).isEqualTo("the backup said goodbye: closing from onLog");
    assertThat(backup.connected()).isFalse();
  }
}
