package org.qemuft.controller.pair;

import java.io.IOException;
import java.time.Duration;
import org.qemuft.controller.channel.ChannelListener;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.channel.PeerInfo;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.replaylog.ReplayLogException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup's side of the logging channel (design.md steps 3–4): LOG frames go into a bounded
 * buffer and are acknowledged at once (the backup holds them, so a failover can replay them); a
 * feeder thread moves the buffer into the ring the backup QEMU replays from, which blocks while
 * that ring is full. When the buffer itself is full, the channel stops reading and TCP pushes back
 * on the primary.
 */
final class LogReceiver implements ChannelListener {
  private static final Logger LOG = LoggerFactory.getLogger(LogReceiver.class);
  private static final int FEED_CHUNK = 64 * 1024;
  private static final Duration FEED_WAIT = Duration.ofMillis(100);
  private static final byte[] END = {(byte) org.qemuft.replaylog.ReplayEventKind.END.code()};

  private final LogWindow buffer;
  /**
   * (event end, icount) after each INSTRUCTION event received and not yet replayed, so that the
   * backup's instruction count is known from how far its QEMU has read, without asking QEMU: a
   * replaying QEMU that waits for log answers no QMP command (docs/go-live.md).
   */
  private final java.util.ArrayDeque<long[]> icountTrail = new java.util.ArrayDeque<>();
  private final org.qemuft.replaylog.ReplayLogScanner scanner;
  private long replayedIcount;
  private volatile long powerOffEnd = -1;
  private volatile long powerOffIcount = -1;
  private boolean endFed;
  private final ReplayFeed feed;
  private final LogRing ring;
  private final byte[] chunk = new byte[FEED_CHUNK];
  private volatile LogChannel channel;
  private volatile long logFrames;
  private volatile String failure;
  private volatile boolean stopping;
  private volatile long lastAckedReplay = -1;

  /**
   * @param feed writes whole events into {@code ring}, which the backup QEMU reads
   * @param bufferBytes the backup's buffer (a power of two)
   */
  LogReceiver(ReplayFeed feed, LogRing ring, int bufferBytes) {
    this.feed = feed;
    this.ring = ring;
    this.buffer = new LogWindow(bufferBytes, ring.writePosition());
    this.scanner = org.qemuft.replaylog.ReplayLogScanner.forStream((kind, start, end, icount) -> {
      if (kind == 0) {
        icountTrail.addLast(new long[] {end, icount});
      }
      if (powerOffEnd < 0 && PowerOff.isGuestShutdown(kind)) {
        powerOffIcount = icount;
        powerOffEnd = end;
      }
    }, ring.writePosition(), 0);
  }

  void attach(LogChannel c) {
    this.channel = c;
  }

  /** Where the log the backup holds ends: a reconnecting primary resumes there. */
  long heldEnd() {
    return buffer.end();
  }

  /** The backup QEMU has consumed the log up to here. */
  long replayed() {
    return ring.readPosition();
  }

  /**
   * The backup QEMU's instruction count as far as it has read the log: the count after the last
   * INSTRUCTION event it has read (it may be executing the next one).
   */
  synchronized long replayIcount() {
    long r = replayed();
    long[] first;
    while ((first = icountTrail.peekFirst()) != null && first[0] <= r) {
      replayedIcount = first[1];
      icountTrail.removeFirst();
    }
    return replayedIcount;
  }

  /** End offset and icount of the guest's power-off request in the log; -1 until received. */
  long[] powerOff() {
    return new long[] {powerOffEnd, powerOffIcount};
  }

  /** The instruction count at the end of the log received. */
  synchronized long receivedIcount() {
    return scanner.icount();
  }

  String failure() {
    return failure;
  }

  @Override
  public void onConnected(PeerInfo peer) {
    LOG.info("primary {} connected; resuming the log at offset {}", peer.address(), buffer.end());
  }

