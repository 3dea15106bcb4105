package org.qemuft.controller.gate;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.PortUnreachableException;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host end of the guest's NIC: a UDP socket on 127.0.0.1, one datagram per Ethernet frame,
 * that QEMU's {@code -netdev dgram} talks to (see {@code QemuLaunch.guestNic}). Frames the guest
 * transmits go to a {@link FrameHandler}; {@link #sendToGuest} delivers frames to the guest (QEMU
 * records them under rr=record).
 *
 * <p>Why UDP and not a stream socket: a recording QEMU must never complete a guest transmit at a
 * moment its replay log does not record. A stream socket that is full (this end fell behind for a
 * few milliseconds) makes QEMU queue the frame and complete the transmit later from its main
 * loop, which a replay cannot reproduce: the backup diverged after bulk transmits
 * (docs/libftshim.md, "QEMU surprises"). A UDP send on loopback never waits: when this end falls
 * behind, the kernel drops the datagram, outside the VM, as a lossy cable would, and the guest's
 * TCP sends it again.
 *
 * <p>One QEMU per GuestNic: {@link #open} binds this end, the caller starts QEMU with {@link
 * #address()}, then {@link #attach} finds that QEMU's socket and accepts datagrams from it alone.
 * QEMU's socket is connected to this end before QEMU runs (so it accepts datagrams from this end
 * alone), and neither socket allows a second socket on its port; so no other unprivileged
 * process can read, inject or impersonate frames (spoofing a loopback source port needs
 * CAP_NET_RAW). Datagrams from anything else are dropped.
 *
 * <p>{@link #sendToGuest} is thread-safe; the handler runs on this object's reader thread.
 */
public final class GuestNic implements AutoCloseable {
  /** Largest frame accepted: no offloads on a dgram netdev, so a 64 KiB bound is ample. */
  static final int MAX_FRAME = 65536;
  /** Receive buffer asked for by default: room for bursts while the reader is descheduled. */
  private static final int RECEIVE_BUFFER = 4 << 20;
  private static final Duration POLL = Duration.ofMillis(10);

  private static final Logger LOG = LoggerFactory.getLogger(GuestNic.class);

  /** Receives the guest's frames; {@code frame} is the handler's to keep. */
  @FunctionalInterface
  public interface FrameHandler {
    void onFrame(byte[] frame);
  }

  private final DatagramChannel channel;
  private final InetSocketAddress address;
  private final FrameHandler handler;
  private final Thread thread;
  private final LongAdder framesFromGuest = new LongAdder();
  private final LongAdder framesToGuest = new LongAdder();
  private long strangers;
  private volatile InetSocketAddress qemu;
  private volatile boolean closed;

  private GuestNic(DatagramChannel channel, FrameHandler handler, String name) throws IOException {
    this.channel = channel;
    this.address = (InetSocketAddress) channel.getLocalAddress();
    this.handler = handler;
    this.thread = Thread.ofPlatform().daemon().name(name).unstarted(this::run);
  }

  /**
   * Binds this end to an unused port on 127.0.0.1 (the kernel picks it), with a receive buffer of
   * 4 MiB (or the host's net.core.rmem_max, if lower). Nothing is read until {@link #attach}.
   *
   * @param threadName names the reader thread in logs and dumps
   * @throws IOException if the loopback interface is unusable in this network namespace
   */
  public static GuestNic open(FrameHandler handler, String threadName) throws IOException {
    return open(handler, threadName, RECEIVE_BUFFER);
  }

  /**
   * As {@link #open(FrameHandler, String)}, with a receive buffer of {@code receiveBufferBytes}
   * (the kernel doubles it for its bookkeeping and caps it at net.core.rmem_max): what the host
   * end holds while its reader is behind, before the kernel drops frames.
   */
  public static GuestNic open(FrameHandler handler, String threadName, int receiveBufferBytes) throws IOException {
    DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET);
    try {
      ch.setOption(StandardSocketOptions.SO_REUSEADDR, false);
      ch.setOption(StandardSocketOptions.SO_RCVBUF, receiveBufferBytes);
      ch.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      // A loopback that is down accepts the bind but has no route: find out now, not when QEMU starts.
      try (DatagramChannel probe = DatagramChannel.open(StandardProtocolFamily.INET)) {
        probe.connect(ch.getLocalAddress());
      }
      GuestNic nic = new GuestNic(ch, handler, threadName);
      LOG.debug("guest NIC end {} (receive buffer {} bytes)", nic.address, ch.getOption(StandardSocketOptions.SO_RCVBUF));
      return nic;
    } catch (IOException e) {
      ch.close();
      throw new IOException("cannot open the guest NIC's UDP socket on 127.0.0.1 (" + e.getMessage()
          + "); is the loopback interface up in this network namespace? (ip link set lo up)", e);
    }
  }

  /** This end, 127.0.0.1 and a port: QEMU's socket sends here. */
  public InetSocketAddress address() {
    return address;
  }

  /** QEMU's end once {@link #attach}ed, or null. */
  public InetSocketAddress qemuAddress() {
    return qemu;
  }

  /**
   * Finds the UDP socket of process {@code qemuPid} that is connected to this end (QemuLaunch
   * creates it before QEMU runs), accepts datagrams from it alone and starts reading. Waits up to
   * {@code timeout} for the socket to appear.
   *
   * @throws IOException if the process exits first, has no such socket in time, or has several
   */
  public void attach(long qemuPid, Duration timeout) throws IOException, InterruptedException {
    if (qemu != null) {
      throw new IllegalStateException("guest NIC " + address + " is attached to QEMU at " + qemu
          + " already; open a new GuestNic for another QEMU");
    }
    long deadline = System.nanoTime() + timeout.toNanos();
    int port;
    while ((port = peerPort(qemuPid)) < 0) {
      if (!ProcessHandle.of(qemuPid).map(ProcessHandle::isAlive).orElse(false)) {
        throw new IOException("QEMU (pid " + qemuPid + ") exited before its guest NIC socket to " + address
            + " appeared; its log says why");
      }
      if (System.nanoTime() > deadline) {
        throw new IOException("process " + qemuPid + " has no UDP socket connected to the guest NIC end " + address
            + " after " + timeout.toMillis() + " ms; was it started with QemuLaunch.guestNic(" + address + ")?");
      }
      Thread.sleep(POLL.toMillis());
    }
    InetSocketAddress peer = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
    channel.connect(peer);
    qemu = peer;
    thread.start();
    LOG.info("guest NIC {} attached to QEMU (pid {}) at {}", address, qemuPid, peer);
  }

  /** Whether a QEMU is attached and this end is open. */
  public boolean attached() {
    return qemu != null && channel.isOpen();
  }

  public long framesFromGuest() {
    return framesFromGuest.sum();
  }

  public long framesToGuest() {
    return framesToGuest.sum();
  }

  /**
   * Frames from the guest the kernel dropped because this end's receive buffer was full (the
   * reader fell behind; the guest's TCP resends them), from /proc/net/udp; -1 if unknown.
   */
  public long kernelDrops() {
    try {
      return dropsOf(Files.readString(Path.of("/proc/self/net/udp")), address);
    } catch (IOException e) {
      return -1;
    }
  }

  /**
   * Delivers a frame to the guest. Returns false (and drops it, as a cable would) when no QEMU is
   * attached or it has gone. A QEMU whose receive buffer is full drops the frame silently, as a
   * busy NIC would; QEMU records only the frames it hands to the guest.
   */
  public boolean sendToGuest(byte[] frame, int off, int len) throws IOException {
    // An empty datagram is QEMU 7.2's end of connection (net/dgram.c stops reading): never send one.
    if (qemu == null || len <= 0 || len > MAX_FRAME) {
      return false;
    }
    try {
      channel.write(ByteBuffer.wrap(frame, off, len));
    } catch (PortUnreachableException | ClosedChannelException e) {
      return false;
    }
    framesToGuest.increment();
    return true;
  }

  private void run() {
    ByteBuffer buf = ByteBuffer.allocate(MAX_FRAME + 1);
    InetSocketAddress from = qemu;
    while (!closed) {
      buf.clear();
      SocketAddress sender;
      try {
        sender = channel.receive(buf);
      } catch (PortUnreachableException e) {
        continue; // a frame to a QEMU that had not bound yet, or has gone; nothing was lost here
      } catch (ClosedChannelException e) { // also AsynchronousCloseException: close() wakes us
        return;
      } catch (IOException e) {
        if (!closed) {
          LOG.error("guest NIC {} stopped reading: {}; the guest's frames are lost from now on", address, e.toString());
        }
        return;
      }
      // Connected, the kernel delivers QEMU's datagrams only, and the JDK discards what was queued
      // before the connect; it "may", says its documentation, so this checks.
      if (!from.equals(sender)) {
        if (strangers++ == 0) {
          LOG.warn("guest NIC {}: dropped a datagram from {}, which is not QEMU ({}); something else on this host "
              + "sends to the guest NIC's port", address, sender, from);
        }
        continue;
      }
      int len = buf.position();
      if (len == 0 || len > MAX_FRAME) {
        LOG.warn("guest NIC {}: dropped a {}-byte datagram from QEMU (frames are 1..{} bytes)", address, len, MAX_FRAME);
        continue;
      }
      byte[] frame = new byte[len];
      buf.flip().get(frame);
      framesFromGuest.increment();
      handler.onFrame(frame);
    }
  }

  @Override
  public void close() {
    closed = true;
    try {
      channel.close(); // wakes the reader
    } catch (IOException e) {
      LOG.debug("closing guest NIC {}: {}", address, e.toString());
    }
    if (thread.isAlive()) {
      try {
        thread.join(5000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** QEMU's local port, or -1 while process {@code pid} has no UDP socket connected to this end. */
  private int peerPort(long pid) throws IOException {
    Set<Long> inodes = socketInodes(Path.of("/proc", Long.toString(pid), "fd"));
    if (inodes.isEmpty()) {
      return -1;
    }
    String table;
    try {
      table = Files.readString(Path.of("/proc", Long.toString(pid), "net", "udp"));
    } catch (NoSuchFileException e) {
      return -1; // gone; the caller finds out
    }
    return connectedPort(table, inodes, address);
  }

  private static Set<Long> socketInodes(Path fdDir) throws IOException {
    Set<Long> inodes = new HashSet<>();
    try (DirectoryStream<Path> fds = Files.newDirectoryStream(fdDir)) {
      for (Path fd : fds) {
        String target;
        try {
          target = Files.readSymbolicLink(fd).toString();
        } catch (NoSuchFileException e) {
          continue; // closed meanwhile
        }
        if (target.startsWith("socket:[") && target.endsWith("]")) {
          inodes.add(Long.parseLong(target.substring(8, target.length() - 1)));
        }
      }
    } catch (NoSuchFileException e) {
      return Set.of();
    }
    return inodes;
  }

  /**
   * In a /proc/net/udp table, the local port of the one socket among {@code inodes} whose remote
   * address is {@code peer}; -1 if there is none.
   *
   * @throws IOException if there are several (which QEMU's socket is would be a guess)
   */
  static int connectedPort(String table, Set<Long> inodes, InetSocketAddress peer) throws IOException {
    String want = procAddress(peer);
    int found = -1;
    for (String line : table.split("\n")) {
      String[] f = line.trim().split("\\s+");
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
      if (f.length < 10 || !f[0].endsWith(":") || !f[2].equals(want)) {
        continue;
      }
      long inode;
      try {
        inode = Long.parseLong(f[9]);
      } catch (NumberFormatException e) {
        continue;
      }
      if (!inodes.contains(inode)) {
        continue;
      }
      if (found >= 0) {
        throw new IOException("the process has more than one UDP socket connected to the guest NIC end " + peer
            + "; cannot tell which one is QEMU's guest NIC");
      }
      found = Integer.parseInt(f[1].substring(f[1].indexOf(':') + 1), 16);
    }
    return found;
  }

  /** In a /proc/net/udp table, the drop count of the socket bound to {@code local}; -1 if it is not there. */
  static long dropsOf(String table, InetSocketAddress local) {
    String want = procAddress(local);
    for (String line : table.split("\n")) {
      String[] f = line.trim().split("\\s+");
      if (f.length >= 13 && f[0].endsWith(":") && f[1].equals(want)) {
        return Long.parseLong(f[12]);
      }
    }
    return -1;
  }

  /** An IPv4 socket address as /proc/net/udp prints it: the address as a native-order u32, the port, in hex. */
  static String procAddress(InetSocketAddress a) {
    if (!(a.getAddress() instanceof Inet4Address v4)) {
      throw new IllegalArgumentException(a + " is not an IPv4 address");
    }
    int raw = ByteBuffer.wrap(v4.getAddress()).order(ByteOrder.nativeOrder()).getInt();
    return "%08X:%04X".formatted(raw, a.getPort());
  }
}
