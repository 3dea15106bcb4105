package org.qemuft.controller.channel;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.function.Predicate;

/**
 * A test peer that speaks the protocol by hand (through {@link TestFrames}) and records every byte
 * it receives, so a test can see exactly what a hostile or broken peer was given.
 */
final class RawPeer implements AutoCloseable {
  static final Duration WAIT = Duration.ofSeconds(20);

  private final Socket socket;
  private final OutputStream out;
  private final ByteArrayOutputStream received = new ByteArrayOutputStream();
  private final Thread capture;
  private volatile boolean eof;
  private volatile boolean paused;
  private long seq;
  byte[] myNonce = new byte[32];
  byte[] peerNonce;

  private RawPeer(Socket socket) throws IOException {
    this.socket = socket;
    this.out = socket.getOutputStream();
    new SecureRandom().nextBytes(myNonce);
    InputStream in = socket.getInputStream();
    capture = Thread.ofPlatform().daemon().name("raw-peer capture").start(() -> {
      byte[] b = new byte[65536];
      try {
        int n;
        while (true) {
          while (paused) {
            Thread.sleep(10);
          }
          if ((n = in.read(b)) < 0) {
            break;
          }
          synchronized (received) {
            received.write(b, 0, n);
          }
        }
      } catch (IOException | InterruptedException e) {
        // reset or closed: the end either way
      }
      eof = true;
    });
  }

  static RawPeer connect(InetSocketAddress to) throws IOException {
    Socket s = new Socket();
    s.connect(to, 5000);
    return new RawPeer(s);
  }

  static RawPeer accept(ServerSocket server) throws IOException {
    server.setSoTimeout((int) WAIT.toMillis());
    return new RawPeer(server.accept());
  }

  void send(byte[] bytes) throws IOException {
    out.write(bytes);
    out.flush();
  }

  /** Sends a frame with the next sequence number. */
  void sendFrame(int type, int flags, long offset, byte[] payload) throws IOException {
    send(TestFrames.frame(type, flags, seq++, offset, payload));
  }

  void skipSeq() {
    seq++;
  }

  long nextSeq() {
    return seq;
  }

  byte[] received() {
    synchronized (received) {
      return received.toByteArray();
    }
  }

  List<TestFrames.Frame> frames() {
    return TestFrames.parse(received());
  }

  List<Integer> frameTypes() {
    return frames().stream().map(TestFrames.Frame::type).toList();
  }

  TestFrames.Frame awaitFrame(Predicate<TestFrames.Frame> p) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (System.nanoTime() < deadline) {
      for (TestFrames.Frame f : frames()) {
        if (p.test(f)) {
          return f;
        }
      }
      Thread.sleep(5);
    }
    throw new AssertionError("no such frame arrived within " + WAIT + "; got types " + frameTypes());
  }

  /** Waits until the other side has closed the connection. */
  void awaitClosedByPeer() throws InterruptedException {
    capture.join(WAIT.toMillis());
    assertThat(eof).as("the peer closed the connection").isTrue();
  }

  boolean closedByPeer() {
    return eof;
  }

  /** Handshake as the primary against a listening backup; returns the backup's resume offset. */
  long authenticateAsPrimary(String pairId, long epoch, byte[] secret) throws IOException, InterruptedException {
    TestFrames.Frame hello = awaitFrame(f -> f.type() == TestFrames.HELLO);
    peerNonce = java.util.Arrays.copyOfRange(hello.payload(), hello.payload().length - 32, hello.payload().length);
    sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, pairId, epoch, myNonce));
    sendFrame(TestFrames.AUTH, 0, 0, TestFrames.proof(secret, TestFrames.PRIMARY, pairId, epoch, myNonce, peerNonce, 0));
    TestFrames.Frame auth = awaitFrame(f -> f.type() == TestFrames.AUTH);
    assertThat(auth.payload()).isEqualTo(
        TestFrames.proof(secret, TestFrames.BACKUP, pairId, epoch, myNonce, peerNonce, auth.offset()));
    return auth.offset();
  }

  /** Handshake as the backup against a dialing primary, resuming at {@code resume}. */
  void authenticateAsBackup(String pairId, long epoch, byte[] secret, long resume) throws IOException, InterruptedException {
    TestFrames.Frame hello = awaitFrame(f -> f.type() == TestFrames.HELLO);
    peerNonce = java.util.Arrays.copyOfRange(hello.payload(), hello.payload().length - 32, hello.payload().length);
    sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.BACKUP, pairId, epoch, myNonce));
    TestFrames.Frame auth = awaitFrame(f -> f.type() == TestFrames.AUTH);
    assertThat(auth.payload()).isEqualTo(
        TestFrames.proof(secret, TestFrames.PRIMARY, pairId, epoch, peerNonce, myNonce, 0));
    sendFrame(TestFrames.AUTH, 0, resume, TestFrames.proof(secret, TestFrames.BACKUP, pairId, epoch, peerNonce, myNonce, resume));
  }

  /** Stops reading from the socket after the read in progress (the peer's writes then stall). */
  void pauseReading() {
    paused = true;
  }

  @Override
  public void close() throws IOException {
    paused = false;
    socket.close();
    try {
      capture.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
