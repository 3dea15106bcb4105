package org.qemuft.it.support;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import org.qemuft.nativeio.Netns;

/**
 * A client of the guest's test service (scripts/guest/ftguest.c, TCP 7000: ADD, GET, PING, SEND,
 * SHUTDOWN), connected from inside a network namespace. Line-oriented.
 */
public final class ServiceClient implements AutoCloseable {
  public static final int PORT = 7000;

  private final Socket socket;
  private final InputStream in;
  private final ByteArrayOutputStream line = new ByteArrayOutputStream();

  private ServiceClient(Socket socket) throws IOException {
    this.socket = socket;
    this.in = socket.getInputStream();
  }

  /**
   * Connects from namespace {@code ns} to {@code host}:7000, retrying until {@code timeout} (the
   * guest may still be booting).
   */
  public static ServiceClient connect(String ns, String host, Duration timeout) throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      try {
        Socket s = Netns.call(ns, () -> {
          Socket sock = new Socket();
          sock.connect(new InetSocketAddress(host, PORT), 10_000);
          return sock;
        });
        s.setTcpNoDelay(true);
        return new ServiceClient(s);
      } catch (java.util.concurrent.ExecutionException e) {
        if (System.nanoTime() > deadline) {
          throw new IOException("cannot connect to the guest service at " + host + ":" + PORT + " from " + ns
              + " within " + timeout.toSeconds() + " s: " + e.getCause(), e.getCause());
        }
        Thread.sleep(500);
      }
    }
  }

  public void send(String request) throws IOException {
    socket.getOutputStream().write((request + "\n").getBytes(StandardCharsets.US_ASCII));
    socket.getOutputStream().flush();
  }

  /** The next line the service sends, or empty if none arrives within {@code timeout}. */
  public Optional<String> readLine(Duration timeout) throws IOException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      long left = (deadline - System.nanoTime()) / 1_000_000;
      if (left <= 0) {
        return Optional.empty();
      }
      socket.setSoTimeout((int) Math.max(1, left));
      int b;
      try {
        b = in.read();
      } catch (SocketTimeoutException e) {
        return Optional.empty();
      }
      if (b < 0) {
        throw new IOException("the guest service closed the connection" + (line.size() > 0 ? " after '" + line + "'" : ""));
      }
      if (b == '\n') {
        String s = line.toString(StandardCharsets.US_ASCII);
        line.reset();
        return Optional.of(s);
      }
      line.write(b);
    }
  }

  /** Sends a request and waits for its one-line answer. */
  public String request(String request, Duration timeout) throws IOException {
    send(request);
    return readLine(timeout).orElseThrow(() -> new IOException("no answer to '" + request + "' within "
        + timeout.toMillis() + " ms"));
  }

  /** Reads and discards {@code bytes} bytes of payload (SEND); returns how many arrived. */
  private long drain(long bytes, Duration timeout) throws IOException {
    socket.setSoTimeout((int) timeout.toMillis());
    byte[] buf = new byte[65536];
    long got = 0;
    while (got < bytes) {
      int n = in.read(buf, 0, (int) Math.min(buf.length, bytes - got));
      if (n < 0) {
        break;
      }
      got += n;
    }
    return got;
  }

  /**
   * Asks the service for {@code bytes} bytes of payload (SEND) and reads them all and the
   * "\nEND\n" that closes them; fails naming what was missing or wrong.
   */
  public void bulk(long bytes, Duration timeout) throws IOException {
    send("SEND " + bytes);
    long got = drain(bytes, timeout);
    if (got != bytes) {
      throw new IOException("SEND " + bytes + ": the connection ended after " + got + " bytes of payload");
    }
    Optional<String> rest = readLine(timeout);
    Optional<String> end = readLine(timeout);
    if (!rest.equals(Optional.of("")) || !end.equals(Optional.of("END"))) {
      throw new IOException("SEND " + bytes + ": expected the payload to end with \"\\nEND\\n\", got "
          + rest.map(l -> "'" + l + "'").orElse("nothing") + " then " + end.map(l -> "'" + l + "'").orElse("nothing"));
    }
  }

  @Override
  public void close() throws IOException {
    socket.close();
  }
}
