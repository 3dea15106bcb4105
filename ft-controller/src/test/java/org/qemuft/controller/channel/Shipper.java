package org.qemuft.controller.channel;

import java.io.IOException;
import java.util.Arrays;

/**
 * Ships a stream through a primary's channel as the controller's shipper would: from the offset
 * the current connection expects ({@link LogChannel#nextOffset}), one chunk of whole events per
 * frame, starting over at the backup's resume offset after every reconnect.
 */
final class Shipper implements AutoCloseable {
  private final LogChannel primary;
  private final byte[] stream;
  private final long[] bounds;
  private final Thread thread;
  private volatile boolean stop;
  volatile long failures;

  Shipper(LogChannel primary, byte[] stream, long[] bounds) {
    this.primary = primary;
    this.stream = stream;
    this.bounds = bounds;
    this.thread = Thread.ofPlatform().daemon().name("test shipper").start(this::run);
  }

  private void run() {
    while (!stop) {
      long at = primary.nextOffset();
      if (at < 0 || at >= stream.length) {
        pause();
        continue;
      }
      int i = Arrays.binarySearch(bounds, at);
      if (i < 0) {
        throw new AssertionError("the backup resumes at " + at + ", which is not a chunk boundary");
      }
      long end = bounds[i + 1];
      try {
        primary.sendLog(at, stream, (int) at, (int) (end - at));
      } catch (IOException e) {
        failures++;
        pause();
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  private static void pause() {
    try {
      Thread.sleep(2);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() throws InterruptedException {
    stop = true;
    thread.interrupt();
    thread.join(10_000);
  }
}
