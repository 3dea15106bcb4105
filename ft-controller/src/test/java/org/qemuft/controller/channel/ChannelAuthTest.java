package org.qemuft.controller.channel;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.qemuft.controller.channel.Recorder.AuthFailure;
import org.qemuft.controller.channel.Recorder.Connected;
import org.qemuft.controller.channel.Recorder.Disconnected;
import org.qemuft.controller.channel.Recorder.Log;
import org.slf4j.LoggerFactory;

/**
 * Peers that fail authentication, on either side: each is refused and disconnected, the refusal is
 * logged with what was wrong, the peer receives nothing but the handshake (never a LOG byte), and
 * a correct peer can connect afterwards.
 */
class ChannelAuthTest extends ChannelTestBase {
  private static final byte[] WRONG_SECRET = "another pair's secret, 32 bytes!".getBytes(StandardCharsets.US_ASCII);
  private static final ChannelSettings QUICK = settings(true, Duration.ofMillis(50), Duration.ofSeconds(2), Duration.ofSeconds(1));

  private final ListAppender<ILoggingEvent> logged = new ListAppender<>();

  @BeforeEach
  void captureLog() {
    logged.start();
    ((Logger) LoggerFactory.getLogger(LogChannel.class)).addAppender(logged);
  }

  @AfterEach
  void stopCapturingLog() {
    ((Logger) LoggerFactory.getLogger(LogChannel.class)).detachAppender(logged);
  }

  private void assertLoggedWarning(String fragment) {
    List<String> warnings;
    synchronized (logged.list) {
      warnings = logged.list.stream().filter(e -> e.getLevel() == Level.WARN).map(ILoggingEvent::getFormattedMessage).toList();
    }
    assertThat(warnings).anySatisfy(w -> assertThat(w).contains("authentication failed").contains(fragment));
  }

  /** What a would-be primary does wrong, and the words the backup must use for it. */
  enum HostilePrimary {
    WRONG_SECRET("its proof does not match"),
    WRONG_PAIR_ID("it serves pair 'web2', this controller serves pair 'web1'"),
    WRONG_EPOCH("it is in epoch 6, this controller is in epoch 7"),
    SAYS_IT_IS_A_BACKUP("it says it is the backup"),
    PROOF_MADE_FOR_THE_BACKUP_ROLE("its proof does not match"),
    HTTP_REQUEST("bad magic 47 45 54 20"),
    RANDOM_BYTES("bad magic"),
    LOG_BEFORE_AUTHENTICATING("it sent a LOG frame where its HELLO"),
    AUTH_WITHOUT_HELLO("it sent an AUTH frame where its HELLO"),
    OVERSIZED_HELLO("more than the 1024 allowed before authentication"),
    TRUNCATED_HELLO("its HELLO is"),
    SILENT("said nothing within the handshake timeout (1000 ms)"),
    HALF_A_HEADER_THEN_SILENT("did not complete the handshake within 1000 ms (it sent 10 bytes)"),
    TRICKLES_ITS_HELLO("did not complete the handshake within 1000 ms");

    final String reason;

    HostilePrimary(String reason) {
      this.reason = reason;
    }
  }

