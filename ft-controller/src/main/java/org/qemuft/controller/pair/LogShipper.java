package org.qemuft.controller.pair;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicLong;
import org.qemuft.controller.channel.ChannelListener;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.channel.PeerInfo;
import org.qemuft.controller.gate.OutputGate;
import org.qemuft.nativeio.LogRing;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary's log shipper (design.md steps 2–5): reads the replay log from the ring the primary
 * QEMU records into, cuts it on whole-event boundaries, sends it to the backup as LOG frames, keeps
 * what is not acknowledged yet (to resend after a reconnect), tells the output gate where events
 * start, and applies flow control.
 *
 * <p>Flow control: while the backup lags by {@code maxLagBytes} of log (read from the ring but not
 * replayed) or by {@code maxLag} of guest execution (instructions recorded but not replayed, at
 * the icount's nanoseconds per instruction), or while the window of unacknowledged log is full,
 * the shipper holds the ring's writer ({@link LogRing#holdWriter}): QEMU's next log write waits,
 * and with it the primary's guest. It lets go once the backup is back within three quarters of
 * both limits (so that the primary is not stopped and started at every event) and the window has
 * room again.
 *
 * <p>One thread runs {@link #run()}; the channel's thread delivers acks and connects through the
 * {@link ChannelListener} methods.
 */
final class LogShipper implements ChannelListener {
  private static final Logger LOG = LoggerFactory.getLogger(LogShipper.class);

  /** Log bytes scanned per step: each LOG frame holds at most this plus one event. */
  static final int SLICE = 64 * 1024;
  /** Largest LOG frame payload: a slice plus the largest event QEMU writes in practice. */
  static final int MAX_FRAME = 1 << 20;

  /**
   * How long the shipper lets log accumulate before it looks (it asks the ring to wake it only for
   * a whole slice: a wake-up for every event would be a system call in QEMU's vCPU thread per
   * event). This bounds how late a trickle of log is noticed and shipped; it does not delay the
   * output gate: once a frame waits for its event, the shipper asks to be woken by the next byte.
   * 10 ms rather than 1: a busy guest logs a few dozen bytes per millisecond, and one LOG frame
   * (and one ack) per millisecond cost the primary's host about 5% of a core (the pair benchmark
   * with a core per side, 2026-12-08) and compressed poorly; the backup gets its log up to 10 ms
   * later, against a lag bound of hundreds.
   */
  private static final Duration BATCH_WAIT = Duration.ofMillis(10);
  private static final Duration IDLE_WAIT = Duration.ofMillis(20);

  private final LogRing ring;
  private final OutputGate gate;
  private final long maxLagBytes;
  private final long maxLagNanos;
  /** QEMU's -icount shift: an instruction is 2^shift ns of guest time. */
  private final int icountShift;
  private final LogWindow window;
  private final ReplayLogScanner scanner;
  /** Frame cuts: whole-event boundaries in the window, ascending; frames run cut to cut. */
  private final ArrayDeque<Long> cuts = new ArrayDeque<>();
  private final Object progress = new Object();
  private final byte[] slice = new byte[SLICE];
  private final byte[] frame;

  private volatile LogChannel channel;
  private volatile boolean stopping;
  /** Next offset to send; reset to the backup's resume offset on every (re)connect. */
  private long sent;
  private volatile long resumeAt = -1;
  /** onConnected of the current connection has been delivered (and not yet its onDisconnected). */
  private volatile boolean peerReady;
  private volatile long acked;
  /** How far the backup's QEMU has read the log (its acks say). */
  private volatile long replayed;
  private boolean holdsAllowed = true;
  private volatile long replayIcount = -1;
  private volatile long shipped;
  private volatile String failure;
  private volatile long powerOffEnd = -1;
  private volatile long powerOffIcount = -1;

  private final AtomicLong stalls = new AtomicLong();
  private final AtomicLong stallNanos = new AtomicLong();
  private volatile long stallStartedAt;

  /**
   * @param ring the ring the primary QEMU records into (its positions are stream offsets)
   * @param windowBytes how much unacknowledged log to keep (power of two)
   * @param icountShift the primary QEMU's {@code -icount shift}, to count instructions as guest
   *     time (0..10)
   */
  LogShipper(LogRing ring, OutputGate gate, int windowBytes, long maxLagBytes, Duration maxLag, int icountShift) {
    if (icountShift < 0 || icountShift > 10) {
      throw new IllegalArgumentException("icount shift " + icountShift + " is not 0..10");
    }
    this.ring = ring;
    this.gate = gate;
    this.maxLagBytes = maxLagBytes;
    this.maxLagNanos = maxLag.toNanos();
    this.icountShift = icountShift;
    long start = ring.readPosition();
    this.window = new LogWindow(windowBytes, start);
    this.frame = new byte[MAX_FRAME];
    this.sent = start;
    this.acked = start;
    this.shipped = start;
    cuts.add(start);
    this.scanner = ReplayLogScanner.forStream(this::onEvent, start, 0);
  }

  void attach(LogChannel c) {
    this.channel = c;
  }

  private void onEvent(int kind, long start, long end, long icount) {
    if (start >= gate.nextUnresolved()) {
      gate.eventStartsAt(start);
    }
    if (powerOffEnd < 0 && ReplayEventKind.of(kind).isGuestPowerOff()) {
      powerOffIcount = icount;
      powerOffEnd = end;
    }
  }

  /**
   * Where the guest asked to power off (or reset, or panicked: with -no-reboot all three end it)
   * in the log: the end offset and icount of the first such SHUTDOWN event; -1 until it is read.
   * The backup's feed stops its QEMU at exactly this event (ReplayFeed.AtGuestPowerOff.STOP_THERE),
   * so both report this icount, not the primary's final one (docs/pair.md).
   */
  long[] powerOff() {
    return new long[] {powerOffEnd, powerOffIcount};
  }

  // ---- channel callbacks (channel thread) ----

  @Override
  public void onConnected(PeerInfo peer) {
    resumeAt = peer.resumeOffset();
    peerReady = true;
    LOG.info("backup {} connected; it holds the log up to offset {}", peer.address(), peer.resumeOffset());
    wake();
  }

  @Override
  public void onDisconnected(String reason) {
    peerReady = false;
  }

  @Override
  public void onAck(long heldUpTo, long replayedUpTo, long icount) {
    if (heldUpTo > acked) {
      acked = heldUpTo;
      gate.acked(heldUpTo);
    }
    if (replayedUpTo > replayed) {
      replayed = replayedUpTo; // only the channel's thread writes it
    }
    replayIcount = icount;
    wake();
  }

  private void wake() {
    synchronized (progress) {
      progress.notifyAll();
    }
  }

  // ---- the shipper thread ----

  /**
   * Ships until the ring's writer has closed and everything read has been sent, or until {@link
   * #stop()}. Returns normally in both cases; a corrupt log or an impossible resume offset ends it
   * with {@link #failure()} set.
   */
  void run() {
    try {
      while (!stopping) {
        handleReconnect();
        boolean moved = readFromRing();
        moved |= sendPending();
        if (!moved) {
          if (ring.writerClosed() && ring.readPosition() == ring.writePosition()
              && sent == scanner.safeEnd()) {
            return; // QEMU closed its log and every whole event in it has been sent
          }
          idle();
        }
      }
    } catch (ReplayLogException e) {
      fail("the primary QEMU's replay log is corrupt: " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      endStall();
    }
  }

  private void fail(String why) {
    failure = why;
    LOG.error("log shipping stopped: {}", why);
    stopping = true;
  }

  /** Why shipping stopped, or null. */
  String failure() {
    return failure;
  }

  void stop() {
    stopping = true;
    window.close();
    wake();
  }

  private void handleReconnect() {
    long r = resumeAt;
    if (r < 0) {
      return;
    }
    resumeAt = -1;
    if (r < window.start()) {
      fail("the backup resumes at log offset " + r + " but the primary keeps the log only from "
          + window.start() + " (the backup lost log it had acknowledged; it must be re-protected)");
      return;
    }
    if (r > scanner.safeEnd()) {
      fail("the backup claims the log up to offset " + r + " but only " + scanner.safeEnd()
          + " has been recorded (a backup of another pair or epoch?)");
      return;
    }
    synchronized (cuts) {
      if (!cuts.contains(r)) {
        fail("the backup resumes at log offset " + r + ", which is not a frame boundary the primary sent");
        return;
      }
    }
    sent = r;
  }

  /** Reads what flow control allows from the ring; returns whether anything was read. */
  private boolean readFromRing() throws ReplayLogException {
    long readPos = ring.readPosition();
    long room = window.room();
    long lagBytes = readPos - replayed;
    long lagNanos = lagNanos();
    boolean over = room <= 0 || lagBytes >= maxLagBytes || (maxLagNanos > 0 && lagNanos >= maxLagNanos);
    boolean backWithin = room > 0 && lagBytes <= maxLagBytes / 4 * 3
        && (maxLagNanos <= 0 || lagNanos <= maxLagNanos / 4 * 3);
    if (stallStartedAt != 0 ? !backWithin : over) {
      beginStall();
      return false;
    }
    endStall();
    long budget = Math.min(room, maxLagBytes - lagBytes);
    int n;
    try {
      n = ring.read(slice, 0, (int) Math.min(SLICE, budget));
    } catch (IOException e) {
      fail("cannot read the primary QEMU's log ring: " + e.getMessage());
      return false;
    }
    if (n <= 0) {
      return false;
    }
    try {
      window.append(slice, 0, n);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      stopping = true;
      return false;
    }
    scanner.feed(slice, 0, n);
    long safe = scanner.safeEnd();
    synchronized (cuts) {
      if (safe > cuts.peekLast()) {
        cuts.addLast(safe);
      }
    }
    return true;
  }

  /** Sends every whole event not sent yet; returns whether anything was sent. */
  private boolean sendPending() throws InterruptedException {
    LogChannel c = channel;
    // The channel counts as connected a moment before it delivers onConnected: sending then, and
    // rewinding to the resume offset when onConnected comes, would go back behind log already
    // acknowledged and released.
    if (c == null || !c.connected() || !peerReady || resumeAt >= 0) {
      return false;
    }
    boolean any = false;
    long until = scanner.safeEnd();
    while (sent < until && !stopping) {
      long next = nextCut(sent);
      int len = (int) (next - sent);
      if (len > frame.length) {
        fail("a replay event of more than " + frame.length + " bytes at offset " + sent + " does not fit a frame");
        return any;
      }
      window.copy(sent, frame, 0, len);
      try {
        c.sendLog(sent, frame, 0, len);
      } catch (IOException e) {
        // Not connected, or the connection moved on: it says where the backup stands.
        long at = c.nextOffset();
        LOG.debug("sending log at offset {} failed ({}); the channel is at {}", sent, e.getMessage(), at);
        return any;
      }
      sent = next;
      shipped = Math.max(shipped, next);
      any = true;
    }
    releaseAcked();
    return any;
  }

  /** The first cut after {@code from}. */
  private long nextCut(long from) {
    synchronized (cuts) {
      for (long cut : cuts) {
        if (cut > from) {
          return cut;
        }
      }
    }
    throw new IllegalStateException("no frame boundary after " + from);
  }

  private void releaseAcked() {
    long a = Math.min(acked, window.end());
    window.release(a);
    synchronized (cuts) {
      while (cuts.size() > 1 && cuts.peekFirst() < a) {
        cuts.removeFirst();
      }
    }
  }

  private void idle() throws InterruptedException {
    releaseAcked();
    if (stallStartedAt != 0 || sent < scanner.safeEnd()) {
      // Waiting for the backup (an ack, or a connection), not for QEMU.
      synchronized (progress) {
        progress.wait(IDLE_WAIT.toMillis());
      }
    } else if (gate.nextUnresolved() != Long.MAX_VALUE) {
      ring.awaitReadable(IDLE_WAIT); // a frame waits for the next event: wake on its first byte
    } else {
      ring.awaitReadable(SLICE / 2, BATCH_WAIT);
    }
  }

  /** Guest execution the backup has still to replay: instructions recorded and read, not replayed. */
  private long lagNanos() {
    long behind = scanner.icount() - Math.max(0, replayIcount);
    return behind <= 0 ? 0 : behind << icountShift;
  }

  /** Holds the primary QEMU at its next log write (and counts it). */
  private void beginStall() {
    if (stallStartedAt == 0) {
      stallStartedAt = System.nanoTime();
      stalls.incrementAndGet();
      setHold(true);
    }
  }

  private void endStall() {
    long s = stallStartedAt;
    if (s != 0) {
      setHold(false);
      stallNanos.addAndGet(System.nanoTime() - s);
      stallStartedAt = 0;
    }
  }

  /**
   * Lets the primary QEMU run, now and from now on: before it is stopped (a QEMU held in a log
   * write cannot act on SIGTERM) or when there is no backup to wait for any more.
   */
  synchronized void releaseForGood() {
    holdsAllowed = false;
    setHold(false);
  }

  private synchronized void setHold(boolean hold) {
    if (hold && !holdsAllowed) {
      return;
    }
    try {
      ring.holdWriter(hold);
    } catch (IOException | IllegalStateException e) {
      // Another reader, or the ring is gone: nothing left to hold.
      LOG.warn("cannot {} the primary QEMU's log writes: {}", hold ? "hold" : "release", e.getMessage());
    }
  }

  /** Counters for the status report. */
  Stats stats() {
    long now = System.nanoTime();
    long s = stallStartedAt;
    long held = stallNanos.get() + (s == 0 ? 0 : now - s);
    return new Stats(ring.writePosition(), shipped, acked, replayed,
        shipped - replayed, lagNanos() / 1_000_000, s != 0, stalls.get(), held / 1_000_000,
        replayIcount, scanner.icount());
  }

  record Stats(long produced, long shipped, long acked, long replayed, long lagBytes, long lagMs,
      boolean holding, long stalls, long stallMs, long replayIcount, long shippedIcount) {}
}
