package org.qemuft.it.support;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.qemuft.nativeio.Tap;

/**
 * Carries frames from a TAP (the client's side of a test network) to a guest's NIC on a thread of
 * its own, until {@link #close()}, which stops and joins it. The other direction is the guest
 * NIC's handler writing to the TAP.
 */
public final class TapRelay implements AutoCloseable {
  /** Where a frame from the TAP goes; {@code frame[0..len)} is only valid during the call. */
  @FunctionalInterface
  public interface Sink {
    void send(byte[] frame, int len) throws IOException;
  }

  private final AtomicBoolean running = new AtomicBoolean(true);
  private final Thread thread;

  private TapRelay(Tap tap, Sink sink) {
    thread = Thread.ofPlatform().daemon().name("qft-tap-to-guest").start(() -> {
      byte[] buf = new byte[Tap.MAX_FRAME];
      try {
        int n;
        while (running.get() && (n = tap.read(buf, Duration.ofMillis(200))) >= 0) {
          if (n > 0) {
            sink.send(buf, n);
          }
        }
      } catch (IOException e) {
        // the TAP or the guest's NIC closed at the end of the test
      }
    });
  }

  public static TapRelay start(Tap tap, Sink sink) {
    return new TapRelay(tap, sink);
  }

  @Override
  public void close() throws InterruptedException {
    running.set(false);
    thread.join(5000);
  }
}
