package org.qemuft.controller.pair;

import java.time.Duration;

/**
 * A bounded window of the replay-log stream, addressed by absolute stream offset: bytes are
 * appended at {@link #end()} and released from {@link #start()} once nobody needs them. The
 * primary keeps what it shipped until the backup acknowledges it (to resend after a reconnect);
 * the backup keeps what it received until its QEMU's ring has taken it.
 *
 * <p>Thread-safe: one appender and any number of readers/releasers; {@link #append} blocks while
 * the window is full, so a full window pushes back on whoever fills it.
 */
final class LogWindow {
  private final byte[] data;
  private final int mask;
  private long start;
  private long end;
  private boolean closed;

  /**
   * @param capacity bytes held at most, a power of two
   * @param startOffset the stream offset of the first byte that will be appended
   */
  LogWindow(int capacity, long startOffset) {
    if (capacity <= 0 || Integer.bitCount(capacity) != 1) {
      throw new IllegalArgumentException("window capacity " + capacity + " is not a power of two");
    }
    data = new byte[capacity];
    mask = capacity - 1;
    start = startOffset;
    end = startOffset;
  }

  int capacity() {
    return data.length;
  }

  synchronized long start() {
    return start;
  }

  synchronized long end() {
    return end;
  }

  /** Free room in bytes. */
  synchronized int room() {
    return data.length - (int) (end - start);
  }

  /**
   * Appends {@code len} bytes at {@link #end()}, waiting for room.
   *
   * @throws InterruptedException if interrupted while waiting
   * @throws IllegalStateException if the window was closed
   */
  void append(byte[] src, int off, int len) throws InterruptedException {
    int done = 0;
    while (done < len) {
      synchronized (this) {
        while (!closed && end - start == data.length) {
          wait();
        }
        if (closed) {
          throw new IllegalStateException("log window closed");
        }
        int n = (int) Math.min(len - done, data.length - (end - start));
        copyIn(src, off + done, n);
        end += n;
        done += n;
        notifyAll();
      }
    }
  }

  /** Appends only if all {@code len} bytes fit now; returns whether it did. */
  synchronized boolean tryAppend(byte[] src, int off, int len) {
    if (closed || data.length - (end - start) < len) {
      return false;
    }
    copyIn(src, off, len);
    end += len;
    notifyAll();
    return true;
  }

  /**
   * Copies bytes from stream offset {@code from} (within the window) into {@code dst}, at most
   * {@code max}; returns how many.
   */
  synchronized int copy(long from, byte[] dst, int off, int max) {
    if (from < start || from > end) {
      throw new IllegalArgumentException("offset " + from + " is outside the window [" + start + ", "
          + end + ")");
    }
    int n = (int) Math.min(max, end - from);
    int pos = (int) (from & mask);
    int first = Math.min(n, data.length - pos);
    System.arraycopy(data, pos, dst, off, first);
    System.arraycopy(data, 0, dst, off + first, n - first);
    return n;
  }

  /** Forgets everything before {@code offset} (no-op if already released). */
  synchronized void release(long offset) {
    if (offset > end) {
      throw new IllegalArgumentException("cannot release up to " + offset + ": the window ends at " + end);
    }
    if (offset > start) {
      start = offset;
      notifyAll();
    }
  }

  /** Waits until the window ends beyond {@code offset}; returns false on timeout or close. */
  synchronized boolean awaitEndBeyond(long offset, Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!closed && end <= offset) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        return false;
      }
      wait(Math.max(1, left / 1_000_000));
    }
    return end > offset;
  }

  /** Wakes every waiter; later appends fail. */
  synchronized void close() {
    closed = true;
    notifyAll();
  }

  private void copyIn(byte[] src, int off, int n) {
    int pos = (int) (end & mask);
    int first = Math.min(n, data.length - pos);
    System.arraycopy(src, off, data, pos, first);
    System.arraycopy(src, off + first, data, 0, n - first);
  }
}
