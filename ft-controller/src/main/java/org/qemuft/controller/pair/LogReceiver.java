package org.qemuft.controller.pair;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Optional;
import org.qemuft.controller.channel.ChannelListener;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.channel.PeerInfo;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;
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

  private final LogWindow buffer;
  /**
   * (event end, icount) after each INSTRUCTION event received and not yet replayed, so that the
   * backup's instruction count is known from how far its QEMU has read, without asking QEMU: a
   * replaying QEMU that waits for log answers no QMP command (docs/go-live.md).
   */
  private final ArrayDeque<long[]> icountTrail = new ArrayDeque<>();
  /** Checks the log as it arrives, before it is acknowledged; feeds the icount trail. */
  private final ReplayLogScanner scanner;
  private long replayedIcount;
  private final ReplayFeed feed;
  private final byte[] chunk = new byte[FEED_CHUNK];
  private volatile LogChannel channel;
  private volatile long logFrames;
  private volatile String failure;
  private volatile boolean stopping;
  private volatile long lastAckedReplay = -1;

  /**
   * @param feed writes whole events into the ring the backup QEMU reads; it must be {@link
   *     ReplayFeed.AtGuestPowerOff#STOP_THERE}, so that the backup stops exactly where the
   *     primary's guest asked to power off; the log it receives starts where the feed stands
   * @param bufferBytes the backup's buffer (a power of two)
   */
  LogReceiver(ReplayFeed feed, int bufferBytes) {
    this.feed = feed;
    long start = feed.ringEnd() - LogRing.BASE_OFFSET; // stream offsets here are ring positions
    this.buffer = new LogWindow(bufferBytes, start);
    this.scanner = ReplayLogScanner.forStream((kind, s, end, icount) -> {
      if (kind == ReplayEventKind.INSTRUCTION.code()) {
        icountTrail.addLast(new long[] {end, icount});
      }
    }, start, 0);
  }

  void attach(LogChannel c) {
    this.channel = c;
  }

  /** Where the log the backup holds ends: a reconnecting primary resumes there. */
  long heldEnd() {
    return buffer.end();
  }

  /**
   * The backup QEMU has consumed the log up to here (an idle warp the feed holds back counts as
   * consumed once QEMU has read what precedes it: {@link ReplayFeed#replayed()}).
   */
  long replayed() {
    return feed.replayed() - LogRing.BASE_OFFSET;
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

  /**
   * The guest's power-off request as fed to the backup QEMU (the feed's {@link
   * ReplayFeed#guestPowerOff()}; its end is a log file offset); empty until fed.
   */
  Optional<ReplayFeed.GuestPowerOff> powerOff() {
    return feed.guestPowerOff();
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
    } catch (ReplayLogException e) {
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

  /**
   * The feeder thread: buffer to ring, until stopped or the log proves corrupt. After the guest's
   * power-off request the feed gives QEMU END and nothing more (docs/pair.md, "When the guest
   * powers off"); the rest of the primary's log is still taken from the buffer and checked.
   */
  void runFeeder() {
    long fed = buffer.start();
    try {
      while (!stopping) {
        if (!buffer.awaitEndBeyond(fed, Duration.ofMillis(50))) {
          continue;
        }
        int n = buffer.copy(fed, chunk, 0, chunk.length);
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
