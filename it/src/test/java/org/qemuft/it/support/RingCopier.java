package org.qemuft.it.support;

import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.ArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * What the pair's controllers do to the log, in one thread of the test: reads the ring a
 * recording QEMU writes, in batches, and feeds it through a {@link ReplayFeed} into the ring a
 * replaying QEMU reads. A full backup ring blocks the copy, which fills the primary's ring, which
 * blocks the primary: the flow control of the real pair. Counts the events it passes by kind.
 */
public final class RingCopier implements AutoCloseable {
  private final LogRing source;
  private final ReplayFeed feed;
  private final LogRing target;
  private final boolean closeAtEnd;
  private final ByteArrayOutputStream capture;
  private final AtomicLongArray kinds = new AtomicLongArray(ReplayEventKind.CODE_COUNT);
  private final AtomicLongArray icountAt = new AtomicLongArray(ReplayEventKind.CODE_COUNT);
  private final Deque<String> last = new ArrayDeque<>();
  private final ReplayLogScanner counter =
      ReplayLogScanner.forStream(this::onEvent, LogRing.BASE_OFFSET, 0);
  private final CountDownLatch done = new CountDownLatch(1);
  private final Thread thread;
  private volatile boolean stop;
  private volatile Throwable failure;
  private volatile long copied;

  /** Bytes taken from the source and delivered (whole events) so far. */
  public long copied() {
    return copied;
  }

  /**
   * Starts copying {@code source} into {@code target} (null: only drain and capture). With
   * {@code closeAtEnd}, the target's writer is closed once the source's writer has closed and
   * everything is copied; with {@code capture}, the bytes are also kept (see {@link #captured()}).
   */
  public RingCopier(LogRing source, LogRing target, boolean closeAtEnd, boolean capture) {
    this(source, target, ReplayFeed.AtGuestPowerOff.FEED_ON, closeAtEnd, capture);
  }

  /**
   * As above, with the feed's behaviour at the guest's power-off: {@code STOP_THERE} is what a
   * backup controller does (the replay then stops exactly at the log's icount of the request).
   */
  public RingCopier(LogRing source, LogRing target, ReplayFeed.AtGuestPowerOff atPowerOff,
      boolean closeAtEnd, boolean capture) {
    this.source = source;
    this.target = target;
    this.feed = target == null ? null : new ReplayFeed(target, 0, atPowerOff);
    this.closeAtEnd = closeAtEnd;
    this.capture = capture ? new ByteArrayOutputStream() : null;
    this.thread = Thread.ofPlatform().daemon().name("qft-ring-copier").start(this::run);
  }

  private void onEvent(int kind, long start, long end, long icount) {
    kinds.incrementAndGet(kind);
    icountAt.set(kind, icount);
    synchronized (last) {
      if (last.size() == 12) {
        last.removeFirst();
      }
      last.addLast(ReplayEventKind.of(kind) + "@" + start + " icount " + icount);
    }
  }

  private void run() {
    byte[] buf = new byte[256 * 1024];
    try {
      while (!stop) {
        // A batch, or whatever a 2 ms trickle brought: the primary is woken rarely.
        if (!source.awaitReadable(32 * 1024, Duration.ofMillis(2))) {
          continue;
        }
        int n = source.read(buf, 0, buf.length);
        if (n < 0) {
          if (closeAtEnd && target != null) {
            target.closeWriter();
          }
          return;
        }
        counter.feed(buf, 0, n);
        if (capture != null) {
          synchronized (capture) {
            capture.write(buf, 0, n);
          }
        }
        boolean in = feed == null || feed.feed(buf, 0, n, Duration.ofSeconds(1));
        while (!in && !stop) {
          in = feed.flush(Duration.ofSeconds(1)); // the backup is behind: wait for room
        }
        copied += n;
      }
    } catch (Throwable t) {
      failure = t;
    } finally {
      done.countDown();
    }
  }

  public ReplayFeed feed() {
    return feed;
  }

  /** Events of this kind copied so far. */
  public long events(ReplayEventKind kind) {
    return kinds.get(kind.code());
  }

  /** The running icount after the last event of this kind copied. */
  public long icountAfterLast(ReplayEventKind kind) {
    return icountAt.get(kind.code());
  }

  /** The last events copied, for failure messages. */
  public String lastEvents() {
    synchronized (last) {
      return String.join("\n  ", last);
    }
  }

  /**
   * The events of the captured stream around log offset {@code offset} (e.g. where a replaying
   * QEMU has read up to), with their offsets and icounts: what a stuck replay waits for.
   */
  public String eventsAround(long offset) {
    if (capture == null) {
      return "(no capture)";
    }
    byte[] all = captured();
    List<String> events = new ArrayList<>();
    int[] at = {-1};
    try {
      ReplayLogScanner.forStream((k, s, e, i) -> {
        if (at[0] < 0 && e >= offset) {
          at[0] = events.size();
        }
        events.add((e >= offset && s < offset || s == offset ? "=> " : "   ")
            + ReplayEventKind.of(k) + " [" + s + ", " + e + ") icount " + i);
      }, LogRing.BASE_OFFSET, 0).feed(all, 0, all.length);
    } catch (Exception e) {
      events.add("(scan failed: " + e.getMessage() + ")");
    }
    int mid = at[0] < 0 ? events.size() : at[0];
    return "events around offset " + offset + " of " + (LogRing.BASE_OFFSET + all.length) + ":\n"
        + String.join("\n", events.subList(Math.max(0, mid - 15), Math.min(events.size(), mid + 15)));
  }

  /**
   * Writes the captured stream as a replay log file (header, then the events), which a QEMU
   * without the shim can replay from: to tell a problem of the stream from one of QEMU.
   */
  public java.nio.file.Path saveAsLogFile(java.nio.file.Path file) throws java.io.IOException {
    byte[] all = captured();
    java.nio.file.Files.createDirectories(file.getParent());
    try (java.io.OutputStream out = java.nio.file.Files.newOutputStream(file)) {
      out.write(org.qemuft.replaylog.ReplayLogEncoder.fileHeader());
      out.write(all);
    }
    return file;
  }

  /** The bytes copied (only with capture). */
  public byte[] captured() {
    synchronized (capture) {
      return capture.toByteArray();
    }
  }

  /** Waits until the source has ended and everything is copied; rethrows a copy failure. */
  public void awaitEnd(Duration timeout) throws Exception {
    if (!done.await(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      throw new AssertionError("the log copy did not end within " + timeout + " (" + source + " -> "
          + target + ", " + feed + ")");
    }
    rethrow();
  }

  /** Waits until everything written to the source so far is copied (the source may go on). */
  public void awaitDrained(Duration timeout) throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (copied != source.writePosition()) {
      rethrow();
      if (System.nanoTime() > deadline) {
        throw new AssertionError("the log copy did not drain within " + timeout + " (" + source
            + " -> " + target + ", " + feed + ")");
      }
      Thread.sleep(20);
    }
    rethrow();
  }

  private void rethrow() throws Exception {
    if (failure instanceof Exception e) {
      throw e;
    }
    if (failure != null) {
      throw new AssertionError("the log copy failed", failure);
    }
  }

  public Throwable failure() {
    return failure;
  }

  @Override
  public void close() throws InterruptedException {
    stop = true;
    thread.join(10_000);
  }
}
