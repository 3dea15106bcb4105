package org.qemuft.nativeio;

import java.io.IOException;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.qemuft.replaylog.GoLiveBoundary;
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
 * <p><b>Going live.</b> {@link #goLive} appends, at a {@link GoLiveBoundary}, what makes the
 * replaying QEMU stop cleanly and stay stoppable (docs/replay-log.md, "The go-live tail"), and
 * returns the instruction count at that boundary. The boundary is the end of the last whole event
 * received, except that an idle warp the primary's QEMU has opened and not yet closed is left out:
 * a backup snapshotted inside one makes the continued guest's clock step (docs/go-live.md). So
 * that such a stretch can still be left out when the primary dies, the feed never puts it into
 * the ring while it is open: it waits in this object until the CHECKPOINT_CLOCK_WARP_ACCOUNT that
 * closes it arrives (or END: QEMU's exit ends every warp). The guest executes nothing inside one,
 * so the backup falls behind by no guest work; {@link #replayed()} counts such a stretch as
 * replayed once QEMU has read everything before it.
 *
 * <p><b>The guest's power-off.</b> QEMU 7.2 logs a guest's power-off request as a SHUTDOWN event
 * without first logging the instructions executed since the previous event, and the recording
 * vCPU runs on for a few thousand instructions before the VM stops; a replay fed those too stops
 * somewhere between the two counts, depending on a race (docs/pair.md, "When the guest powers
 * off"). With {@link AtGuestPowerOff#STOP_THERE} the feed puts the guest's power-off event into
 * the ring, then END, and nothing after it: the backup stops at exactly the log's icount of that
 * event ({@link #guestPowerOff()}).
 *
 * <p>Bytes that cannot go into the ring yet (it is full: the backup is behind) wait in this
 * object; {@link #pendingBytes()} tells how many, so the caller can stop taking more. Methods are
 * synchronized, except {@link #replayed()} and {@link #guestPowerOff()}, which never wait for a
 * feeding thread; one thread feeds.
 */
public final class ReplayFeed {

  /** What the feed does with the guest's power-off request ({@link ReplayEventKind#isGuestPowerOff}). */
  public enum AtGuestPowerOff {
    /** Nothing special: everything received goes into the ring. */
    FEED_ON,
    /**
     * The first guest-shutdown, guest-reset or guest-panic event goes into the ring, then an END
     * event of the feed's own; what the primary logged after the request (the instructions its
     * vCPU ran until the VM stopped, its own SHUTDOWN and END) is still checked but never fed.
     * The replaying QEMU (with {@code -action shutdown=pause}) then stops with status {@code
     * shutdown} at exactly the log's icount of the request: at END it has nothing more to
     * execute, while an empty log would leave it blocked in the read with its locks held. For a
     * QEMU started with {@code -no-reboot} (every QEMU qemu-ft starts), where each of these
     * requests ends the guest.
     */
    STOP_THERE
  }

  /**
   * What {@link #goLive} appends: a SHUTDOWN event with {@code shutdown}'s cause, then {@code
   * repetitions} INSTRUCTION events of {@code instructionsPerEvent} each (see {@link
   * ReplayLogEncoder#goLiveTail}).
   */
  public record GoLiveTail(ReplayEventKind shutdown, int instructionsPerEvent, int repetitions) {
    /**
     * {@link ReplayLogEncoder#goLiveTail()}'s: SHUTDOWN(host-qmp-quit), then 100 INSTRUCTION
     * events of 100000. Measured, the VM stops before executing any of them (docs/go-live.md).
     */
    public static final GoLiveTail DEFAULT = new GoLiveTail(ReplayLogEncoder.GO_LIVE_SHUTDOWN,
        ReplayLogEncoder.GO_LIVE_INSTRUCTIONS_PER_EVENT, ReplayLogEncoder.GO_LIVE_REPETITIONS);

    public GoLiveTail {
      Objects.requireNonNull(shutdown, "shutdown");
      ReplayLogEncoder.goLiveTail(shutdown, instructionsPerEvent, repetitions); // validates
    }

    byte[] bytes() {
      return ReplayLogEncoder.goLiveTail(shutdown, instructionsPerEvent, repetitions);
    }
  }

  /**
   * The guest's power-off request in the stream: its kind (guest-shutdown, guest-reset or
   * guest-panic), the log offset just past it, and the icount there (plus the start icount).
   */
  public record GuestPowerOff(ReplayEventKind kind, long end, long icount) {}

  private static final byte[] END = {(byte) ReplayEventKind.END.code()};
  private static final long NONE = Long.MAX_VALUE;

  private final LogRing ring;
  private final AtGuestPowerOff atPowerOff;
  private final GoLiveBoundary boundary;
  private final ReplayLogScanner scanner;
  /**
   * Bytes from offset {@link #ringEnd} on: the primary's whole events not yet in the ring (waiting
   * for room, or held back in an open idle warp), then the partial event in progress; or, once
   * {@link #ownFrom} is set, the primary's stream up to there and then the feed's own bytes.
   * buf[start] is at ringEnd.
   */
  private byte[] buf = new byte[64 * 1024];
  private int start;
  private int end;
  /** Offset just past what is in the ring: the primary's stream, then possibly the feed's own bytes. */
  private long ringEnd;
  /** Where the feed's own bytes (END after the guest's power-off, or the go-live tail) begin. */
  private long ownFrom = NONE;
  private ReplayLogException failure;
  private boolean live;
  private volatile GuestPowerOff powerOff;
  /**
   * For {@link #replayed()}, published after every change: {primary's stream in the ring up to,
   * how far the backup has caught up once QEMU has read all of that}.
   */
  private volatile long[] progress;
  private final AtomicLong replayed = new AtomicLong();

  /** A feed whose stream continues the ring at its write position, with no instructions before. */
  public ReplayFeed(LogRing ring) {
    this(ring, 0, AtGuestPowerOff.FEED_ON);
  }

  /**
   * A feed whose stream continues the ring at its write position (offset 12 of the log for a
   * fresh ring), with {@code startIcount} instructions before its first event (e.g. the count
   * of the snapshot the backup starts from; see docs/replay-log.md on icount bases). The stream
   * must start where no idle warp is open (a log's start, or where an earlier feed went live).
   */
  public ReplayFeed(LogRing ring, long startIcount, AtGuestPowerOff atPowerOff) {
    this.ring = Objects.requireNonNull(ring, "ring");
    this.atPowerOff = Objects.requireNonNull(atPowerOff, "atPowerOff");
    this.ringEnd = LogRing.BASE_OFFSET + ring.writePosition();
    this.boundary = new GoLiveBoundary(ringEnd, startIcount);
    this.scanner = ReplayLogScanner.forStream(this::onEvent, ringEnd, startIcount);
    this.progress = new long[] {ringEnd, ringEnd};
  }

  private void onEvent(int kind, long start, long end, long icount) {
    boundary.onEvent(kind, start, end, icount);
    if (powerOff == null) {
      ReplayEventKind k = ReplayEventKind.of(kind);
      if (k.isGuestPowerOff()) {
        powerOff = new GuestPowerOff(k, end, icount);
      }
    }
  }

  /**
   * Takes the next {@code len} bytes of the primary's stream and writes every event they
   * complete into the ring, waiting up to {@code timeout} for room; events of an idle warp still
   * open wait for its end.
   *
   * @return true if nothing waits for room in the ring; false if some events still do (call
   *     {@link #flush} or feed more later)
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
    if (ownFrom == NONE) {
      append(b, off, len);
    } // else: stopped at the guest's power-off; the rest is only checked
    ReplayLogException damage = null;
    try {
      scanner.feed(b, off, len);
    } catch (ReplayLogException e) {
      damage = e;
    }
    if (ownFrom == NONE && atPowerOff == AtGuestPowerOff.STOP_THERE && powerOff != null) {
      stopAt(powerOff.end(), END);
    }
    if (damage != null) {
      failure = damage;
      try {
        // Deliver what is good (an open warp too: this stream ends here and never goes live),
        // then end the stream so the replaying QEMU stops cleanly.
        drain(ownFrom == NONE ? scanner.safeEnd() : ringEnd + (end - start), timeout);
      } finally {
        ring.closeWriter();
      }
      throw damage;
    }
    return drain(limit(), timeout);
  }

  /** Writes events still waiting for room, up to {@code timeout}; true if none waits any more. */
  public synchronized boolean flush(Duration timeout) throws IOException, InterruptedException {
    checkUsable();
    return drain(limit(), timeout);
  }

  /** {@link #goLive(GoLiveTail, Duration)} with {@link GoLiveTail#DEFAULT}. */
  public long goLive(Duration timeout) throws IOException, InterruptedException {
    return goLive(GoLiveTail.DEFAULT, timeout);
  }

  /**
   * Goes live: cuts the stream at the go-live boundary ({@link #goLiveEnd()}), dropping what lies
   * after it (an idle warp still open, a partial event: the primary will never finish them, and
   * none of it has been fed), writes the events before it that still wait for room, then {@code
   * tail}. The ring stays open: a replaying QEMU that read past the tail would wait rather than
   * exit, so it can be stopped and snapshotted. Afterwards the feed takes nothing more.
   *
   * @return the instruction count at the boundary ({@link #goLiveIcount()}): where the backup
   *     stops
   * @throws IOException if the ring has no room for it all within {@code timeout} (the backup
   *     QEMU is not reading), or its reader has closed it
   * @throws IllegalStateException after an earlier failure or a first go-live, if the stream has
   *     ended (END: the primary shut down, and QEMU reads nothing after END), or if the guest has
   *     powered off
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
    GuestPowerOff off = powerOff;
    if (off != null) {
      throw new IllegalStateException("the guest in the replay stream of " + ring.path()
          + " has powered off (" + off.kind().shutdownCause() + " at icount " + off.icount()
          + "): there is no guest left to go live with");
    }
    long cut = boundary.end();
    long icount = boundary.icount();
    byte[] tailBytes = tail.bytes();
    stopAt(cut, tailBytes);
    live = true;
    long total = cut + tailBytes.length;
    if (!drain(total, timeout)) {
      throw new IOException("go-live: log ring " + ring.path() + " had no room for the last "
          + (total - ringEnd) + " bytes (go-live tail included) within " + timeout.toMillis()
          + " ms: the backup QEMU is not reading its log");
    }
    return icount;
  }

  /**
   * The instruction count after the last whole event received (plus the start icount), fed or
   * not.
   */
  public synchronized long icount() {
    return scanner.icount();
  }

  /** Whole events received. */
  public synchronized long events() {
    return scanner.events();
  }

  /** Log file offset just past the last whole event received. */
  public synchronized long safeEnd() {
    return scanner.safeEnd();
  }

  /**
   * Where {@link #goLive} would cut now: the log file offset just past the last whole event
   * received, or the start of an idle warp still open (see {@link GoLiveBoundary}).
   */
  public synchronized long goLiveEnd() {
    return boundary.end();
  }

  /** The instruction count at {@link #goLiveEnd()}. */
  public synchronized long goLiveIcount() {
    return boundary.icount();
  }

  /**
   * Log file offset just past what is in the ring: the primary's stream, and after a stop the
   * feed's own END or go-live tail.
   */
  public synchronized long ringEnd() {
    return ringEnd;
  }

  /**
   * Bytes not in the ring yet: whole events waiting for room or held back in an open idle warp,
   * then a partial event; after a stop, the feed's own bytes that wait for room.
   */
  public synchronized long pendingBytes() {
    return end - start;
  }

  /** Bytes of the partial event at the end of what was received (not yet writable; 0 after a stop). */
  public synchronized long partialBytes() {
    return ownFrom != NONE ? 0 : scanner.offset() - scanner.safeEnd();
  }

  /** Bytes of whole events held back because an idle warp is open (see the class comment). */
  public synchronized long heldBackBytes() {
    return ownFrom != NONE || scanner.endSeen() ? 0 : scanner.safeEnd() - boundary.end();
  }

  /** Whether the primary's stream has ended (END received). */
  public synchronized boolean ended() {
    return scanner.endSeen();
  }

  /** The guest's power-off request, once received (in either {@link AtGuestPowerOff} mode). */
  public Optional<GuestPowerOff> guestPowerOff() {
    return Optional.ofNullable(powerOff);
  }

  /**
   * Log file offset up to which the backup QEMU has consumed the primary's stream: the ring's
   * read position, never counting the feed's own bytes; and when QEMU has read everything the
   * feed has given it while the rest received is an idle warp held back, the end of that warp so
   * far: the guest executes nothing in it, so the backup is behind by no guest work (reporting
   * less would make a primary's flow control wait, for as long as its guest idles, for a backup
   * that waits for the primary). Never decreases. Safe to call from any thread; it does not wait
   * for a feeding thread.
   */
  public long replayed() {
    long[] p = progress;
    long read = LogRing.BASE_OFFSET + ring.readPosition();
    return replayed.accumulateAndGet(read >= p[0] ? p[1] : read, Math::max);
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

  /** How far the ring may be filled now. */
  private long limit() {
    if (ownFrom != NONE) {
      return ringEnd + (end - start); // the stream up to the stop, then the feed's own bytes
    }
    if (scanner.endSeen()) {
      return scanner.safeEnd(); // QEMU's exit ended any warp: nothing to go live from any more
    }
    return boundary.end();
  }

  /** Ends the primary's stream in the ring at {@code cut} and appends {@code own} after it. */
  private void stopAt(long cut, byte[] own) {
    if (cut < ringEnd) {
      throw new IllegalStateException("cannot cut the replay stream at " + cut + ": the ring "
          + ring.path() + " holds it up to " + ringEnd + " already"); // never: see limit()
    }
    end = start + Math.toIntExact(cut - ringEnd);
    append(own, 0, own.length);
    ownFrom = cut;
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

  /** Writes buffered bytes up to offset {@code upTo}; true if all of them went in. */
  private boolean drain(long upTo, Duration timeout) throws IOException, InterruptedException {
    int want = (int) (upTo - ringEnd);
    if (want <= 0) {
      publish();
      return true;
    }
    int n = ring.write(buf, start, want, timeout);
    start += n;
    ringEnd += n;
    publish();
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

  private void publish() {
    long stream = Math.min(ringEnd, ownFrom);
    long caughtUp = stream;
    if (ownFrom == NONE && !scanner.endSeen() && boundary.holdsBackOpenWarp()
        && ringEnd == boundary.end()) {
      caughtUp = scanner.safeEnd(); // only an idle warp is left, in which the guest runs nothing
    }
    long[] p = progress;
    if (p[0] != stream || p[1] != caughtUp) {
      progress = new long[] {stream, caughtUp};
    }
  }

  @Override
  public synchronized String toString() {
    return "ReplayFeed[" + ring.path() + ", events " + scanner.events() + ", icount "
        + scanner.icount() + ", in ring up to " + ringEnd + ", pending " + (end - start)
        + (heldBackBytes() > 0 ? " (" + heldBackBytes() + " held back in an idle warp)" : "")
        + (powerOff != null ? ", guest powered off at icount " + powerOff.icount() : "")
        + (live ? ", live" : "") + (failure != null ? ", failed" : "") + "]";
  }
}