  @Override
  public void onLog(long offset, byte[] events, int len) {
    long end = buffer.end();
    int skip = 0;
    if (offset != end) {
      if (offset > end || offset + len <= end) {
        if (offset + len <= end) {
          return; // already held (resent after a reconnect)
        }
        fail("the primary sent log at offset " + offset + " but the backup holds it only up to " + end
            + ": a gap would make the replay diverge");
        return;
      }
      skip = (int) (end - offset);
    }
    try {
      synchronized (this) {
        scanner.feed(events, skip, len - skip);
      }
      buffer.append(events, skip, len - skip);
    } catch (org.qemuft.replaylog.ReplayLogException e) {
      fail("the log received from the primary is corrupt (" + e.getMessage()
          + "); the backup's replay was stopped before it could diverge");
      return;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    } catch (IllegalStateException e) {
      return; // closed: we are stopping
    }
    logFrames++;
    ack();
  }

  /**
   * Sends an ack with the current positions (also called periodically, to report replay
   * progress). Synchronized: acks from the channel thread and the ticker must not overtake each
   * other, or one would go backwards.
   */
  synchronized void ack() {
    LogChannel c = channel;
    if (c == null || !c.connected()) {
      return;
    }
    long replayed = replayed();
    try {
      c.sendAck(buffer.end(), replayed, replayIcount());
      lastAckedReplay = replayed;
    } catch (IOException e) {
      LOG.debug("ack not sent: {}", e.getMessage());
    }
  }

  /** Acks only if replay progressed since the last ack (the periodic tick). */
  void ackIfReplayMoved() {
    if (replayed() != lastAckedReplay) {
      ack();
    }
  }

  /** The feeder thread: buffer to ring, until stopped or the log proves corrupt. */
  void runFeeder() {
    long fed = buffer.start();
    try {
      while (!stopping) {
        // Nothing after the guest's power-off request goes to QEMU: the backup then stops exactly
        // where the primary's guest asked to, not somewhere in the instructions the primary ran
        // while its own stop took effect (PowerOff).
        long limit = powerOffEnd < 0 ? Long.MAX_VALUE : powerOffEnd;
        if (fed >= limit) {
          if (!endFed) {
            // END, not silence: a replaying QEMU that finds its log empty blocks in the read with
            // its locks held (no QMP, no pause); at END it simply has nothing more to execute.
            boolean inRing = feed.feed(END, 0, 1, FEED_WAIT);
            while (!inRing && !stopping) {
              inRing = feed.flush(FEED_WAIT);
            }
            endFed = true;
          }
          Thread.sleep(50);
          continue;
        }
        if (!buffer.awaitEndBeyond(fed, Duration.ofMillis(50))) {
          continue;
        }
        // Read the limit again: the bytes just arrived may hold the power-off request (the
        // channel thread scans them before it appends them).
        limit = powerOffEnd < 0 ? Long.MAX_VALUE : powerOffEnd;
        int n = buffer.copy(fed, chunk, 0, (int) Math.min(chunk.length, limit - fed));
        boolean inRing = feed.feed(chunk, 0, n, FEED_WAIT);
        fed += n;
        buffer.release(fed);
        while (!inRing && !stopping) {
          inRing = feed.flush(FEED_WAIT); // the backup QEMU is behind: its ring is full
        }
      }
    } catch (ReplayLogException e) {
      fail("the log received from the primary is corrupt (" + e.getMessage()
          + "); the backup's replay was stopped before it could diverge");
    } catch (IOException e) {
      fail("feeding the backup QEMU's ring failed: " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void fail(String why) {
    failure = why;
    LOG.error("{}", why);
    stopping = true;
    buffer.close();
  }

  void stop() {
    stopping = true;
    buffer.close();
  }

  Stats stats() {
    return new Stats(buffer.end(), replayed(), buffer.end() - replayed(), logFrames, replayIcount(), receivedIcount());
  }

  record Stats(long held, long replayed, long bufferedBytes, long logFrames, long replayIcount, long receivedIcount) {}
}
