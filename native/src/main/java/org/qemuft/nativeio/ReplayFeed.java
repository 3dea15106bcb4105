package org.qemuft.nativeio;

import java.io.IOException;
import java.time.Duration;
import java.util.Objects;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogEncoder;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * Feeds a replaying (backup) QEMU: the primary's replay-log stream goes in, in pieces cut
 * anywhere; whole events only go into the {@link LogRing} the backup QEMU reads, because QEMU 7.2
 * exits on a partial event instead of waiting for the rest. Every byte is checked by a {@link
 * ReplayLogScanner}: corrupt input is refused with the scanner's error, after the whole events
 * before the damage have been delivered and the ring's writer closed, so the replaying QEMU ends
 * cleanly ("error reading the replay data") instead of waiting for ever.
 *
 * <p>{@link #goLive} is the go-live primitive: at the last whole event received it appends what
 * makes the replaying QEMU stop cleanly and stay stoppable (docs/replay-log.md, "The go-live
 * tail"), and returns the instruction count at that boundary.
 *
 * <p>Bytes that cannot go into the ring yet (it is full: the backup is behind) wait in this
 * object; {@link #pendingBytes()} tells how many, so the caller can stop taking more. Methods are
 * synchronized; one thread feeds.
 */
public final class ReplayFeed {

  /**
   * What {@link #goLive} appends: a SHUTDOWN event with {@code shutdown}'s cause, then {@code
   * repetitions} INSTRUCTION events of {@code instructionsPerEvent} each (see {@link
   * ReplayLogEncoder#goLiveTail}).
   */
  public record GoLiveTail(ReplayEventKind shutdown, int instructionsPerEvent, int repetitions) {
    /**
     * The sequence of the shared notes ("Going live"): SHUTDOWN(host-qmp-quit), INSTRUCTION
     * events of 100000; the VM stopped about 180 instructions in. 1000 of them (5 KB) keep the
     * vCPU supplied for 10^8 instructions should the stop take long; unused ones are never read.
     */
    public static final GoLiveTail DEFAULT =
        new GoLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 1000);

    public GoLiveTail {
      Objects.requireNonNull(shutdown, "shutdown");
      ReplayLogEncoder.goLiveTail(shutdown, instructionsPerEvent, repetitions); // validates
    }

    byte[] bytes() {
      return ReplayLogEncoder.goLiveTail(shutdown, instructionsPerEvent, repetitions);
    }
  }

  private final LogRing ring;
  private final ReplayLogScanner scanner;
  /** Bytes from absolute offset {@link #ringEnd} on: whole events not yet in the ring, then the
   *  partial event in progress. buf[start] is at ringEnd. */
  private byte[] buf = new byte[64 * 1024];
  private int start;
  private int end;
  private long ringEnd;
  private ReplayLogException failure;
  private boolean live;

  /** A feed whose stream continues the ring at its write position, with no instructions before. */
  public ReplayFeed(LogRing ring) {
    this(ring, 0);
  }

  /**
   * A feed whose stream continues the ring at its write position (offset 12 of the log for a
   * fresh ring), with {@code startIcount} instructions before its first event (e.g. the count
   * of the snapshot the backup starts from; see docs/replay-log.md on icount bases).
   */
  public ReplayFeed(LogRing ring, long startIcount) {
    this.ring = Objects.requireNonNull(ring, "ring");
    this.ringEnd = LogRing.BASE_OFFSET + ring.writePosition();
    this.scanner = ReplayLogScanner.forStream((kind, s, e, icount) -> { }, ringEnd, startIcount);
  }

  /**
   * Takes the next {@code len} bytes of the primary's stream and writes every event they
   * complete into the ring, waiting up to {@code timeout} for room.
   *
   * @return true if every whole event received is in the ring; false if some still wait for room
   *     (call {@link #flush} or feed more later)
   * @throws ReplayLogException if the bytes are not a valid continuation of a QEMU 7.2 replay
   *     log; the whole events before the damage are then delivered (as far as {@code timeout}
   *     allows) and the ring's writer is closed
   * @throws IOException if the ring's reader has closed it (the backup QEMU is gone)
   * @throws IllegalStateException after {@link #goLive} or an earlier failure
   */
  public synchronized boolean feed(byte[] b, int off, int len, Duration timeout)
      throws IOException, InterruptedException {
    Objects.checkFromIndexSize(off, len, b.length);
    checkUsable();
    append(b, off, len);
    try {
      scanner.feed(b, off, len);
    } catch (ReplayLogException e) {
      failure = e;
      try {
        // Deliver what is good, then end the stream so the replaying QEMU stops cleanly.
        drain(scanner.safeEnd(), timeout);
      } finally {
        ring.closeWriter();
      }
      throw e;
    }
    return drain(scanner.safeEnd(), timeout);
  }

  /** Writes whole events still waiting, up to {@code timeout}; true if none waits any more. */
  public synchronized boolean flush(Duration timeout) throws IOException, InterruptedException {
    checkUsable();
    return drain(scanner.safeEnd(), timeout);
  }

  /**
   * Goes live: drops the partial event in progress (the primary will never finish it), writes
   * the whole events still waiting, then {@code tail}. The ring stays open: a replaying QEMU that
   * read past the tail would wait rather than exit, so it can be stopped and snapshotted.
   * Afterwards the feed takes nothing more.
   *
   * @return the instruction count at the boundary: the icount after the last whole event of the
   *     primary's stream (plus the start icount)
   * @throws IOException if the ring has no room for it all within {@code timeout} (the backup
   *     QEMU is not reading), or its reader has closed it
   * @throws IllegalStateException after an earlier failure or a first go-live, or if the stream
   *     has ended (END: the primary shut down, and QEMU reads nothing after END)
   */
  public synchronized long goLive(GoLiveTail tail, Duration timeout)
      throws IOException, InterruptedException {
    Objects.requireNonNull(tail, "tail");
    checkUsable();
    if (scanner.endSeen()) {
      throw new IllegalStateException("the replay stream in " + ring.path() + " has ended (END at "
          + "offset " + (scanner.safeEnd() - 1) + "): the primary shut down, and a replaying QEMU "
          + "reads nothing after END, so there is nothing to go live from");
    }
    long boundary = scanner.safeEnd();
    end = start + (int) (boundary - ringEnd); // drop the partial event
    byte[] tailBytes = tail.bytes();
    append(tailBytes, 0, tailBytes.length);
    live = true;
    long total = boundary + tailBytes.length;
    if (!drain(total, timeout)) {
      throw new IOException("go-live: log ring " + ring.path() + " had no room for the last "
          + (total - ringEnd) + " bytes (go-live tail included) within " + timeout.toMillis()
          + " ms: the backup QEMU is not reading its log");
    }
    return scanner.icount();
  }

  /** The instruction count after the last whole event received (plus the start icount). */
  public synchronized long icount() {
    return scanner.icount();
  }

  /** Whole events received. */
  public synchronized long events() {
    return scanner.events();
  }

  /** Log file offset just past the last whole event received (the go-live boundary). */
  public synchronized long safeEnd() {
    return scanner.safeEnd();
  }

  /** Log file offset just past what is in the ring. */
  public synchronized long ringEnd() {
    return ringEnd;
  }

  /** Bytes received and not yet in the ring: whole events waiting for room, then a partial one. */
  public synchronized long pendingBytes() {
    return end - start;
  }

  /** Bytes of the partial event at the end of what was received (not yet writable). */
  public synchronized long partialBytes() {
    return live ? 0 : scanner.offset() - scanner.safeEnd();
  }

  /** Whether the primary's stream has ended (END received). */
  public synchronized boolean ended() {
    return scanner.endSeen();
  }

  private void checkUsable() {
    if (failure != null) {
      throw new IllegalStateException("the replay feed into " + ring.path() + " was stopped by "
          + "corrupt input: " + failure.getMessage(), failure);
    }
    if (live) {
      throw new IllegalStateException("the replay feed into " + ring.path() + " has gone live");
    }
  }

  private void append(byte[] b, int off, int len) {
    if (buf.length - end < len) {
      int keep = end - start;
      if (start > 0 && buf.length - keep >= len && keep < buf.length / 2) {
        System.arraycopy(buf, start, buf, 0, keep);
      } else {
        byte[] bigger = new byte[Math.max(buf.length * 2, keep + len)];
        System.arraycopy(buf, start, bigger, 0, keep);
        buf = bigger;
      }
      start = 0;
      end = keep;
    }
    System.arraycopy(b, off, buf, end, len);
    end += len;
  }

  /** Writes buffered bytes up to absolute offset {@code upTo}; true if all of them went in. */
  private boolean drain(long upTo, Duration timeout) throws IOException, InterruptedException {
    int want = (int) (upTo - ringEnd);
    if (want <= 0) {
      return true;
    }
    int n = ring.write(buf, start, want, timeout);
    start += n;
    ringEnd += n;
    if (start == end) {
      start = 0;
      end = 0;
    } else if (start > buf.length / 2) {
      System.arraycopy(buf, start, buf, 0, end - start);
      end -= start;
      start = 0;
    }
    return n == want;
  }

  @Override
  public synchronized String toString() {
    return "ReplayFeed[" + ring.path() + ", events " + scanner.events() + ", icount "
        + scanner.icount() + ", in ring up to " + ringEnd + ", pending " + (end - start)
        + (live ? ", live" : "") + (failure != null ? ", failed" : "") + "]";
  }
}
