package org.qemuft.it.support;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.qemuft.nativeio.Netns;

/**
 * A TCP relay on the logging link that can damage the stream, as a faulty NIC or switch would
 * (this kernel has no netem): it listens inside a namespace and forwards each connection to the
 * real peer; {@link #corruptNextForward()} flips one bit in the next chunk it forwards from the
 * dialling side. Everything it opened is closed on {@link #close()}.
 */
public final class CorruptingProxy implements AutoCloseable {
  private final ServerSocket server;
  private final InetSocketAddress target;
  private final String ns;
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private final AtomicInteger corruptions = new AtomicInteger();
  private final AtomicLong corrupted = new AtomicLong();
  private final AtomicInteger accepted = new AtomicInteger();
  private volatile boolean closed;

  /** Listens on {@code ip:port} inside {@code ns}; forwards to {@code target} (reached from {@code ns}). */
  public CorruptingProxy(String ns, String ip, int port, InetSocketAddress target) throws Exception {
    this.ns = ns;
    this.target = target;
    this.server = Netns.call(ns, () -> new ServerSocket(port, 8, InetAddress.getByName(ip)));
    Thread.ofPlatform().daemon().name("proxy-accept").start(this::acceptLoop);
  }

  /** Flips a bit in the next chunk forwarded from the dialling side to the target. */
  public void corruptNextForward() {
    corruptions.incrementAndGet();
  }

  /** How many chunks were damaged so far. */
  public long corrupted() {
    return corrupted.get();
  }

  /** How many connections were relayed so far. */
  public int connections() {
    return accepted.get();
  }

  private void acceptLoop() {
    while (!closed) {
      try {
        Socket in = server.accept();
        Socket out = Netns.call(ns, () -> {
          Socket s = new Socket();
          s.connect(target, 5000);
          return s;
        });
        accepted.incrementAndGet();
        sockets.add(in);
        sockets.add(out);
        Thread.ofPlatform().daemon().name("proxy-fwd").start(() -> pump(in, out, true));
        Thread.ofPlatform().daemon().name("proxy-back").start(() -> pump(out, in, false));
      } catch (Exception e) {
        if (closed) {
          return;
        }
      }
    }
  }

  private void pump(Socket from, Socket to, boolean forward) {
    byte[] buf = new byte[16384];
    try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
      int n;
      while ((n = in.read(buf)) > 0) {
        if (forward && corruptions.get() > 0 && n > 8) {
          corruptions.decrementAndGet();
          buf[n / 2] ^= 0x10;
          corrupted.incrementAndGet();
        }
        out.write(buf, 0, n);
      }
    } catch (IOException e) {
      // the relay ends when either side does
    } finally {
      closeQuietly(from);
      closeQuietly(to);
    }
  }

  @Override
  public void close() {
    closed = true;
    closeQuietly(server);
    sockets.forEach(CorruptingProxy::closeQuietly);
  }

  private static void closeQuietly(java.io.Closeable c) {
    try {
      c.close();
    } catch (IOException e) {
      // closing
    }
  }
}
