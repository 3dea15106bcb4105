package org.qemuft.controller.gate;

import java.io.IOException;
import java.util.ArrayDeque;
import org.qemuft.controller.metrics.LatencyHistogram;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The output rule (design.md step 5): a frame the primary guest transmits is held until the
 * backup has acknowledged every log event up to the first event recorded after the frame was
 * emitted; then it goes to the uplink, in the order the guest sent it.
 *
 * <p>When a frame reaches the controller, the replay log's write position {@code w} is read:
 * every event that starts at or after {@code w} was recorded after the frame was emitted (an event
 * straddling {@code w} may have begun before). The log shipper, scanning events in order, tells
 * the gate where the first event at or after {@code w} starts ({@link #eventStartsAt}); acks arrive
 * on whole-event boundaries, so an ack beyond that start covers the whole event and releases the
 * frame ({@link #acked}).
 *
 * <p>Thread-safe: frames arrive on the NIC thread, events on the shipper thread, acks on the
 * channel thread. Held frames are bounded in bytes; beyond the bound new frames are dropped, as a
 * full NIC queue would (TCP in the guest retransmits).
 */
public final class OutputGate {
  private static final Logger LOG = LoggerFactory.getLogger(OutputGate.class);

  /** Where released frames go. */
  @FunctionalInterface
  public interface Uplink {
    void send(byte[] frame) throws IOException;
  }

  private static final long UNRESOLVED = -1;

  private static final class Held {
    final byte[] frame;
    final long logPosition;
    final long arrivedNanos;
    long releaseAfter = UNRESOLVED;

    Held(byte[] frame, long logPosition, long arrivedNanos) {
      this.frame = frame;
      this.logPosition = logPosition;
      this.arrivedNanos = arrivedNanos;
    }
  }

  private final Uplink uplink;
  private final Object releasing = new Object();
  private final long maxHeldBytes;
  private final ArrayDeque<Held> held = new ArrayDeque<>();
  private final ArrayDeque<Held> unresolved = new ArrayDeque<>();
  private final LatencyHistogram holdTimes = new LatencyHistogram();
  private final LatencyHistogram resolveTimes = new LatencyHistogram();
  private long heldBytes;
  private long ackedOffset;
  private long released;
  private long dropped;
  private long uplinkErrors;
  private volatile long nextUnresolved = Long.MAX_VALUE;

  public OutputGate(Uplink uplink, long maxHeldBytes) {
    this.uplink = uplink;
    this.maxHeldBytes = maxHeldBytes;
  }

  /** Holds a frame the guest transmitted when the log's write position was {@code logPosition}. */
  public void hold(byte[] frame, long logPosition) {
    synchronized (this) {
      if (heldBytes + frame.length > maxHeldBytes) {
        dropped++;
        return;
      }
      Held h = new Held(frame, logPosition, System.nanoTime());
      held.addLast(h);
      heldBytes += frame.length;
      unresolved.addLast(h);
      if (unresolved.size() == 1) {
        nextUnresolved = logPosition;
      }
    }
  }

  /**
   * The log position of the oldest frame still waiting to learn its releasing event, or {@link
   * Long#MAX_VALUE}. The shipper compares each event's start with it (a volatile read, no lock) and
   * calls {@link #eventStartsAt} only when an event starts at or beyond it.
   */
  public long nextUnresolved() {
    return nextUnresolved;
  }

  /** An event starts at {@code offset}: frames that arrived at or before it are released by it. */
  public void eventStartsAt(long offset) {
    synchronized (this) {
      Held h;
      long now = System.nanoTime();
      while ((h = unresolved.peekFirst()) != null && h.logPosition <= offset) {
        h.releaseAfter = offset;
        unresolved.removeFirst();
        resolveTimes.record(now - h.arrivedNanos);
      }
      nextUnresolved = h == null ? Long.MAX_VALUE : h.logPosition;
    }
    release();
  }

  /** The backup has acknowledged the log up to {@code offset} (a whole-event boundary). */
  public void acked(long offset) {
    synchronized (this) {
      if (offset <= ackedOffset) {
        return;
      }
      ackedOffset = offset;
    }
    release();
  }

  private void release() {
    // Frames leave in order; uplink writes happen outside the lock so a slow uplink never blocks
    // the NIC or the shipper. The 'releasing' lock keeps concurrent releasers in order.
    synchronized (releasing) {
      while (true) {
        Held h;
        synchronized (this) {
          h = held.peekFirst();
          if (h == null || h.releaseAfter == UNRESOLVED || h.releaseAfter >= ackedOffset) {
            return;
          }
          held.removeFirst();
          heldBytes -= h.frame.length;
          released++;
        }
        holdTimes.record(System.nanoTime() - h.arrivedNanos);
        try {
          uplink.send(h.frame);
        } catch (IOException e) {
          synchronized (this) {
            uplinkErrors++;
          }
          LOG.warn("uplink refused a released {}-byte frame (dropped, as on a lossy link): {}",
              h.frame.length, e.getMessage());
        }
      }
    }
  }

  /** A consistent snapshot of the gate's counters. */
  public synchronized Stats stats() {
    return new Stats(held.size(), heldBytes, released, dropped, uplinkErrors,
        holdTimes.percentile(0.5), holdTimes.percentile(0.99), resolveTimes.percentile(0.99));
  }

  /**
   * @param heldNow frames held now
   * @param heldBytes their bytes
   * @param released frames released to the uplink so far
   * @param dropped frames dropped because the held bytes reached the bound
   * @param uplinkErrors released frames the uplink refused
   * @param holdP50Nanos median time from arrival to release
   * @param holdP99Nanos 99th percentile of it
   * @param waitEventP99Nanos 99th percentile of the time from a frame's arrival until the log
   *     showed the first event recorded after it (the rest of the hold is shipping and the ack)
   */
  public record Stats(int heldNow, long heldBytes, long released, long dropped, long uplinkErrors,
      long holdP50Nanos, long holdP99Nanos, long waitEventP99Nanos) {}
}
