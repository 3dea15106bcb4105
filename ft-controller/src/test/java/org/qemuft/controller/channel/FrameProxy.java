package org.qemuft.controller.channel;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP relay between a primary and a backup that cuts the primary-to-backup direction into
 * frames and passes each through a {@link Tamper}, which may change, drop or add bytes. The other
 * direction is relayed untouched. It also keeps the bytes each direction carried, per connection.
 */
final class FrameProxy implements AutoCloseable {
  /** Decides what goes on for one frame of the primary-to-backup direction. */
  @FunctionalInterface
  interface Tamper {
    /**
     * @param connection 0 for the first connection through the proxy, 1 for the next, ...
     * @param index the frame's index on that connection (0 = the primary's HELLO)
     * @param frame the frame's bytes as the primary sent them
     * @return the bytes to forward instead (the same array to pass it on)
     */
    byte[] apply(int connection, int index, byte[] frame);
  }

  private final ServerSocket server;
  private final InetSocketAddress target;
  private final Tamper tamper;
  private final AtomicInteger connections = new AtomicInteger();
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private final List<ByteArrayOutputStream> toBackup = new CopyOnWriteArrayList<>();
  private final List<ByteArrayOutputStream> toPrimary = new CopyOnWriteArrayList<>();
  private final Thread acceptor;
  private volatile boolean closed;

  FrameProxy(InetSocketAddress target, Tamper tamper) throws IOException {
    this.target = target;
    this.tamper = tamper;
    this.server = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
    this.acceptor = Thread.ofPlatform().daemon().name("frame-proxy accept").start(this::acceptLoop);
  }

  InetSocketAddress address() {
    return new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort());
  }

  int connections() {
    return connections.get();
  }

  /** What the primary sent on connection {@code i}, before tampering. */
  byte[] fromPrimary(int i) {
    ByteArrayOutputStream b = toBackup.get(i);
    synchronized (b) {
      return b.toByteArray();
    }
  }

  /** What the backup sent on connection {@code i}. */
  byte[] fromBackup(int i) {
    ByteArrayOutputStream b = toPrimary.get(i);
    synchronized (b) {
      return b.toByteArray();
    }
  }

  /** Cuts every connection now, as a broken link would. */
  void cutAll() {
    for (Socket s : sockets) {
      try {
        s.close();
      } catch (IOException e) {
        // closing anyway
      }
    }
  }

  private void acceptLoop() {
    while (!closed) {
      try {
        Socket a = server.accept();
        Socket b = new Socket();
        try {
          b.connect(target, 5000);
        } catch (IOException e) {
          a.close();
          continue;
        }
        sockets.add(a);
        sockets.add(b);
        int n = connections.getAndIncrement();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ByteArrayOutputStream back = new ByteArrayOutputStream();
        toBackup.add(log);
        toPrimary.add(back);
        Thread.ofPlatform().daemon().name("frame-proxy p->b " + n).start(() -> framed(n, a, b, log));
        Thread.ofPlatform().daemon().name("frame-proxy b->p " + n).start(() -> raw(b, a, back));
      } catch (IOException e) {
        return;
      }
    }
  }

  private void framed(int conn, Socket from, Socket to, ByteArrayOutputStream log) {
    try {
      DataInputStream in = new DataInputStream(from.getInputStream());
      OutputStream out = to.getOutputStream();
      for (int index = 0; ; index++) {
        byte[] header = new byte[TestFrames.HEADER];
        in.readFully(header);
        int len = java.nio.ByteBuffer.wrap(header).getInt(24);
        byte[] frame = java.util.Arrays.copyOf(header, TestFrames.HEADER + len);
        in.readFully(frame, TestFrames.HEADER, len);
        synchronized (log) {
          log.write(frame);
        }
        byte[] send = tamper.apply(conn, index, frame);
        if (send.length > 0) {
          out.write(send);
          out.flush();
        }
      }
    } catch (IOException e) {
      // one side closed: close both
    } finally {
      quietly(from);
      quietly(to);
    }
  }

  private static void raw(Socket from, Socket to, ByteArrayOutputStream log) {
    try {
      InputStream in = from.getInputStream();
      OutputStream out = to.getOutputStream();
      byte[] b = new byte[65536];
      int n;
      while ((n = in.read(b)) >= 0) {
        synchronized (log) {
          log.write(b, 0, n);
        }
        out.write(b, 0, n);
        out.flush();
      }
    } catch (IOException e) {
      // one side closed
    } finally {
      quietly(from);
      quietly(to);
    }
  }

  private static void quietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // closing anyway
    }
  }

  @Override
  public void close() throws IOException {
    closed = true;
    server.close();
    cutAll();
    try {
      acceptor.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  static List<byte[]> split(byte[] bytes) {
    List<byte[]> out = new ArrayList<>();
    for (int[] b : TestFrames.bounds(bytes)) {
      out.add(java.util.Arrays.copyOfRange(bytes, b[0], b[1]));
    }
    return out;
  }
}
