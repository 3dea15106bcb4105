package org.qemuft.controller.channel;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The logging channel between a pair's two controllers (design.md steps 2, 3 and 6; the wire
 * format is docs/channel.md). The primary {@link #dial dials} the backup and redials until closed;
 * the backup {@link #listen listens} and serves one authenticated primary at a time (a newly
 * authenticated connection replaces the current one, whose peer is then presumed gone). Both ends
 * prove knowledge of the pair's secret before anything else is exchanged; no log byte goes to a
 * peer that has not.
 *
 * <p>Threads (platform, daemon): the primary's dialer, which also reads each connection; the
 * backup's acceptor and one thread per connection (handshake, then reader); and one heartbeat
 * thread per channel, which also resets a connection whose writes make no progress for the peer
 * timeout. {@link #close} stops them all.
 */
public final class LogChannel implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LogChannel.class);

  /** Largest {@code len} of one {@link #sendLog}: 17 MiB, room for the largest event the replay-log scanner accepts. */
  public static final int MAX_LOG_BYTES = Wire.MAX_LOG_BYTES;

  /** Unauthenticated connections the backup handshakes with at once; more are closed at once. */
  static final int MAX_PENDING_HANDSHAKES = 8;
  private static final long MIN_REDIAL_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
  private static final long MAX_REDIAL_NANOS = TimeUnit.SECONDS.toNanos(1);
  private static final long REPEAT_WARNING_NANOS = TimeUnit.SECONDS.toNanos(30);

  private final boolean primary;
  final ChannelSettings settings;
  final ChannelListener listener;
  private final InetSocketAddress address;
  private final LongSupplier resumeOffset;
  /** Read timeout of the sockets: how often a reader checks the handshake deadline and silence. */
  final long tickMillis;
  private final Thread heartbeat;
  private Thread main;
  private ServerSocket server;
  private final Set<Connection> pending = ConcurrentHashMap.newKeySet();
  private final Object switching = new Object();
  private final AtomicReference<Connection> current = new AtomicReference<>();
  /** Held by the backup while one newly authenticated connection takes over from the old one. */
  private final Object handover = new Object();
  /**
   * The backup's latest authenticated connection, kept after it ends: its reader may still be in
   * its last callback, which must return before the next connection's first.
   */
  private Connection latest;
  private volatile Socket dialing;
  private volatile boolean closed;

  private final AtomicLong logBytesRaw = new AtomicLong();
  private final AtomicLong logBytesWire = new AtomicLong();
  private final AtomicLong framesSent = new AtomicLong();
  private final AtomicLong framesReceived = new AtomicLong();
  private final AtomicLong authFailures = new AtomicLong();
  private final AtomicLong resets = new AtomicLong();
  private final AtomicLong connects = new AtomicLong();
  private volatile long lastFrameNanos;
  private volatile boolean anyFrame;
  private final RepeatFilter authWarnings = new RepeatFilter();

  private LogChannel(boolean primary, InetSocketAddress address, ChannelSettings settings, ChannelListener listener,
      LongSupplier resumeOffset) {
    this.primary = primary;
    this.address = Objects.requireNonNull(address, "address");
    this.settings = Objects.requireNonNull(settings, "settings");
    this.listener = Objects.requireNonNull(listener, "listener");
    this.resumeOffset = resumeOffset;
    long shortest = Math.min(settings.heartbeatInterval().toMillis(), settings.peerTimeout().toMillis() / 4);
    this.tickMillis = Math.clamp(shortest, 5, 250);
    this.heartbeat = Thread.ofPlatform().daemon().name("qemu-ft channel heartbeat (" + role() + ")").unstarted(this::beat);
  }

  /**
   * Primary side: dials the backup at {@code backup}, authenticates, and redials whenever a
   * connection ends, until {@link #close}. Returns at once; {@link ChannelListener#onConnected}
   * says when the channel is up.
   */
  public static LogChannel dial(InetSocketAddress backup, ChannelSettings s, ChannelListener l) {
    LogChannel c = new LogChannel(true, backup, s, l, null);
    c.main = Thread.ofPlatform().daemon().name("qemu-ft channel to backup " + hostPort(backup)).unstarted(c::dialLoop);
    c.main.start();
    c.heartbeat.start();
    return c;
  }

  /**
   * Backup side: listens on {@code bind} for the primary. {@code resumeOffset} is asked, on a
   * channel thread, for the backup's contiguous end each time a primary has authenticated (after
   * the previous connection's last callback has returned); the primary resumes there.
   *
   * @throws IOException if the address cannot be bound (in use, not local)
   */
  public static LogChannel listen(InetSocketAddress bind, ChannelSettings s, ChannelListener l, LongSupplier resumeOffset)
      throws IOException {
    Objects.requireNonNull(resumeOffset, "resumeOffset");
    LogChannel c = new LogChannel(false, bind, s, l, resumeOffset);
    ServerSocket server = new ServerSocket();
    try {
      server.setReuseAddress(true);
      server.bind(bind, 16);
    } catch (IOException e) {
      server.close();
      throw new IOException("cannot listen for the primary on " + hostPort(bind) + ": " + e.getMessage()
          + " (is another controller running there? is the address one of this host's?)", e);
    }
    c.server = server;
    c.main = Thread.ofPlatform().daemon().name("qemu-ft channel accept " + hostPort(bind)).unstarted(c::acceptLoop);
    c.main.start();
    c.heartbeat.start();
    LOG.info("channel: backup of pair {} (epoch {}) listening for the primary on {}", s.pairId(), s.epoch(),
        hostPort(c.localAddress()));
    return c;
  }

  /** The address the backup listens on (with the real port if it bound port 0); the backup's address for the primary. */
  public InetSocketAddress localAddress() {
    return server != null ? (InetSocketAddress) server.getLocalSocketAddress() : address;
  }

  /**
   * Primary: sends whole replay events {@code events[off..off+len)} that start at stream offset
   * {@code offset}, which must be where this connection stands: the peer's
   * {@link PeerInfo#resumeOffset} after {@link ChannelListener#onConnected}, then the end of the
   * previous call ({@link #nextOffset}). Blocks while TCP pushes back; a backup that reads nothing
   * for the peer timeout is treated as dead and the connection reset.
   *
   * @throws IOException if not connected, if the connection ended (also during the call), or if
   *     {@code offset} is not where this connection stands (the message says where); the shipper
   *     then waits for the next onConnected and resumes from its resume offset
   * @throws InterruptedException if interrupted while another thread was writing
   */
  public void sendLog(long offset, byte[] events, int off, int len) throws IOException, InterruptedException {
    if (!primary) {
      throw new IllegalStateException("only the primary sends log; this channel is the backup's");
    }
    Objects.checkFromIndexSize(off, len, events.length);
    if (len <= 0 || len > MAX_LOG_BYTES) {
      throw new IllegalArgumentException("LOG of " + len + " bytes; 1.." + MAX_LOG_BYTES + " are allowed per call");
    }
    connection().sendLog(offset, events, off, len);
  }

  /**
   * Backup: tells the primary that the backup holds the stream up to {@code heldUpTo} (call it as
   * soon as events are in the backup's buffer, not when replayed) and has replayed up to
   * {@code replayedUpTo}, at instruction count {@code replayIcount}.
   *
   * @throws IOException if not connected or the connection ended
   * @throws IllegalArgumentException if {@code heldUpTo} is beyond what this connection has
   *     received, below an earlier ack on this connection, or below {@code replayedUpTo}
   */
  public void sendAck(long heldUpTo, long replayedUpTo, long replayIcount) throws IOException {
    if (primary) {
      throw new IllegalStateException("only the backup acknowledges; this channel is the primary's");
    }
    if (replayedUpTo < 0 || replayIcount < 0 || replayedUpTo > heldUpTo) {
      throw new IllegalArgumentException("ack: replayed up to " + replayedUpTo + " (icount " + replayIcount
          + ") of a stream held up to " + heldUpTo);
    }
    connection().sendAck(heldUpTo, replayedUpTo, replayIcount);
  }

  /** True while an authenticated connection is up. */
  public boolean connected() {
    return current.get() != null;
  }

  /**
   * Primary: the offset the next {@link #sendLog} must start at on the current connection; -1
   * when not connected.
   */
  public long nextOffset() {
    Connection c = current.get();
    return c == null ? -1 : c.nextSendOffset();
  }

  public ChannelStats stats() {
    long age = anyFrame ? TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastFrameNanos) : -1;
    return new ChannelStats(logBytesRaw.get(), logBytesWire.get(), framesSent.get(), framesReceived.get(), age,
        authFailures.get(), resets.get(), connects.get());
  }

  /** Closes with the reason "controller shutting down". */
  @Override
  public void close() {
    close("controller shutting down");
  }

  /**
   * Sends GOODBYE with {@code reason} to the peer (if connected), closes the connection and stops
   * every thread of this channel. After it returns no callback runs (unless close was called from
   * a callback, which then returns first). Idempotent.
   */
  public void close(String reason) {
    synchronized (switching) {
      if (closed) {
        return;
      }
      closed = true;
    }
    LOG.info("channel: closing the {}'s channel of pair {}: {}", role(), settings.pairId(), reason);
    if (server != null) {
      try {
        server.close();
      } catch (IOException e) {
        LOG.debug("channel: closing the listening socket: {}", e.toString());
      }
    }
    Socket d = dialing;
    if (d != null) {
      try {
        d.close();
      } catch (IOException e) {
        LOG.debug("channel: closing a dialing socket: {}", e.toString());
      }
    }
    for (Connection p : pending) {
      p.abandon();
    }
    Connection c = current.get();
    Duration linger = settings.peerTimeout().compareTo(Duration.ofSeconds(5)) < 0 ? settings.peerTimeout() : Duration.ofSeconds(5);
    if (c != null) {
      c.closeGracefully(reason, linger);
    }
    Thread self = Thread.currentThread();
    if (main != self) {
      main.interrupt(); // the primary's dialer may be waiting to redial
    }
    long joinMillis = linger.toMillis() + settings.handshakeTimeout().toMillis();
    join(main, joinMillis);
    heartbeat.interrupt();
    join(heartbeat, joinMillis);
    for (Connection p : pending) {
      Thread t = p.reader();
      if (t != null) {
        join(t, joinMillis);
      }
    }
    if (c != null && c.reader() != null) {
      join(c.reader(), joinMillis);
    }
  }

  private static void join(Thread t, long millis) {
    if (t == Thread.currentThread() || t == null) {
      return;
    }
    try {
      t.join(millis);
      if (t.isAlive()) {
        LOG.warn("channel: thread '{}' did not stop within {} ms of close", t.getName(), millis);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // ---------------------------------------------------------------- primary: dialing

  private void dialLoop() {
    long delay = MIN_REDIAL_NANOS;
    String lastProblem = null;
    long lastWarned = 0;
    long failures = 0;
    while (!closed) {
      Socket socket = new Socket();
      Connection c = null;
      try {
        dialing = socket;
        if (closed) {
          closeQuietly(socket);
          break;
        }
        socket.connect(address, (int) settings.handshakeTimeout().toMillis());
        c = new Connection(this, socket, true);
        c.handshakeAsPrimary();
      } catch (ChannelAuthException e) {
        authFailed(c, e);
        lastProblem = null;
        failures++;
        delay = sleepBeforeRedial(delay);
        continue;
      } catch (IOException e) {
        closeQuietly(socket);
        if (closed) {
          break;
        }
        failures++;
        String problem = "cannot reach the backup at " + hostPort(address) + ": " + e.getMessage();
        long now = System.nanoTime();
        if (!problem.equals(lastProblem) || now - lastWarned > REPEAT_WARNING_NANOS) {
          LOG.warn("channel: {} ({} attempt{} so far; retrying every {} ms at most)", problem, failures,
              failures == 1 ? "" : "s", TimeUnit.NANOSECONDS.toMillis(MAX_REDIAL_NANOS));
          lastProblem = problem;
          lastWarned = now;
        } else {
          LOG.debug("channel: {}", problem);
        }
        delay = sleepBeforeRedial(delay);
        continue;
      } finally {
        dialing = null;
      }
      synchronized (switching) {
        if (closed) {
          c.abandon();
          break;
        }
        current.set(c);
      }
      connects.incrementAndGet();
      LOG.info("channel: connected to the backup at {} (pair {}, epoch {}); it resumes at offset {}{}",
          c.peer, settings.pairId(), settings.epoch(), c.resumeOffset(),
          failures > 0 ? " after " + failures + " failed attempt" + (failures == 1 ? "" : "s") : "");
      failures = 0;
      lastProblem = null;
      delay = MIN_REDIAL_NANOS;
      c.runConnected();
      if (!closed) {
        delay = sleepBeforeRedial(delay);
      }
    }
  }

  private long sleepBeforeRedial(long delay) {
    if (!closed) {
      LockSupport.parkNanos(delay);
    }
    return Math.min(delay * 2, MAX_REDIAL_NANOS);
  }

  // ---------------------------------------------------------------- backup: accepting

  private void acceptLoop() {
    while (!closed) {
      Socket s;
      try {
        s = server.accept();
      } catch (IOException e) {
        if (!closed) {
          LOG.error("channel: accepting connections on {} failed: {}; the backup can no longer be reached",
              hostPort(localAddress()), e.toString());
        }
        return;
      }
      String who = s.getInetAddress().getHostAddress() + ":" + s.getPort();
      if (pending.size() >= MAX_PENDING_HANDSHAKES) {
        authFailures.incrementAndGet();
        LOG.warn("channel: refusing a connection from {}: {} others are still handshaking (someone is"
            + " opening connections without authenticating?)", who, pending.size());
        listenerAuthFailure(who, "refused: too many unauthenticated connections at once");
        closeQuietly(s);
        continue;
      }
      Connection c;
      try {
        c = new Connection(this, s, false);
      } catch (IOException e) {
        LOG.warn("channel: cannot set up the connection from {}: {}", who, e.toString());
        closeQuietly(s);
        continue;
      }
      pending.add(c);
      if (closed) {
        c.abandon();
        pending.remove(c);
        break;
      }
      Thread.ofPlatform().daemon().name("qemu-ft channel from " + who).start(() -> serve(c));
    }
  }

  /** One connection on the backup: handshake, replacing the current connection, reading. */
  private void serve(Connection c) {
    try {
      try {
        c.verifyPrimary();
      } catch (ChannelAuthException e) {
        authFailed(c, e);
        return;
      } catch (IOException e) {
        if (!closed) {
          authFailures.incrementAndGet();
          LOG.warn("channel: handshake with {} failed: connection lost: {}", c.describePeer(), e.getMessage());
          listenerAuthFailure(c.peer, "connection lost during the handshake: " + e.getMessage());
        }
        c.abandon();
        return;
      }
      synchronized (handover) { // one takeover at a time; close() does not wait for it
        Connection old = latest;
        if (old != null && !old.finished()) {
          if (current.get() == old) {
            String why = "replaced by a new authenticated connection from the primary at " + c.peer;
            LOG.warn("channel: the primary connected again from {}; dropping the old connection from {}", c.peer, old.peer);
            old.fail(why);
          }
          Thread r = old.reader();
          if (r != null) {
            r.interrupt(); // a callback blocked on the controller's buffer may be waiting
            try {
              r.join(settings.handshakeTimeout().toMillis());
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          }
          if (!old.finished()) {
            String problem = "the previous connection's callbacks have not returned within "
                + settings.handshakeTimeout().toMillis() + " ms (is the controller stuck in onLog?)";
            LOG.error("channel: refusing the new connection from {}: {}", c.peer, problem);
            c.abandon();
            return;
          }
        }
        if (closed) {
          c.abandon();
          return;
        }
        long resume;
        try {
          resume = resumeOffset.getAsLong();
        } catch (RuntimeException e) {
          LOG.error("channel: refusing the primary at {}: the controller could not say where the stream resumes", c.peer, e);
          c.abandon();
          return;
        }
        try {
          c.completeAsBackup(resume);
        } catch (IOException e) {
          LOG.warn("channel: the primary at {} went away before our proof reached it: {}", c.peer, e.getMessage());
          c.abandon();
          return;
        }
        synchronized (switching) {
          if (closed) {
            c.abandon();
            return;
          }
          current.set(c);
          latest = c;
        }
      }
      pending.remove(c);
      connects.incrementAndGet();
      LOG.info("channel: the primary at {} connected (pair {}, epoch {}); it resumes at offset {}", c.peer,
          settings.pairId(), settings.epoch(), c.resumeOffset());
      c.runConnected();
    } finally {
      pending.remove(c);
    }
  }

  // ---------------------------------------------------------------- shared

  private void authFailed(Connection c, ChannelAuthException e) {
    if (c != null) {
      c.abandon();
    }
    if (closed) {
      return;
    }
    authFailures.incrementAndGet();
    String who = c != null ? c.describePeer() : "the peer";
    String peer = c != null ? c.peer : hostPort(address);
    String line = "channel: authentication failed with " + who + ": " + e.getMessage() + "; disconnected"
        + (primary ? ", no log sent; retrying" : ", nothing delivered");
    int repeats = authWarnings.note(e.getMessage());
    if (repeats >= 0) {
      LOG.warn("{}{}", line, repeats > 0 ? " (" + repeats + " more like it not logged since the last such warning)" : "");
    } else {
      LOG.debug("{}", line);
    }
    listenerAuthFailure(peer, e.getMessage());
  }

  /**
   * Keeps a failure that repeats (a misconfigured peer retrying every second, a scanner) from
   * filling the log: the same reason is logged at WARN at most every 30 s, with the count of
   * repeats left out in between.
   */
  static final class RepeatFilter {
    private String last;
    private long lastWarned;
    private int suppressed;

    /** Returns -1 to log at DEBUG only, else the number of repeats suppressed before this one. */
    synchronized int note(String reason) {
      long now = System.nanoTime();
      if (reason.equals(last) && now - lastWarned < REPEAT_WARNING_NANOS) {
        suppressed++;
        return -1;
      }
      int n = reason.equals(last) ? suppressed : 0;
      last = reason;
      lastWarned = now;
      suppressed = 0;
      return n;
    }
  }

  private void listenerAuthFailure(String peer, String reason) {
    try {
      listener.onAuthFailure(peer, reason);
    } catch (RuntimeException e) {
      LOG.error("channel: the controller's onAuthFailure failed", e);
    }
  }

  private Connection connection() throws IOException {
    Connection c = current.get();
    if (c == null) {
      throw new IOException(closed ? "the channel is closed"
          : primary ? "not connected to the backup at " + hostPort(address) + " (redialing)"
              : "no primary is connected");
    }
    return c;
  }

  /** Heartbeats, and the watchdog that resets a connection whose writes make no progress. */
  private void beat() {
    long hb = settings.heartbeatInterval().toNanos();
    long timeout = settings.peerTimeout().toNanos();
    long tick = Math.max(TimeUnit.MILLISECONDS.toNanos(2), Math.min(hb, timeout / 8));
    while (!closed) {
      long now = System.nanoTime();
      long sleep = tick;
      Connection c = current.get();
      if (c != null) {
        long stalled = c.stalledNanos(now);
        if (stalled > timeout) {
          String why = "reset: the " + (primary ? "backup" : "primary") + " has read nothing for "
              + TimeUnit.NANOSECONDS.toMillis(stalled) + " ms (a write of " + c.writingBytes()
              + " bytes is stuck; peer timeout " + settings.peerTimeout().toMillis() + " ms): presumed dead";
          LOG.warn("channel: {}: {}", c.describePeer(), why);
          c.fail(why);
        } else {
          long due = c.lastSentNanos() + hb - now;
          if (due <= 0) {
            c.heartbeatIfFree();
          } else {
            sleep = Math.min(tick, due);
          }
        }
      }
      LockSupport.parkNanos(sleep);
    }
  }

  void connectionEnded(Connection c, boolean reset) {
    current.compareAndSet(c, null);
    if (reset) {
      resets.incrementAndGet();
    }
  }

  void frameSent() {
    framesSent.incrementAndGet();
  }

  void frameReceived(long now) {
    framesReceived.incrementAndGet();
    lastFrameNanos = now;
    anyFrame = true;
  }

  void logSent(int raw, int wire) {
    logBytesRaw.addAndGet(raw);
    logBytesWire.addAndGet(wire);
  }

  void logReceived(int raw, int wire) {
    logBytesRaw.addAndGet(raw);
    logBytesWire.addAndGet(wire);
  }

  private String role() {
    return primary ? "primary" : "backup";
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      LOG.debug("channel: closing a socket: {}", e.toString());
    }
  }

  static String hostPort(InetSocketAddress a) {
    String host = a.getAddress() != null ? a.getAddress().getHostAddress() : a.getHostString();
    return (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
  }

  @Override
  public String toString() {
    return "LogChannel[" + role() + " " + hostPort(address) + ", " + (connected() ? "connected" : "not connected") + "]";
  }
}
