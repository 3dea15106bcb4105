package org.qemuft.qmp;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A QMP peer for tests, hostile or not: a Unix socket server whose every connection is handled by
 * a script. Closing it closes the connections and waits for the scripts' threads.
 */
final class TestPeer implements AutoCloseable {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String GREETING = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7},"
      + " \"package\": \"Debian 1:7.2+dfsg-7+deb12u18\"}, \"capabilities\": [\"oob\"]}}";

  /** What the peer does with one connection. */
  interface Script {
    void run(Conn conn) throws Exception;
  }

  /** One accepted connection, seen from the peer. */
  static final class Conn {
    private final SocketChannel channel;
    private final BufferedReader in;
    private final OutputStream out;

    Conn(SocketChannel channel) {
      this.channel = channel;
      this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
      this.out = Channels.newOutputStream(channel);
    }

    /** Sends raw text as is. */
    void sendRaw(String text) throws IOException {
      sendRaw(text.getBytes(StandardCharsets.UTF_8));
    }

    void sendRaw(byte[] bytes) throws IOException {
      out.write(bytes);
      out.flush();
    }

    /** Sends a message the way QEMU does: JSON, then CR LF. */
    void send(String json) throws IOException {
      sendRaw(json + "\r\n");
    }

    /** The next request (one line of JSON), or null at end of stream. */
    ObjectNode read() throws IOException {
      String line = in.readLine();
      return line == null ? null : (ObjectNode) JSON.readTree(line);
    }

    /** Greets and answers qmp_capabilities, as QEMU does. */
    void handshake() throws IOException {
      send(GREETING);
      ObjectNode caps = read();
      if (caps == null || !"qmp_capabilities".equals(caps.path("execute").asText())) {
        throw new IOException("expected qmp_capabilities, got " + caps);
      }
      reply(caps, "{}");
    }

    /** Answers {@code request} with {@code {"return": returnJson, "id": ...}}. */
    void reply(ObjectNode request, String returnJson) throws IOException {
      send("{\"return\": " + returnJson + ", \"id\": " + request.get("id") + "}");
    }

    void error(ObjectNode request, String errorClass, String desc) throws IOException {
      send("{\"id\": " + request.get("id") + ", \"error\": {\"class\": \"" + errorClass + "\", \"desc\": \""
          + desc + "\"}}");
    }

    void event(String name, String dataJson) throws IOException {
      send("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 250000}, \"event\": \"" + name + "\""
          + (dataJson == null ? "" : ", \"data\": " + dataJson) + "}");
    }

    /** Reads until the client closes the connection. */
    void drain() throws IOException {
      while (read() != null) {
        // discard
      }
    }

    void close() throws IOException {
      channel.close();
    }
  }

  private final Path path;
  private final ServerSocketChannel server;
  private final Thread acceptor;
  private final List<Thread> handlers = new CopyOnWriteArrayList<>();
  private final List<SocketChannel> conns = new CopyOnWriteArrayList<>();
  final List<Throwable> failures = new CopyOnWriteArrayList<>();

  private TestPeer(Path path, Script script, int backlog, boolean accept) throws IOException {
    this.path = path;
    Files.deleteIfExists(path);
    server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(path), backlog);
    acceptor = Thread.ofPlatform().daemon().name("test-peer " + path.getFileName()).start(() -> {
      if (!accept) {
        return;
      }
      try {
        while (true) {
          SocketChannel c = server.accept();
          conns.add(c);
          Thread h = Thread.ofPlatform().daemon().name("test-peer-conn").start(() -> {
            try (c) {
              script.run(new Conn(c));
            } catch (Exception e) {
              if (c.isOpen()) {
                failures.add(e);
              }
            }
          });
          handlers.add(h);
        }
      } catch (IOException e) {
        // closed
      }
    });
  }

  /** A peer at {@code path} running {@code script} on each connection. */
  static TestPeer start(Path path, Script script) throws IOException {
    return new TestPeer(path, script, 50, true);
  }

  /** A listener that never accepts, with the given backlog. */
  static TestPeer neverAccepting(Path path, int backlog) throws IOException {
    return new TestPeer(path, c -> { }, backlog, false);
  }

  Path path() {
    return path;
  }

  @Override
  public void close() throws IOException {
    server.close();
    for (SocketChannel c : conns) {
      c.close();
    }
    try {
      acceptor.join(5000);
      for (Thread h : new ArrayList<>(handlers)) {
        h.interrupt();
        h.join(5000);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    Files.deleteIfExists(path);
  }
}