  @ParameterizedTest
  @EnumSource(HostilePrimary.class)
  void theBackupRefusesAHostilePrimaryAndStillServesTheRealOne(HostilePrimary how) throws Exception {
    Recorder b = new Recorder();
    b.autoAck = true;
    LogChannel backup = listen(QUICK, b);
    try (RawPeer hostile = RawPeer.connect(backup.localAddress())) {
      misbehaveAsPrimary(how, hostile);
      hostile.awaitClosedByPeer();
      AuthFailure f = b.await(AuthFailure.class);
      assertThat(f.reason()).contains(how.reason);
      assertThat(f.peer()).startsWith("127.0.0.1:");
      assertLoggedWarning(how.reason);
      // All it ever got was the backup's HELLO: no proof, no ack, no log.
      assertThat(hostile.frameTypes()).containsExactly(TestFrames.HELLO);
      assertThat(hostile.received()).hasSize(hostile.frames().getFirst().payload().length + TestFrames.HEADER);
    }
    assertThat(b.all(Connected.class)).isEmpty();
    assertThat(b.all(Log.class)).isEmpty();
    assertThat(backup.stats().authFailures()).isEqualTo(1);
    assertThat(backup.stats().connects()).isZero();

    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), QUICK, p);
    p.await(Connected.class);
    primary.sendLog(0, new byte[] {1, 2, 3}, 0, 3);
    assertThat(p.await(Recorder.Ack.class).held()).isEqualTo(3);
    assertThat(b.stream()).containsExactly(1, 2, 3);
  }

  private static void misbehaveAsPrimary(HostilePrimary how, RawPeer h) throws Exception {
    SplittableRandom r = new SplittableRandom(how.ordinal());
    switch (how) {
      case WRONG_SECRET -> {
        byte[] nb = backupNonce(h);
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH, h.myNonce));
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(WRONG_SECRET, TestFrames.PRIMARY, PAIR, EPOCH, h.myNonce, nb, 0));
      }
      case WRONG_PAIR_ID -> {
        byte[] nb = backupNonce(h);
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, "web2", EPOCH, h.myNonce));
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(SECRET, TestFrames.PRIMARY, "web2", EPOCH, h.myNonce, nb, 0));
      }
      case WRONG_EPOCH -> {
        byte[] nb = backupNonce(h);
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH - 1, h.myNonce));
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(SECRET, TestFrames.PRIMARY, PAIR, EPOCH - 1, h.myNonce, nb, 0));
      }
      case SAYS_IT_IS_A_BACKUP -> {
        byte[] nb = backupNonce(h);
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, PAIR, EPOCH, h.myNonce));
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(SECRET, TestFrames.BACKUP, PAIR, EPOCH, h.myNonce, nb, 0));
      }
      case PROOF_MADE_FOR_THE_BACKUP_ROLE -> {
        // The right secret but the backup's role in the proof: what a reflected backup proof is.
        byte[] nb = backupNonce(h);
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH, h.myNonce));
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(SECRET, TestFrames.BACKUP, PAIR, EPOCH, h.myNonce, nb, 0));
      }
      case HTTP_REQUEST -> h.send("GET / HTTP/1.1\r\nHost: backup\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
      case RANDOM_BYTES -> {
        byte[] junk = new byte[100];
        r.nextBytes(junk);
        junk[0] = 0x01;
        h.send(junk);
      }
      case LOG_BEFORE_AUTHENTICATING -> h.sendFrame(TestFrames.LOG, 0, 0, new byte[] {0, 0, 0, 0, 7});
      case AUTH_WITHOUT_HELLO -> h.sendFrame(TestFrames.AUTH, 0, 0, new byte[32]);
      case OVERSIZED_HELLO -> h.send(TestFrames.frame(TestFrames.MAGIC, 1, TestFrames.HELLO, 0, 0, 0, 5 << 20, new byte[0]));
      case TRUNCATED_HELLO -> h.sendFrame(TestFrames.HELLO, 0, 0, new byte[] {1, 4, 'w', 'e'});
      case SILENT -> { /* says nothing */ }
      case TRICKLES_ITS_HELLO -> {
        // One byte every 50 ms: each read brings data, but the handshake never completes in time.
        byte[] hello = TestFrames.frame(TestFrames.HELLO, 0, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH, h.myNonce));
        for (int i = 0; i < hello.length && !h.closedByPeer(); i++) {
          try {
            h.send(new byte[] {hello[i]});
          } catch (IOException e) {
            break;
          }
          Thread.sleep(50);
        }
      }
      case HALF_A_HEADER_THEN_SILENT -> h.send(java.util.Arrays.copyOf(
          TestFrames.frame(TestFrames.HELLO, 0, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH, h.myNonce)), 10));
    }
  }

  private static byte[] backupNonce(RawPeer h) throws InterruptedException {
    TestFrames.Frame hello = h.awaitFrame(f -> f.type() == TestFrames.HELLO);
    byte[] p = hello.payload();
    return java.util.Arrays.copyOfRange(p, p.length - 32, p.length);
  }

  @Test
  void aReplayedPrimaryHandshakeIsRefused() throws Exception {
    Recorder b = new Recorder();
    LogChannel backup = listen(QUICK, b);
    byte[] captured;
    try (FrameProxy proxy = new FrameProxy(backup.localAddress(), (c, i, f) -> f)) {
      Recorder p = new Recorder();
      LogChannel primary = LogChannel.dial(proxy.address(), QUICK, p);
      p.await(Connected.class);
      primary.sendLog(0, new byte[] {5}, 0, 1);
      b.await(Log.class);
      primary.close("done recording");
      b.await(Disconnected.class);
      captured = proxy.fromPrimary(0);
    }
    List<byte[]> frames = FrameProxy.split(captured);
    assertThat(TestFrames.parse(captured).subList(0, 2)).extracting(TestFrames.Frame::type)
        .containsExactly(TestFrames.HELLO, TestFrames.AUTH);

    try (RawPeer replayer = RawPeer.connect(backup.localAddress())) {
      replayer.awaitFrame(f -> f.type() == TestFrames.HELLO);
      replayer.send(frames.get(0)); // the genuine primary's HELLO, with its old nonce
      replayer.send(frames.get(1)); // and its genuine proof, made for the old backup nonce
      replayer.awaitClosedByPeer();
      assertThat(b.await(AuthFailure.class).reason()).contains("its proof does not match");
      assertLoggedWarning("its proof does not match");
      assertThat(replayer.frameTypes()).containsExactly(TestFrames.HELLO);
    }
    assertThat(b.all(Connected.class)).hasSize(1); // only the genuine one
  }

  @Test
  void aHostilePeerDoesNotDisturbTheConnectedPrimary() throws Exception {
    Recorder b = new Recorder();
    b.autoAck = true;
    LogChannel backup = listen(QUICK, b);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), QUICK, p);
    p.await(Connected.class);
    primary.sendLog(0, new byte[] {1}, 0, 1);
    for (HostilePrimary how : List.of(HostilePrimary.WRONG_SECRET, HostilePrimary.HTTP_REQUEST, HostilePrimary.WRONG_EPOCH)) {
      try (RawPeer hostile = RawPeer.connect(backup.localAddress())) {
        misbehaveAsPrimary(how, hostile);
        hostile.awaitClosedByPeer();
        assertThat(hostile.frameTypes()).containsExactly(TestFrames.HELLO);
      }
    }
    primary.sendLog(1, new byte[] {2}, 0, 1);
    assertThat(p.await(Recorder.Ack.class, a -> a.held() == 2).held()).isEqualTo(2);
    assertThat(b.all(AuthFailure.class)).hasSize(3);
    assertThat(b.all(Disconnected.class)).isEmpty();
    assertThat(p.all(Disconnected.class)).isEmpty();
    assertThat(b.stream()).containsExactly(1, 2);
  }

  @Test
  void tooManySimultaneousUnauthenticatedConnectionsAreCutOff() throws Exception {
    Recorder b = new Recorder();
    LogChannel backup = listen(settings(true, Duration.ofMillis(50), Duration.ofSeconds(2), Duration.ofSeconds(10)), b);
    List<RawPeer> silent = new ArrayList<>();
    try {
      for (int i = 0; i < LogChannel.MAX_PENDING_HANDSHAKES; i++) {
        RawPeer s = RawPeer.connect(backup.localAddress());
        silent.add(s);
        s.awaitFrame(f -> f.type() == TestFrames.HELLO); // each is being handshaken
      }
      try (RawPeer oneTooMany = RawPeer.connect(backup.localAddress())) {
        oneTooMany.awaitClosedByPeer();
        assertThat(oneTooMany.received()).isEmpty();
      }
      assertThat(b.await(AuthFailure.class).reason()).contains("too many unauthenticated connections");
    } finally {
      for (RawPeer s : silent) {
        s.close();
      }
    }
    // Once they are gone, the primary gets in.
    Recorder p = new Recorder();
    dial(backup.localAddress(), QUICK, p);
    p.await(Connected.class);
  }

  /** What a would-be backup does wrong, the words the primary must use, and what it may have sent. */
  enum HostileBackup {
    WRONG_SECRET("its proof does not match", TestFrames.HELLO, TestFrames.AUTH),
    WRONG_PAIR_ID("it serves pair 'web2'", TestFrames.HELLO),
    WRONG_EPOCH("it is in epoch 8, this controller is in epoch 7", TestFrames.HELLO),
    SAYS_IT_IS_A_PRIMARY("it says it is the primary", TestFrames.HELLO),
    PROOF_MADE_FOR_THE_PRIMARY_ROLE("its proof does not match", TestFrames.HELLO, TestFrames.AUTH),
    PROOF_FOR_ANOTHER_RESUME_OFFSET("its proof does not match", TestFrames.HELLO, TestFrames.AUTH),
    GARBAGE("bad magic", TestFrames.HELLO),
    SILENT("said nothing within the handshake timeout", TestFrames.HELLO),
    NO_PROOF("closed the connection while we waited for its proof", TestFrames.HELLO, TestFrames.AUTH);

    final String reason;
    final Integer[] mayReceive;

    HostileBackup(String reason, Integer... mayReceive) {
      this.reason = reason;
      this.mayReceive = mayReceive;
    }
  }

  @ParameterizedTest
  @EnumSource(HostileBackup.class)
  void thePrimarySendsNoLogToAHostileBackupAndConnectsToTheRealOneAfterwards(HostileBackup how) throws Exception {
    ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress());
    InetSocketAddress at = new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort());
    Recorder p = new Recorder();
    LogChannel primary = dial(at, QUICK, p);
    List<String> shipErrors = Collections.synchronizedList(new ArrayList<>());
    AtomicBoolean shipped = new AtomicBoolean();
    Thread shipper = Thread.ofPlatform().daemon().start(() -> {
      while (!shipped.get()) { // a shipper that tries all the time, as a careless one would
        try {
          primary.sendLog(0, new byte[] {42}, 0, 1);
          shipped.set(true);
        } catch (IOException e) {
          shipErrors.add(e.getMessage());
          try {
            Thread.sleep(1);
          } catch (InterruptedException ie) {
            return;
          }
        } catch (InterruptedException e) {
          return;
        }
      }
    });
    try {
      while (shipErrors.isEmpty()) { // the shipper is trying before the hostile backup answers
        Thread.sleep(1);
      }
      try (RawPeer hostile = RawPeer.accept(server)) {
        misbehaveAsBackup(how, hostile);
        hostile.awaitClosedByPeer();
        assertThat(p.await(AuthFailure.class).reason()).contains(how.reason);
        assertLoggedWarning(how.reason);
        assertThat(hostile.frameTypes()).containsExactly(how.mayReceive);
      }
      assertThat(shipped.get()).isFalse();
      List<String> errors;
      synchronized (shipErrors) {
        errors = new ArrayList<>(shipErrors);
      }
      assertThat(errors).isNotEmpty().allSatisfy(m -> assertThat(m).contains("not connected"));
      assertThat(p.all(Connected.class)).isEmpty();
      // It tries again by itself.
      try (RawPeer again = RawPeer.accept(server)) {
        again.awaitFrame(f -> f.type() == TestFrames.HELLO);
      }
      server.close();
      Recorder b = new Recorder();
      listen(at, QUICK, b);
      p.await(Connected.class);
      b.await(Log.class);
      assertThat(b.stream()).containsExactly(42);
      assertThat(primary.stats().authFailures()).isGreaterThanOrEqualTo(1);
    } finally {
      shipped.set(true);
      shipper.interrupt();
      shipper.join(5000);
      server.close();
    }
  }

  private static void misbehaveAsBackup(HostileBackup how, RawPeer h) throws Exception {
    TestFrames.Frame hello = h.awaitFrame(f -> f.type() == TestFrames.HELLO);
    byte[] np = java.util.Arrays.copyOfRange(hello.payload(), hello.payload().length - 32, hello.payload().length);
    byte[] nb = h.myNonce;
    switch (how) {
      case WRONG_SECRET -> {
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, PAIR, EPOCH, nb));
        h.awaitFrame(f -> f.type() == TestFrames.AUTH);
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(WRONG_SECRET, TestFrames.BACKUP, PAIR, EPOCH, np, nb, 0));
      }
      case WRONG_PAIR_ID -> h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, "web2", EPOCH, nb));
      case WRONG_EPOCH -> h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, PAIR, EPOCH + 1, nb));
      case SAYS_IT_IS_A_PRIMARY -> h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH, nb));
      case PROOF_MADE_FOR_THE_PRIMARY_ROLE -> {
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, PAIR, EPOCH, nb));
        h.awaitFrame(f -> f.type() == TestFrames.AUTH);
        h.sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(SECRET, TestFrames.PRIMARY, PAIR, EPOCH, np, nb, 0));
      }
      case PROOF_FOR_ANOTHER_RESUME_OFFSET -> {
        // A man in the middle changing where the primary resumes breaks the proof.
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, PAIR, EPOCH, nb));
        h.awaitFrame(f -> f.type() == TestFrames.AUTH);
        h.sendFrame(TestFrames.AUTH, 0, 1000, TestFrames.proof(SECRET, TestFrames.BACKUP, PAIR, EPOCH, np, nb, 0));
      }
      case GARBAGE -> h.send("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".getBytes(StandardCharsets.US_ASCII));
      case SILENT -> { /* says nothing */ }
      case NO_PROOF -> {
        h.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, PAIR, EPOCH, nb));
        h.awaitFrame(f -> f.type() == TestFrames.AUTH);
        h.close(); // as a backup does that refused the primary
      }
    }
  }

  @Test
  void aReplayedBackupHandshakeIsRefused() throws Exception {
    // Record a genuine backup's HELLO and AUTH through a relay.
    Recorder b = new Recorder();
    LogChannel backup = listen(QUICK, b);
    byte[] fromBackup;
    try (FrameProxy proxy = new FrameProxy(backup.localAddress(), (c, i, f) -> f)) {
      Recorder p1 = new Recorder();
      LogChannel first = LogChannel.dial(proxy.address(), QUICK, p1);
      p1.await(Connected.class);
      first.close("done recording");
      // Under load a first attempt may time out and be redialed: the last connection is the one
      // that completed the handshake.
      fromBackup = proxy.fromBackup(proxy.connections() - 1);
    }
    List<byte[]> frames = FrameProxy.split(fromBackup);
    assertThat(TestFrames.parse(fromBackup).subList(0, 2)).extracting(TestFrames.Frame::type)
        .containsExactly(TestFrames.HELLO, TestFrames.AUTH);

    try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
      Recorder p = new Recorder();
      dial(new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()), QUICK, p);
      try (RawPeer replayer = RawPeer.accept(server)) {
        replayer.awaitFrame(f -> f.type() == TestFrames.HELLO);
        replayer.send(frames.get(0));
        replayer.awaitFrame(f -> f.type() == TestFrames.AUTH);
        replayer.send(frames.get(1));
        replayer.awaitClosedByPeer();
        assertThat(p.await(AuthFailure.class).reason()).contains("its proof does not match");
        assertThat(replayer.frameTypes()).containsExactly(TestFrames.HELLO, TestFrames.AUTH);
      }
      assertThat(p.all(Connected.class)).isEmpty();
    }
  }
}
