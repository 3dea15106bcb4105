package org.qemuft.controller.gate;

import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host end of the guest's NIC: a Unix socket that QEMU's {@code -netdev stream,server=off}
 * connects to. Frames travel as a 4-byte big-endian length followed by the Ethernet frame. Frames
 * the guest transmits go to a {@link FrameHandler}; {@link #sendToGuest} delivers frames to the
 * guest (QEMU records them under rr=record).
 *
 * <p>One QEMU at a time: a second connection is closed at once. {@link #sendToGuest} is
 * thread-safe; the handler runs on this object's reader thread.
 */
public final class GuestNic implements AutoCloseable {
  /** Largest frame accepted from QEMU: no offloads on a stream netdev, so a 64 KiB bound is ample. */
  static final int MAX_FRAME = 65536;

  private static final Logger LOG = LoggerFactory.getLogger(GuestNic.class);

  /** Receives the guest's frames; {@code frame} is the handler's to keep. */
  @FunctionalInterface
  public interface FrameHandler {
    void onFrame(byte[] frame);
  }

  private final Path path;
  private final ServerSocketChannel server;
  private final FrameHandler handler;
  private final Thread thread;
  private final Object writeLock = new Object();
  private final LongAdder framesFromGuest = new LongAdder();
  private final LongAdder framesToGuest = new LongAdder();
  private volatile SocketChannel qemu;
  private volatile boolean closed;

  private GuestNic(Path path, ServerSocketChannel server, FrameHandler handler, String name) {
    this.path = path;
    this.server = server;
    this.handler = handler;
    this.thread = Thread.ofPlatform().daemon().name(name).unstarted(this::run);
  }

  /**
   * Listens on {@code path} (mode 0600; a stale socket file is replaced).
   *
   * @param threadName names the reader thread in logs and dumps
   */
  public static GuestNic listen(Path path, FrameHandler handler, String threadName) throws IOException {
    Files.deleteIfExists(path);
    ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    try {
      server.bind(UnixDomainSocketAddress.of(path));
      Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
    } catch (IOException e) {
      server.close();
      throw new IOException("cannot listen for the guest NIC on " + path + ": " + e.getMessage(), e);
    }
    GuestNic nic = new GuestNic(path, server, handler, threadName);
    nic.thread.start();
    return nic;
  }

  public Path path() {
    return path;
  }

  /** Whether a QEMU is connected now. */
  public boolean connected() {
    SocketChannel c = qemu;
    return c != null && c.isOpen();
  }

  public long framesFromGuest() {
    return framesFromGuest.sum();
  }

  public long framesToGuest() {
    return framesToGuest.sum();
  }

  /**
   * Delivers a frame to the guest. Returns false (and drops it, as a cable would) when no QEMU is
   * connected.
   */
  public boolean sendToGuest(byte[] frame, int off, int len) throws IOException {
    SocketChannel c = qemu;
    if (c == null || len > MAX_FRAME) {
      return false;
    }
    ByteBuffer header = ByteBuffer.allocate(4).putInt(0, len);
    ByteBuffer body = ByteBuffer.wrap(frame, off, len);
    synchronized (writeLock) {
      try {
        while (header.hasRemaining() || body.hasRemaining()) {
          c.write(new ByteBuffer[] {header, body});
        }
      } catch (ClosedChannelException e) {
        return false;
      }
    }
    framesToGuest.increment();
    return true;
  }

  private void run() {
    while (!closed) {
      SocketChannel c;
      try {
        c = server.accept();
      } catch (IOException e) {
        if (!closed) {
          LOG.error("guest NIC socket {} stopped accepting: {}", path, e.toString());
        }
        return;
      }
      if (qemu != null) {
        LOG.warn("guest NIC socket {}: refusing a second connection (one QEMU at a time)", path);
        closeQuietly(c);
        continue;
      }
      qemu = c;
      try {
        readFrames(c);
      } catch (EOFException e) {
        LOG.info("guest NIC {}: QEMU disconnected", path);
      } catch (IOException e) {
        if (!closed) {
          LOG.warn("guest NIC {}: connection to QEMU failed: {}", path, e.getMessage());
        }
      } finally {
        qemu = null;
        closeQuietly(c);
      }
    }
  }

  private void readFrames(SocketChannel c) throws IOException {
    ByteBuffer header = ByteBuffer.allocate(4);
    while (!closed) {
      header.clear();
      fill(c, header);
      int len = header.getInt(0);
      if (len <= 0 || len > MAX_FRAME) {
        throw new IOException("QEMU sent a frame length of " + len + " bytes (expected 1.." + MAX_FRAME
            + "); is something else connected to this socket?");
      }
      ByteBuffer frame = ByteBuffer.allocate(len);
      fill(c, frame);
      framesFromGuest.increment();
      handler.onFrame(frame.array());
    }
  }

  private static void fill(SocketChannel c, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      if (c.read(b) < 0) {
        throw new EOFException();
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    closeQuietly(server);
    SocketChannel c = qemu;
    if (c != null) {
      closeQuietly(c);
    }
    try {
      thread.join(5000);
      Files.deleteIfExists(path);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (IOException e) {
      LOG.debug("could not remove {}: {}", path, e.toString());
    }
  }

  private static void closeQuietly(java.io.Closeable c) {
    try {
      c.close();
    } catch (IOException e) {
      // closing on the way out; nothing to do about it
    }
  }
}
